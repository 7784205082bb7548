"""The intrinsic-dimension check of an answer: can a VAE at the data's intrinsic dimension do as well?

An intrinsic-dimension estimate (TwoNN and MLE, ``zdim.evaluation.intrinsic``) says how many coordinates the data
need locally; held-out NLL says how many latent units a VAE of this shape needs. The two differ where the
data wrap (an angle, a circle, a sphere: a Gaussian latent of d units must tear such data, and up to 2d
units, d + 1 for a sphere, need not) or where the decoder lacks the capacity to fold d units into the
data. ``id_candidates`` names the sizes at the estimate that an answer far above it (``ID_FACTOR``) is
checked against (``zdim.sweeps.growth`` trains them); ``capacity_check`` says what they measured, with the
figures and the likely reason, and also where the answer is only a little above the estimate but a size
at it was trained.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..evaluation.intrinsic import IntrinsicDim
from ..evidence import caution, rerun, warning
from ..records import TrialRecord
from .pairing import paired_se
from .recommendation import Recommendation

ID_FACTOR = 1.5  # an answer above this many times the intrinsic dimension is checked (sizes trained)
MIN_CHECKED = 3  # smaller answers are not checked against the intrinsic dimension
ID_AGREE = 0.25  # TwoNN and MLE agree when they differ by at most this share of their mean (or by 1)


def _agreed(est: IntrinsicDim | None) -> float | None:
    """The mean of TwoNN and MLE when both are finite and agree, else None."""
    if est is None or not (math.isfinite(est.twonn) and math.isfinite(est.mle)):
        return None
    mean = (est.twonn + est.mle) / 2
    return None if abs(est.twonn - est.mle) > max(1.0, ID_AGREE * mean) else mean


def id_candidates(answer: int, est: IntrinsicDim | None) -> list[int]:
    """The sizes at the intrinsic dimension that an answer far above it is checked against: the integers
    around the mean of TwoNN and MLE, when both agree and the answer exceeds ``ID_FACTOR`` times it."""
    mean = _agreed(est)
    if mean is None or answer <= ID_FACTOR * mean:
        return []
    return sorted({d for d in (math.floor(mean), math.ceil(mean)) if 1 <= d < answer})


def near_candidates(answer: int, est: IntrinsicDim | None) -> list[int]:
    """The sizes at the estimate below an answer that is above it but within ``ID_FACTOR`` times it:
    checked when they were trained anyway (no size is added for them)."""
    mean = _agreed(est)
    if mean is None or answer < MIN_CHECKED or answer > ID_FACTOR * mean:
        return []
    return sorted({d for d in (math.floor(mean), math.ceil(mean)) if 1 <= d < answer})


def _reason(answer: int, mean: float) -> str:
    """The likely reason a VAE needs more units than the intrinsic dimension, with the ratio."""
    ratio = answer / mean
    if ratio <= 2.5:
        return (
            f"; the answer is {ratio:.1f} times the estimate, and two reasons fit: the data wrap (an angle, a "
            "circle, a sphere), which a Gaussian latent of d units must tear and up to 2d units (d + 1 for a "
            "sphere) need not; or this decoder cannot unfold a curved sheet into d units, where a wider decoder "
            "(--hidden) may need fewer"
        )
    return (
        f"; the answer is {ratio:.1f} times the estimate, more than wrapping explains (at most 2d): a wider "
        "decoder (--hidden) may need fewer"
    )


def capacity_check(
    rec: Recommendation,
    records: Sequence[TrialRecord],
    per_sample: Mapping[tuple[int, int], Any] | None,
    est: IntrinsicDim | None,
) -> Recommendation:
    """``rec`` with the intrinsic-dimension check said. When the answer is far above an estimate that
    TwoNN and MLE agree on (``id_candidates``), or above it within ``ID_FACTOR`` while a size at it was
    trained (``near_candidates``): the measured gap of the largest such size to the answer, with its paired
    standard error, whether it converged, and the likely reason, as a ``CAUTION`` (a ``WARNING`` when that
    size had not converged: whether it reaches the answer is not measured). A size at the estimate that
    comes within the tolerance is said too. ``rec.capacity`` keeps the figures for the report."""
    mean = _agreed(est)
    if est is None or mean is None:
        return rec
    words = f"about {mean:.1f} (TwoNN {est.twonn:.1f}, MLE {est.mle:.1f})"
    tried = {r.dim for r in records if r.complete}
    wanted = id_candidates(rec.dim, est)
    candidates = [d for d in wanted if d in tried] or [d for d in near_candidates(rec.dim, est) if d in tried]
    if wanted and not candidates:  # --no-refine, or the sizes at the estimate failed: say it is not measured
        text = (
            f"the data's intrinsic dimension is {words}, but the answer is {rec.dim}: no size at the estimate "
            f"({', '.join(map(str, wanted))}) completed, so whether a smaller VAE does as well is not measured; "
            "rerun without --no-refine"
        )
        return rec.with_notes(caution(text, "capacity"))
    rows = {r["dim"]: r for r in rec.per_dim}
    if not candidates or rec.dim not in rows:
        return rec  # the answer is not above the estimate, or no size at it was trained
    complete = [t for t in records if t.complete]
    se = paired_se(complete, per_sample, rec.dim) if per_sample else {}
    figures: dict[str, dict[str, float | bool | None]] = {}
    for d in candidates:
        if d in rows:
            conv = [t.converged for t in complete if t.dim == d]
            gap = float(rows[d]["nll_mean"] - rows[rec.dim]["nll_mean"])
            figures[str(d)] = {"gap": gap, "paired_se": se.get(d), "converged": all(c is not False for c in conv)}
    if not figures:
        return rec
    best = max(figures, key=int)  # the largest size at the estimate: the closest to the answer
    f = figures[best]
    gap, se_value = float(f["gap"] or 0.0), f["paired_se"]
    se_words = f" (paired SE {se_value:.2f})" if isinstance(se_value, float) else ""
    capacity = {"intrinsic": mean, "twonn": est.twonn, "mle": est.mle, "answer": rec.dim, "sizes": figures}
    done = replace(rec, capacity=capacity)
    if gap <= max(rec.tolerance, se_value if isinstance(se_value, float) else 0.0):
        text = (
            f"the data's intrinsic dimension is {words}, but the answer is {rec.dim}: a size-{best} VAE comes "
            f"within the rule's tolerance of it ({gap:+.2f} nats{se_words}), so by held-out NLL {best} units do "
            f"as well; rule '{rec.rule}' picks {rec.dim}"
        )
        return done.with_notes(caution(text, "capacity"))
    if not f["converged"]:
        text = (
            f"the data's intrinsic dimension is {words}, but the answer is {rec.dim}, and the size-{best} VAE at "
            f"the estimate, {gap:.2f} nats worse{se_words}, had not converged: whether {best} units do as well is "
            f"not measured; {rerun('more --epochs')}"
        )
        return done.with_notes(warning(text, "capacity"))
    text = (
        f"the data's intrinsic dimension is {words}, but the answer is {rec.dim}: a size-{best} VAE of this "
        f"architecture stays {gap:.2f} nats worse{se_words} after converging, so this VAE needs {rec.dim} units"
        + (_reason(rec.dim, mean) if wanted else f", within {ID_FACTOR:g} times the estimate")
    )
    return done.with_notes(caution(text, "capacity"))


__all__ = ["capacity_check", "id_candidates", "near_candidates", "ID_FACTOR", "MIN_CHECKED"]
