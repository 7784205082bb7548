"""Where the grid grows: at its edge, between the sizes tried, and near the intrinsic dimension.

Each growth asks the executor for more sizes (``Executor.run`` with a grown plan; points already
finished are not trained again) and says what it added and why (a ``GRID`` note):

- **The edge** (``plan.extend``): while the answer, or the NLL knee, is the largest size tried (and every
  unit of the answer's models is active, or the knee is still falling there), twice that size is tried,
  up to the feature count (for Gaussian data the feature count is the last size: an answer there says
  that no compression was found). An answer at the smallest size tried, above 1, halves it.
- **Between sizes** (``plan.refine``, the default): while the answer sits above a gap of more than one
  size, the midpoint is tried (bisection; a gap of at most ``REFINE_AT_ONCE`` sizes is filled at once, its
  members training together), so the answer is an exact size, not the grid's coarseness: a largest
  model keeping 12 active units gives about 12, not the 16 of a grid 8, 16, 32.
- **The intrinsic dimension** (with ``plan.refine`` too; ``zdim.answer.capacity``): when the answer is more than
  ``ID_FACTOR`` times an intrinsic-dimension estimate on which TwoNN and MLE agree, the sizes at the
  estimate are trained to convergence. If one comes within the rule's tolerance the rule recommends it;
  if none does, the answer says so with the measured gap and its paired standard error (a ``CAUTION``),
  and the recommendation keeps the check (``Recommendation.capacity``).
- **Seeds where the answer needs them** (``SweepConfig.seeded``, settle mode's default run): the grid and
  its growth train one seed per size; then the sizes that decide the answer (the answer, the next smaller
  size tried, which the rule judged not good enough, and the best size) get every seed, and again while
  the answer moves. A size far from the answer is not retrained to tell it from itself.
"""

from __future__ import annotations

from dataclasses import replace

from ...answer.capacity import ID_FACTOR, MIN_CHECKED, id_candidates
from ...answer.decide import Evidence, decide
from ...answer.recommendation import Recommendation
from ...data.dataset import Data
from ...errors import ZdimError
from ...evaluation.intrinsic import estimate_intrinsic_dim
from ...evidence import Note, NoteKind
from ..planning.plan import SweepPlan
from ..records.ledger import Executor, Ledger, Outcome

REFINE_STEPS = 16  # bisection halves the gap each step: 16 cover any latent size
REFINE_AT_ONCE = 4  # a gap of at most this many sizes is filled in one phase rather than halved


def _sizes(sizes: list[int]) -> str:
    """``size 3 was`` / ``sizes 3, 5 were``."""
    return f"size {sizes[0]} was" if len(sizes) == 1 else f"sizes {', '.join(map(str, sizes))} were"


def recommend_outcome(plan: SweepPlan, outcome: Outcome, data: Data) -> Recommendation | None:
    """The answer of an outcome under the plan's question (``zdim.answer.decide.decide``, without the bootstrap);
    None when no trial completed."""
    return decide(Evidence(outcome.records, outcome.per_sample, plan.intrinsic), plan.question(data))


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
    plan, outcome, note = _seed(executor, plan, outcome, ledger)
    return plan, outcome, notes + note


def competitors(rec: Recommendation, tried: set[int]) -> set[int]:
    """The sizes that decide ``rec``: the answer, the next smaller size tried (judged not good enough) and
    the best size (the threshold's)."""
    lower = max((d for d in tried if d < rec.dim), default=None)
    return {rec.dim, rec.best_dim} | ({lower} if lower is not None else set())


SEED_ROUNDS = 4  # the answer moved by further seeds is looked at again, this many times at most


def _seed(
    executor: Executor, plan: SweepPlan, outcome: Outcome, ledger: Ledger
) -> tuple[SweepPlan, Outcome, list[Note]]:
    """Every seed for the sizes that compete for the answer (``competitors``), while it moves; bisection
    again when it moved above a gap (see the module docstring)."""
    config = plan.config
    if config.seeded is None or config.seeds <= 1:
        return plan, outcome, []
    notes: list[Note] = []
    for _ in range(SEED_ROUNDS):
        rec = _answer(plan, outcome, ledger)
        if rec is None:
            break
        tried = {r.dim for r in outcome.records if r.complete}
        want = sorted(competitors(rec, tried) - set(plan.config.seeded or ()))
        if not want:
            break
        plan = replace(plan, config=plan.config.with_seeded(want))
        ledger.progress.phase(
            f"seeds: {_sizes(want).rsplit(' ', 1)[0]} {'competes' if len(want) == 1 else 'compete'} for the answer "
            f"{rec.dim}; {plan.config.seeds} seeds each",
            len(want) * (plan.config.seeds - 1),
        )
        outcome = executor.run(plan)
        if plan.refine is not False:
            plan, outcome, note = _refine(executor, plan, outcome, ledger)
            notes += note
    seeded = list(plan.config.seeded or ())
    if seeded:
        others = sorted(set(plan.config.dims) - set(seeded))
        rest = (
            f", the other{'s' if len(others) != 1 else ''} ({', '.join(map(str, others))}) with one" if others else ""
        )
        text = (
            f"Seeds as the answer needs them: {_sizes(seeded)} trained with {plan.config.seeds} seeds, as "
            f"they decide the answer (it, the next smaller size and the best){rest}; --seeds N trains N for "
            "every size."
        )
        notes.append(Note(NoteKind.GRID, text))
    return plan, outcome, notes


