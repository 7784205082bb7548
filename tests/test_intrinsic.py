"""Intrinsic dimension on data of known dimension."""

import numpy as np
import pytest

from zdim.errors import ConfigError, DataError
from zdim.evaluation.intrinsic import dims_from_estimate, estimate_intrinsic_dim
from zdim.testing import make_planted_data


@pytest.mark.parametrize("d", [2, 5])
def test_twonn_and_mle_near_d_on_a_linear_subspace(d):
    rng = np.random.default_rng(d)
    x = rng.normal(size=(800, d)) @ rng.normal(size=(d, 20))
    est = estimate_intrinsic_dim(x, n=400, repeats=3, seed=0)
    assert abs(est.twonn - d) < 0.25 * d + 0.3 and abs(est.mle - d) < 0.25 * d + 0.3
    assert est.dim == d and est.n == 400 and len(est.values["twonn"]) == 3 and est.twonn_std > 0


def test_planted_manifold_dimension():
    est = estimate_intrinsic_dim(make_planted_data(3, 16, 1500, noise=0.01), n=1000, repeats=2)
    assert est.dim == 3
    assert "TwoNN" in est.table()


def test_bad_input_is_one_clear_error():
    with pytest.raises(ConfigError, match="subsample size"):
        estimate_intrinsic_dim(np.zeros((100, 3)), n=5)
    with pytest.raises(DataError, match="distinct"):
        estimate_intrinsic_dim(np.zeros((100, 3)))  # one distinct point
    with pytest.raises(DataError, match="NaN"):
        estimate_intrinsic_dim(np.full((100, 3), np.nan))


def test_grid_reaches_a_few_times_the_estimate():
    assert dims_from_estimate(1, 64) == (1, 2, 4)
    assert dims_from_estimate(3, 64) == (1, 2, 4, 8, 16)
    assert dims_from_estimate(10, 20) == (1, 2, 4, 8, 16, 20)


def test_large_data_are_subsampled_before_any_copy(monkeypatch):
    """Above MAX_ROWS rows a seeded draw of rows comes first: never a float64 copy or a row sort of the
    whole set (gigabytes for a large memory-mapped file); the estimate is still close to d."""
    import zdim.evaluation.intrinsic

    monkeypatch.setattr(zdim.evaluation.intrinsic, "MAX_ROWS", 600)
    x = make_planted_data(3, 12, 5000, seed=4).astype(np.float32)
    seen = []
    real_unique = np.unique
    monkeypatch.setattr(np, "unique", lambda a, **k: seen.append(a.shape) or real_unique(a, **k))
    est = estimate_intrinsic_dim(x, n=500, repeats=2, seed=0)
    assert seen[0] == (600, 12)  # the row sort saw the draw, not the 5000 rows
    assert abs(est.dim - 3) <= 1
    assert estimate_intrinsic_dim(x, n=500, repeats=2, seed=0).twonn == est.twonn  # seeded


def test_subsamples_as_large_as_the_split_say_so_and_show_no_spread():
    x = np.random.default_rng(0).normal(size=(457, 4))
    est = estimate_intrinsic_dim(x, n=1000, repeats=5)
    assert est.whole and est.n == 457
    table = est.table()
    assert "all 457 distinct points of the split (no subsampling, so no spread)" in table
    assert "0.00" not in table and "5 x 457" not in table
    assert not estimate_intrinsic_dim(x, n=200, repeats=2).whole
