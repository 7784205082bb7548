import pytest

from zdim.errors import ConfigError
from zdim.recommend import aggregate, recommend


def trials(nlls, au=None, seeds=1):
    out = []
    for dim, vals in nlls.items():
        vals = vals if isinstance(vals, list) else [vals]
        for s, v in enumerate(vals):
            out.append({"dim": dim, "seed": s, "status": "complete", "nll": v,
                        "active_units": (au or {}).get(dim, dim)})
    return out


def test_smallest_size_within_tolerance():
    t = trials({2: 120.0, 5: 100.0, 10: 95.5, 20: 95.0, 50: 95.2}, au={50: 12})
    rec = recommend(t, rel_tol=0.01)
    assert rec.best_dim == 20 and rec.dim == 10
    assert rec.threshold == pytest.approx(95.0 * 1.01)
    assert rec.largest_active_units == 12
    assert "10" in rec.rationale and "12 active units" in rec.rationale


def test_zero_tolerance_picks_the_best():
    rec = recommend(trials({2: 120.0, 5: 100.0, 10: 95.5, 20: 95.0}), rel_tol=0.0)
    assert rec.dim == 20
    assert "grid may be too small" in rec.rationale


def test_standard_error_widens_the_tolerance_with_seeds():
    t = trials({4: [99.0, 100.0, 98.0], 8: [96.0, 100.0, 98.0]})
    rows = aggregate(t)
    assert rows[1]["nll_se"] == pytest.approx((4.0 / 3) ** 0.5)
    assert recommend(t, rel_tol=0.0).dim == 4  # 99 <= 98 + SE(best) = 99.15
    t2 = trials({4: [103.0, 104.0, 102.0], 8: [96.0, 100.0, 98.0]})
    assert recommend(t2, rel_tol=0.0).dim == 8


def test_failed_trials_are_left_out_and_counted():
    t = trials({2: 50.0, 4: 40.0}) + [{"dim": 8, "seed": 0, "status": "failed", "reason": "NaN"}]
    rec = recommend(t)
    assert rec.dim == 4 and rec.failed_trials == 1 and "1 trial(s) failed" in rec.rationale


def test_errors():
    with pytest.raises(ConfigError, match="unknown rule 'x'"):
        recommend(trials({2: 1.0}), rule="x")
    with pytest.raises(ConfigError, match="tolerance"):
        recommend(trials({2: 1.0}), rel_tol=-1)
    with pytest.raises(ValueError, match="no trial completed"):
        recommend([{"dim": 2, "seed": 0, "status": "failed"}])
