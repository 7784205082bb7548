"""The intrinsic-dimension check of an answer: can a VAE at the data's intrinsic dimension do as well?

An intrinsic-dimension estimate (TwoNN and MLE, ``zdim.evaluation.intrinsic``) says how many coordinates the data
need locally; held-out NLL says how many latent units a VAE of this shape needs. The two differ where the
data wrap (an angle, a circle, a sphere: a Gaussian latent of d units must tear such data, and up to 2d
units, d + 1 for a sphere, need not) or where the decoder lacks the capacity to fold d units into the
data. ``id_candidates`` names the sizes at the estimate that an answer far above it (``ID_FACTOR``) is
checked against (``zdim.sweeps.executors.growth`` trains them); ``capacity_check`` says what they measured, with the
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
from .pairing import _pair_se, gap_se, size_means
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
    trained (``near_candidates``): what the size at the estimate that decides measured against the answer
    (its gap, with the standard error of that gap: paired over the held-out samples, never below what the
    seeds show), whether it converged, and the likely reason, as a ``CAUTION`` (a ``WARNING`` when it had not
    converged: whether it reaches the answer is not measured). The size that decides is one the rule
    accepts (it does as well; under the rules that read held-out NLL it is then the answer, so this is said
    only under another rule; a size no worse than the answer counts too), else one that had not converged,
    else the one closest to the answer.
    ``rec.capacity`` keeps the figures for the report."""
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
    means = size_means(complete, per_sample) if per_sample else None
    figures: dict[str, dict[str, float | bool | None]] = {}
    for d in candidates:
        if d in rows:
            conv = [t.converged for t in complete if t.dim == d]
            paired = _pair_se(means, d, rec.dim) if means is not None and d in means and rec.dim in means else None
            figures[str(d)] = {
                "gap": float(rows[d]["nll_mean"] - rows[rec.dim]["nll_mean"]),
                "se": gap_se(rows[d], rows[rec.dim], means),
                "paired_se": paired,
                "converged": all(c is not False for c in conv),
                "accepted": bool(rows[d].get("accepted", False)),
            }
    if not figures:
        return rec
    good = [d for d, f in figures.items() if f["accepted"] or float(f["gap"] or 0.0) <= 0.0]
    late = [d for d, f in figures.items() if not f["converged"]]
    best = max(good, key=int) if good else max(late, key=int) if late else min(figures, key=_closest(figures))
    f = figures[best]
    gap, se_value = float(f["gap"] or 0.0), float(f["se"] or 0.0)
    se_words = f", SE {se_value:.2f}" if se_value > 0 else ""
    paren = f" (SE {se_value:.2f})" if se_value > 0 else ""
    capacity = {"intrinsic": mean, "twonn": est.twonn, "mle": est.mle, "answer": rec.dim, "sizes": figures}
    capacity["decides"] = int(best)
    done = replace(rec, capacity=capacity)
    if good:  # under the rules that read held-out NLL such a size is the answer (or a smaller one is)
        how = "is within the rule's tolerance of the best held-out NLL" if f["accepted"] else "is no worse"
        text = (
            f"the data's intrinsic dimension is {words}, but the answer is {rec.dim}: a size-{best} VAE {how} "
            f"({gap:+.2f} nats against {rec.dim}{se_words}), so by held-out NLL {best} units do as well; rule "
            f"'{rec.rule}' picks {rec.dim}, where --rule combined or nll-knee would answer {best} or less"
        )
        return done.with_notes(caution(text, "capacity"))
    if late:
        text = (
            f"the data's intrinsic dimension is {words}, but the answer is {rec.dim}, and the size-{best} VAE at "
            f"the estimate, {gap:.2f} nats worse{paren}, had not converged: whether {best} units do as well is not "
            f"measured; {rerun('more --epochs')}"
        )
        return done.with_notes(warning(text, "capacity"))
    beyond = (
        f", {rows[int(best)]['gap']:.2f} worse than the best size {rec.best_dim}, beyond the rule's tolerance"
        if rec.best_dim != rec.dim and rec.best_dim in rows
        else ""
    )
    text = (
        f"the data's intrinsic dimension is {words}, but the answer is {rec.dim}: a size-{best} VAE of this "
        f"architecture stays {gap:.2f} nats worse{paren}{beyond} after converging, so this VAE needs {rec.dim} units"
        + (_reason(rec.dim, mean) if wanted else f", within {ID_FACTOR:g} times the estimate")
    )
    return done.with_notes(caution(text, "capacity"))


def _closest(figures: Mapping[str, Mapping[str, Any]]) -> Any:
    """The key ordering the sizes at the estimate by how close they come to the answer (the larger first
    on a tie)."""
    return lambda d: (float(figures[d]["gap"] or 0.0), -int(d))


__all__ = ["capacity_check", "id_candidates", "near_candidates", "ID_FACTOR", "MIN_CHECKED"]
