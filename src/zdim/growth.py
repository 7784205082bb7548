"""Where the grid grows: at its edge, between the sizes tried, and near the intrinsic dimension.

Each growth asks the executor for more sizes (``Executor.run`` with a grown plan; points already
finished are not trained again) and says what it added and why (a ``GRID`` note):

- **The edge** (``plan.extend``): while the answer, or the NLL knee, is the largest size tried (and every
  unit of the answer's models is active, or the knee is still falling there), twice that size is tried,
  up to the feature count.
- **Between sizes** (``plan.refine``, the default): while the answer sits above a gap of more than one
  size, the midpoint is tried (bisection), so the answer is an exact size, not the grid's coarseness: a
  largest model keeping 12 active units gives about 12, not the 16 of a grid 8, 16, 32.
- **The intrinsic dimension** (with ``plan.refine`` too; ``capacity_check``): when the answer is more than
  ``ID_FACTOR`` times an intrinsic-dimension estimate on which TwoNN and MLE agree, the sizes at the
  estimate are trained to convergence. If one comes within the rule's tolerance the rule recommends it;
  if none does, the answer says so with the measured gap and its paired standard error (a ``CAUTION``),
  and the recommendation keeps the check (``Recommendation.capacity``).
"""

from __future__ import annotations

import math
from dataclasses import replace

from .errors import ZdimError
from .evidence import Note, NoteKind, caution
from .intrinsic import IntrinsicDim, estimate_intrinsic_dim
from .plan import SweepPlan
from .rules import Recommendation, paired_se, recommend
from .trial import Executor, Ledger, Outcome

ID_FACTOR = 1.5  # an answer above this many times the intrinsic dimension is checked
MIN_CHECKED = 3  # smaller answers are not checked against the intrinsic dimension
ID_AGREE = 0.25  # TwoNN and MLE agree when they differ by at most this share of their mean (or by 1)
REFINE_STEPS = 16  # bisection halves the gap each step: 16 cover any latent size


def _sizes(sizes: list[int]) -> str:
    """``size 3 was`` / ``sizes 3, 5 were``."""
    return f"size {sizes[0]} was" if len(sizes) == 1 else f"sizes {', '.join(map(str, sizes))} were"


def recommend_outcome(plan: SweepPlan, outcome: Outcome, likelihood: str, n_features: int) -> Recommendation | None:
    """The plan's rule applied to an outcome (None when no trial completed)."""
    records = outcome.records
    if not any(r.complete for r in records):
        return None
    return recommend(
        records,
        rel_tol=plan.config.rel_tol,
        rule=plan.rule,
        intrinsic_dim=plan.intrinsic.dim if plan.intrinsic else None,
        likelihood=likelihood,
        per_sample=outcome.per_sample or None,
        n_features=n_features,
    )


def grow(
    executor: Executor, plan: SweepPlan, outcome: Outcome, ledger: Ledger
) -> tuple[SweepPlan, Outcome, list[Note]]:
    """The grid grown where the answer needs it: at its edge, between sizes, near the intrinsic dimension
    (see the module docstring). Returns the final plan and outcome, and a note per growth."""
    notes: list[Note] = []
    for step in (_extend, _refine, _near_intrinsic):
        if step is _extend and not plan.extend or step is not _extend and plan.refine is False:
            continue  # refine None is the default: on
        plan, outcome, note = step(executor, plan, outcome, ledger)
        notes += note
    return plan, outcome, notes


def _answer(plan: SweepPlan, outcome: Outcome, ledger: Ledger) -> Recommendation | None:
    return recommend_outcome(plan, outcome, ledger.data.likelihood, ledger.data.n_features)