def reach(plan: SweepPlan, n_features: int) -> str:
    """How far the grid may grow, in words, said before training: ``the grid may grow: above 8 up to 64
    (the feature count), below 2 down to 1, and between sizes (bisection); --no-extend and --no-refine
    hold it``; empty when neither may happen."""
    lo, hi = min(plan.config.dims), max(plan.config.dims)
    parts = []
    if plan.extend and hi < n_features:
        parts.append(f"above {hi} up to {n_features} (the feature count)")
    if plan.extend and lo > 1:
        parts.append(f"below {lo} down to 1")
    extends = bool(parts)
    if plan.refine is not False:
        parts.append("between sizes (bisection) and at the intrinsic dimension")
    if not parts:
        return ""
    holds = [f for f, on in (("--no-extend", extends), ("--no-refine", plan.refine is not False)) if on]
    return f"the grid may grow: {', '.join(parts)}; {' and '.join(holds)} hold{'s' if len(holds) == 1 else ''} it"


def _answer(plan: SweepPlan, outcome: Outcome, ledger: Ledger) -> Recommendation | None:
    return recommend_outcome(plan, outcome, ledger.data)


def _extend(
    executor: Executor, plan: SweepPlan, outcome: Outcome, ledger: Ledger
) -> tuple[SweepPlan, Outcome, list[Note]]:
    """Grow the grid at its edges: while the answer is the largest size tried with every unit of its models
    active, or the NLL knee is the largest size tried (a larger size may fit better, whatever the active
    units say), train twice that size (at most the feature count); then, while the answer is the smallest
    size tried and above 1, train half of it."""
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
        ledger.progress.phase(f"extend: {why.split(' (')[0]}; trying size {new}", plan.config.seeds_of(new))
        outcome = executor.run(plan)
    notes = [Note(NoteKind.GRID, f"The grid grew at its edge: {_sizes(added)} added, as {why}.")] if added else []
    below: list[int] = []
    while True:  # the lower edge: an answer at the smallest size tried, above 1, was never compared with less
        rec = _answer(plan, outcome, ledger)
        low = min(plan.config.dims)
        if rec is None or rec.dim != low or low <= 1:
            break
        new = max(1, low // 2)
        below.append(new)
        plan = plan.with_dims((*plan.config.dims, new))
        ledger.progress.phase(
            f"extend: the answer is the smallest size tried ({low}); trying size {new}", plan.config.seeds_of(new)
        )
        outcome = executor.run(plan)
    if below:
        notes.append(
            Note(
                NoteKind.GRID,
                f"The grid grew below its smallest size: {_sizes(below)} added, as the answer was the smallest "
                "size tried.",
            )
        )
    return plan, outcome, notes


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
        between = list(range(lower + 1, rec.dim))
        # a short gap in one phase (its members train together, stacked: about the cost of one), a long
        # one halved
        mids = between if len(between) <= REFINE_AT_ONCE else [(lower + rec.dim) // 2]
        added += mids
        plan = plan.with_dims((*plan.config.dims, *mids))
        after = 0 if len(mids) > 1 else (-(-(rec.dim - lower) // 2) - 1).bit_length()  # steps that may follow
        seeds = sum(plan.config.seeds_of(d) for d in mids)
        ledger.progress.phase(
            f"refine: trying {_sizes(mids).rsplit(' ', 1)[0]} between {lower} and {rec.dim}", seeds, after
        )
        outcome = executor.run(plan)
    if first is None:
        return plan, outcome, []
    lo, hi = first
    text = (
        f"The answer lay between the sizes tried ({hi}, above {lo}): {_sizes(sorted(added))} added by bisection "
        "so that it is an exact size, not a grid point."
    )
    return plan, outcome, [Note(NoteKind.GRID, text)]


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
    ledger.progress.phase(
        f"capacity: the answer {rec.dim} is above {ID_FACTOR:g} x the intrinsic dimension {mean:.1f}; "
        f"training size(s) {', '.join(map(str, missing))} to convergence",
        sum(plan.config.seeds_of(d) for d in missing),
    )
    outcome = executor.run(plan)
    after = _answer(plan, outcome, ledger)
    if after is None or after.dim > max(candidates):
        return plan, outcome, []
    text = (
        f"The answer had been {rec.dim}, above {ID_FACTOR:g} times the intrinsic dimension {mean:.1f} "
        f"(TwoNN {est.twonn:.1f}, MLE {est.mle:.1f}): {_sizes(missing)} trained to convergence at the estimate, "
        f"and the rule now answers {after.dim}: it does as well by held-out NLL."
    )
    return plan, outcome, [Note(NoteKind.GRID, text)]


__all__ = ["grow", "reach", "recommend_outcome", "ID_FACTOR"]
