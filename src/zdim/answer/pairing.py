"""Paired evidence over sizes: every trial's held-out NLL is kept per sample, on the same samples for every
size, so the difference of two sizes has a standard error of its own (``gap_se``: the larger of the
paired one and the one over seeds), and the lower envelope (``envelope``) names every size worse than a
smaller one beyond it. Pure functions of records and per-sample arrays.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..records import TrialRecord
from .checks import MIN_GAIN


def size_means(
    trials: Sequence[TrialRecord], per_sample: Mapping[tuple[int, int], Any]
) -> dict[int, np.ndarray] | None:
    """Per size: the (N,) held-out NLL of each sample averaged over the size's complete seeds; None when a
    complete trial has none, or the lengths differ (the samples are then not the same ones), or N < 2."""
    by_dim: dict[int, list[np.ndarray]] = {}
    for t in trials:
        if not t.complete:
            continue
        v = per_sample.get(t.key)
        if v is None:
            return None
        by_dim.setdefault(t.dim, []).append(np.asarray(v, dtype=np.float64))
    lengths = {len(v) for vs in by_dim.values() for v in vs}
    if len(lengths) != 1 or min(lengths) < 2:
        return None
    return {d: np.mean(vs, axis=0) for d, vs in by_dim.items()}


def _pair_se(means: Mapping[int, np.ndarray], a: int, b: int) -> float:
    """The paired standard error of the mean held-out NLL difference of sizes ``a`` and ``b``."""
    diff = means[a] - means[b]
    return float(np.std(diff, ddof=1) / math.sqrt(len(diff)))


def gap_se(r: dict[str, Any], s: dict[str, Any], means: Mapping[int, np.ndarray] | None) -> float:
    """The standard error of the NLL gap of sizes ``r`` and ``s``: the larger of the paired one (the
    held-out samples) and the one over seeds (both sizes' standard errors over their seeds)."""
    paired = (
        _pair_se(means, r["dim"], s["dim"]) if means is not None and r["dim"] in means and s["dim"] in means else 0.0
    )
    return max(paired, math.hypot(r["nll_se"], s["nll_se"]))


def envelope(rows: list[dict[str, Any]], means: Mapping[int, np.ndarray] | None) -> dict[int, tuple[int, float, float]]:
    """The sizes off the lower envelope: size -> (the smaller size it is worse than, the gap, its standard
    error), for every size whose held-out NLL is worse than a smaller size's by more than the standard
    error of that gap (``gap_se``, at least ``MIN_GAIN``). Where several smaller sizes beat it, the one
    it trails by the most standard errors is named."""
    out: dict[int, tuple[int, float, float]] = {}
    for i, r in enumerate(rows):
        worst: tuple[float, int, float, float] | None = None
        for s in rows[:i]:
            gap = r["nll_mean"] - s["nll_mean"]
            se = gap_se(r, s, means)
            if gap > max(se, MIN_GAIN):
                z = gap / max(se, MIN_GAIN)
                if worst is None or z > worst[0]:
                    worst = (z, s["dim"], gap, se)
        if worst is not None:
            out[r["dim"]] = worst[1:]
    return out


def paired_se(
    trials: Sequence[TrialRecord], per_sample: Mapping[tuple[int, int], Any], best_dim: int
) -> dict[int, float]:
    """Per size: the standard error of its mean held-out NLL difference to size ``best_dim``, paired over
    the held-out samples (each size's per-sample NLL averaged over its seeds first, ``size_means``).
    Empty when the per-sample values cannot be paired."""
    means = size_means(trials, per_sample)
    if means is None or best_dim not in means:
        return {}
    return {d: _pair_se(means, d, best_dim) for d in means}


__all__ = ["size_means", "gap_se", "envelope", "paired_se"]