def _extend(
    executor: Executor, plan: SweepPlan, outcome: Outcome, ledger: Ledger
) -> tuple[SweepPlan, Outcome, list[Note]]:
    """Grow the grid at its edge: while the answer is the largest size tried with every unit of its models
    active, or the NLL knee is the largest size tried (a larger size may fit better, whatever the active
    units say), train twice that size (at most the feature count)."""
    n_features = ledger.data.n_features
    added: list[int] = []
    why = ""
    while True:
        rec = _answer(plan, outcome, ledger)
        top = max(plan.config.dims)
        at_top = [r for r in outcome.records if r.complete and r.dim == top]
        if rec is None or not at_top or top >= n_features:
            break
        full = rec.dim == top and all((r.active_units or 0) >= top for r in at_top)
        knee = rec.signals.get("nll-knee") == top
        if not (full or knee):
            break
        why = why or (
            "the largest size tried had been chosen with every unit active"
            if full
            else f"the NLL knee was the largest size tried ({top}), though the active units chose {rec.dim}"
        )
        new = min(2 * top, n_features)
        added.append(new)
        plan = plan.with_dims((*plan.config.dims, new))
        ledger.progress.note(f"extend: {why.split(' (')[0]}; trying size {new}")
        outcome = executor.run(plan)
    if not added:
        return plan, outcome, []
    return plan, outcome, [Note(NoteKind.GRID, f"The grid grew at its edge: {_sizes(added)} added, as {why}.")]


def _refine(
    executor: Executor, plan: SweepPlan, outcome: Outcome, ledger: Ledger
) -> tuple[SweepPlan, Outcome, list[Note]]:
    """Bisect between the recommended size and the next smaller size tried until they are adjacent.

    Whatever the rule, the smaller neighbour was judged not good enough and the recommended size good
    enough, so the exact answer lies between them: each step trains the midpoint (all seeds) and
    recommends again.
    """
    added: list[int] = []
    first: tuple[int, int] | None = None
    for _ in range(REFINE_STEPS):
        rec = _answer(plan, outcome, ledger)
        if rec is None:
            break
        tried = {r.dim for r in outcome.records if r.complete}
        lower = max((d for d in tried if d < rec.dim), default=None)
        if lower is None or rec.dim - lower <= 1:
            break
        first = first or (lower, rec.dim)
        mid = (lower + rec.dim) // 2
        added.append(mid)
        plan = plan.with_dims((*plan.config.dims, mid))
        ledger.progress.note(f"refine: trying size {mid} between {lower} and {rec.dim}")
        outcome = executor.run(plan)
    if first is None:
        return plan, outcome, []
    lo, hi = first
    text = (
        f"The answer lay between the sizes tried ({hi}, above {lo}): {_sizes(added)} added by bisection so "
        "that it is an exact size, not a grid point."
    )
    return plan, outcome, [Note(NoteKind.GRID, text)]


def id_candidates(answer: int, est: IntrinsicDim | None) -> list[int]:
    """The sizes at the intrinsic dimension that an answer far above it is checked against: the integers
    around the mean of TwoNN and MLE, when both agree and the answer exceeds ``ID_FACTOR`` times it."""
    if est is None or not (math.isfinite(est.twonn) and math.isfinite(est.mle)):
        return []
    mean = (est.twonn + est.mle) / 2
    if abs(est.twonn - est.mle) > max(1.0, ID_AGREE * mean) or answer <= ID_FACTOR * mean:
        return []
    return sorted({d for d in (math.floor(mean), math.ceil(mean)) if 1 <= d < answer})


def _near_intrinsic(
    executor: Executor, plan: SweepPlan, outcome: Outcome, ledger: Ledger
) -> tuple[SweepPlan, Outcome, list[Note]]:
    """Train the sizes at the intrinsic dimension (``id_candidates``) when the answer is far above it.

    Whether a smaller VAE can reach the larger one is a question of training and capacity, measured
    here rather than assumed. Sizes already trained are not trained again. When one of them comes within
    the tolerance, the rule recommends it and a note says so (else ``capacity_check`` says why not)."""
    rec = _answer(plan, outcome, ledger)
    if rec is None or rec.dim < MIN_CHECKED:
        return plan, outcome, []
    if plan.intrinsic is None:  # a grid given by --dims: estimate it now (seconds), for the check only
        try:
            plan = replace(plan, intrinsic=estimate_intrinsic_dim(ledger.data, seed=plan.config.train.seed))
        except ZdimError:
            return plan, outcome, []  # too few samples to estimate: nothing to check against
    est = plan.intrinsic
    assert est is not None
    candidates = id_candidates(rec.dim, est)
    missing = [d for d in candidates if d not in plan.config.dims]
    if not missing:
        return plan, outcome, []
    mean = (est.twonn + est.mle) / 2
    plan = plan.with_dims((*plan.config.dims, *missing))
    ledger.progress.note(
        f"capacity: the answer {rec.dim} is above {ID_FACTOR:g} x the intrinsic dimension {mean:.1f}; "
        f"training size(s) {', '.join(map(str, missing))} to convergence"
    )
    outcome = executor.run(plan)
    after = _answer(plan, outcome, ledger)
    if after is None or after.dim > max(candidates):
        return plan, outcome, []
    text = (
        f"The answer had been {rec.dim}, above {ID_FACTOR:g} times the intrinsic dimension {mean:.1f} "
        f"(TwoNN {est.twonn:.1f}, MLE {est.mle:.1f}): {_sizes(missing)} trained to convergence at the estimate, "
        f"and size {after.dim} comes within the tolerance."
    )
    return plan, outcome, [Note(NoteKind.GRID, text)]


