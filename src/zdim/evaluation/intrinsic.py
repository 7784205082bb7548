"""Intrinsic dimension of a data set: TwoNN and MLE (scikit-dimension) on repeated subsamples.

The estimate sets the search range when the user gives no latent sizes: a VAE needs about as many
active units as the data has intrinsic dimensions, so the grid runs over powers of two up to a few
times the estimate. Both estimators are local (nearest-neighbour distances); they are run on
``repeats`` random subsamples of ``n`` distinct points each, and the spread across subsamples is
reported beside the mean.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError

METHODS = ("twonn", "mle")
DEFAULT_SUBSAMPLE = 1000
DEFAULT_REPEATS = 5
MIN_POINTS = 20  # fewer points than this give no usable nearest-neighbour statistics
GRID_FACTOR = 4  # the grid reaches the first power of two at or above this many times the estimate


@dataclass(frozen=True)
class IntrinsicDim:
    """Intrinsic-dimension estimates: per method the mean and standard deviation across subsamples.

    ``dim`` is the rounded mean of the two methods' means (at least 1): the number the grid is built from.
    """

    dim: int
    twonn: float
    twonn_std: float
    mle: float
    mle_std: float
    n: int
    repeats: int
    seed: int
    values: dict[str, list[float]]
    whole: bool = False  # each subsample was every distinct sample of the split: the repeats are one

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        """A plain-text table of the estimates."""
        if self.whole:  # the same points every time: no spread to measure
            where = f"all {self.n} distinct points of the split (no subsampling, so no spread)"
            spread = {"TwoNN": f"{'-':>14}", "MLE": f"{'-':>14}"}
        else:
            where = f"{self.repeats} x {self.n} points"
            spread = {"TwoNN": f"{self.twonn_std:>14.2f}", "MLE": f"{self.mle_std:>14.2f}"}
        lines = [
            f"{'method':<8}{'estimate':>10}{'spread (std)':>14}   subsamples",
            f"{'TwoNN':<8}{self.twonn:>10.2f}{spread['TwoNN']}   {where}",
            f"{'MLE':<8}{self.mle:>10.2f}{spread['MLE']}   {where}",
            f"intrinsic dimension (rounded mean of both): {self.dim}",
        ]
        return "\n".join(lines)


MAX_ROWS = 10_000  # rows of a larger data set drawn (seeded) before anything is copied or sorted


def _as_array(X: Any, seed: int = 0) -> np.ndarray:
    if hasattr(X, "train") and hasattr(X, "n_features"):  # a zdim Data: its training split
        X = X.train
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    if hasattr(X, "shape") and len(getattr(X, "shape", ())) >= 2 and X.shape[0] > MAX_ROWS:
        # the subsamples hold a few thousand points: a float64 copy and a row sort of every row would
        # cost hundreds of megabytes (MNIST) to gigabytes for nothing
        X = X[np.sort(np.random.default_rng([seed, 1]).choice(X.shape[0], MAX_ROWS, replace=False))]
    try:
        x = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise DataError(
            f"cannot read {type(X).__name__} as a numeric array ({e}): pass an (n, D) array, a tensor or a zdim Data"
        ) from e
    if x.ndim < 2:
        raise DataError(f"need an (n, D) array of samples, got shape {x.shape}: reshape to one row per sample")
    x = x.reshape(x.shape[0], -1)
    if not np.isfinite(x).all():
        raise DataError("the data contain NaN or infinite values: remove or impute them first")
    return x


def estimate_intrinsic_dim(
    X: Any, n: int = DEFAULT_SUBSAMPLE, repeats: int = DEFAULT_REPEATS, seed: int = 0
) -> IntrinsicDim:
    """Estimate the intrinsic dimension of ``X`` with TwoNN and MLE on random subsamples.

    Parameters
    ----------
    X : array (n, D) or (n, ...), tensor, or ``zdim.Data`` (its training split is used)
    n : int
        Points per subsample (distinct rows; all of them when fewer).
    repeats : int
        Subsamples drawn; the spread across them is reported.
    seed : int
        Seed of the subsampling.

    Raises
    ------
    ConfigError
        For ``n`` or ``repeats`` out of range.
    DataError
        For non-numeric or non-finite data, or fewer than 20 distinct samples.
    """
    import skdim

    if int(n) != n or n < MIN_POINTS:
        raise ConfigError(f"subsample size must be an integer >= {MIN_POINTS}, got {n!r}: fix --n")
    if int(repeats) != repeats or repeats < 1:
        raise ConfigError(f"repeats must be an integer >= 1, got {repeats!r}: fix --repeats")
    x = np.unique(_as_array(X, seed), axis=0)  # duplicates give zero distances, which TwoNN cannot use
    if x.shape[0] < MIN_POINTS:
        raise DataError(
            f"found {x.shape[0]} distinct sample(s), need at least {MIN_POINTS} to estimate "
            "an intrinsic dimension: give more data"
        )
    rng = np.random.default_rng(seed)
    size = min(int(n), x.shape[0])
    values: dict[str, list[float]] = {m: [] for m in METHODS}
    for _ in range(int(repeats)):
        sub = x[rng.choice(x.shape[0], size, replace=False)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # skdim warns about ties and small neighbourhoods
            values["twonn"].append(float(skdim.id.TwoNN().fit(sub).dimension_))
            values["mle"].append(float(skdim.id.MLE().fit(sub).dimension_))
    means = {m: float(np.mean(v)) for m, v in values.items()}
    stds = {m: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for m, v in values.items()}
    finite = [v for v in means.values() if math.isfinite(v)]
    dim = max(1, round(float(np.mean(finite)))) if finite else 1
    return IntrinsicDim(
        dim=dim,
        twonn=means["twonn"],
        twonn_std=stds["twonn"],
        mle=means["mle"],
        mle_std=stds["mle"],
        n=size,
        repeats=int(repeats),
        seed=seed,
        values=values,
        whole=size == x.shape[0],
    )


def dims_from_estimate(estimate: float, n_features: int, factor: int = GRID_FACTOR) -> tuple[int, ...]:
    """Latent sizes to try given an intrinsic-dimension estimate: powers of two from 1 up to the first
    one at or above ``factor`` times the estimate, capped by the number of features."""
    top = max(2, math.ceil(factor * max(estimate, 1.0)))
    dims, p = [], 1
    while True:
        dims.append(min(p, n_features))
        if p >= top or p >= n_features:
            break
        p *= 2
    return tuple(sorted(set(dims)))