def capacity_check(rec: Recommendation, outcome: Outcome, est: IntrinsicDim | None) -> Recommendation:
    """``rec`` with the intrinsic-dimension check said: when the answer is still far above an estimate
    that TwoNN and MLE agree on, the measured gap of the sizes at the estimate (trained by ``grow``) to
    the answer, with its paired standard error, as a ``CAUTION`` that names the figures; when a size at
    the estimate was recommended, a note saying so. ``rec.capacity`` keeps the figures for the report."""
    if est is None:
        return rec
    mean = (est.twonn + est.mle) / 2
    words = f"about {mean:.1f} (TwoNN {est.twonn:.1f}, MLE {est.mle:.1f})"
    tried = {r.dim for r in outcome.records if r.complete}
    wanted = id_candidates(rec.dim, est)
    candidates = [d for d in wanted if d in tried]
    if wanted and not candidates:  # --no-refine, or the sizes at the estimate failed: say it is not measured
        text = (
            f"the data's intrinsic dimension is {words}, but the answer is {rec.dim}: no size at the estimate "
            f"({', '.join(map(str, wanted))}) completed, so whether a smaller VAE does as well is not measured; "
            "rerun without --no-refine"
        )
        return rec.with_notes(caution(text, "capacity"))
    if not candidates:
        return rec  # the answer is not far above the estimate
    rows = {r["dim"]: r for r in rec.per_dim}
    se = (
        paired_se([t for t in outcome.records if t.complete], outcome.per_sample, rec.dim) if outcome.per_sample else {}
    )
    figures: dict[str, dict[str, float | bool | None]] = {}
    for d in candidates:
        if d not in rows or rec.dim not in rows:
            continue
        gap = float(rows[d]["nll_mean"] - rows[rec.dim]["nll_mean"])
        conv = [t.converged for t in outcome.records if t.complete and t.dim == d]
        figures[str(d)] = {"gap": gap, "paired_se": se.get(d), "converged": all(c is not False for c in conv)}
    if not figures:
        return rec
    best = max(figures, key=int)  # the largest size at the estimate: the closest to the answer
    f = figures[best]
    gap, se_value = float(f["gap"] or 0.0), f["paired_se"]
    se_words = f" (paired SE {se_value:.2f})" if isinstance(se_value, float) else ""
    conv_words = "after converging" if f["converged"] else "though it had not converged"
    if gap <= max(rec.tolerance, se_value if isinstance(se_value, float) else 0.0):
        text = (
            f"the data's intrinsic dimension is {words}, but the answer is {rec.dim}: a size-{best} VAE comes "
            f"within the rule's tolerance of it ({gap:+.2f} nats{se_words}), so by held-out NLL {best} units do "
            f"as well; rule '{rec.rule}' picks {rec.dim}"
        )
    else:
        text = (
            f"the data's intrinsic dimension is {words}, but the answer is {rec.dim}: a size-{best} VAE of this "
            f"architecture stays {gap:.2f} nats worse{se_words} {conv_words}, so this VAE needs {rec.dim} units; "
            "a wider decoder (--hidden) may need fewer"
        )
    capacity = {"intrinsic": mean, "twonn": est.twonn, "mle": est.mle, "answer": rec.dim, "sizes": figures}
    return replace(rec, capacity=capacity).with_notes(caution(text, "capacity"))


__all__ = ["grow", "recommend_outcome", "capacity_check", "id_candidates", "ID_FACTOR"]
