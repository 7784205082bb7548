"""The rule that turns trial results into one recommended latent size, with its rationale.

Signals (see docs/recommendation.md): held-out NLL (IWAE bound) per size, averaged over seeds; the
active units of the largest model; generation quality (Frechet distance of decoded prior samples to
held-out data); the intrinsic-dimension estimate (recorded beside, never used alone).

Rules (``--rule``):

- ``nll-knee``: the *smallest* size whose mean NLL is within a tolerance of the best, where the
  tolerance is ``max(rel_tol * |best NLL|, range_tol * (NLL of the smallest size - best NLL), SE of the
  best size)``. The range term keeps the rule meaningful where the NLL is near 0 (standardized Gaussian
  data), where a tolerance relative to ``|best NLL|`` vanishes; SE is the standard error across seeds.
  Where the per-sample held-out NLL of every trial is given (the same samples for every size: paired),
  a size also counts as within it when its NLL exceeds the best by no more than the paired standard
  error of that difference (``paired_se``): a gap the held-out samples cannot tell from noise. The rule
  reads the best size's SE over seeds, never the candidate's own; and a size whose mean NLL is no higher
  than that of a size within it is accepted too (``signals.accept``).
- ``active-units``: the smallest size tried that holds the active units of the largest model.
- ``generation``: the smallest size whose mean Frechet distance is within ``gen_tol`` (relative) of
  the best.
- ``combined`` (default): the smaller of ``nll-knee`` and ``active-units`` when the largest model has
  collapsed units (so its active units measure what the data need); ``nll-knee`` otherwise.

``combined`` and ``nll-knee`` never pass a quieter smaller size over for a noisier larger one: their
answer is the smallest size on the envelope whose mean NLL is no higher than their pick's (``quieter``).

Sanity checks (``Recommendation.warnings``, ``Recommendation.settled``): models that learned nothing
are left out of the rules; an answer resting on models without latent structure, on a test split too
small to measure NLL differences, on unconverged training or on the grid's largest size with every unit
active is reported as not settled.

This module knows nothing of how results were produced: it takes typed trial records
(``zdim.records.TrialRecord``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..errors import ConfigError
from ..evidence import Note, NoteKind, warning
from ..likelihoods import find
from ..records import TrialRecord, TrialStatus
from . import signals as sig
from .checks import below_linear, checks, learned_nothing
from .pairing import _pair_se, envelope, gap_se, size_means
from .recommendation import DEFAULT_RANGE_TOL, Recommendation, _num
from .signals import Reading, units

RULES = sig.names()  # the rules when this module was imported: zdim.answer.signals.names() reads them live
DEFAULT_RULE = "combined"
FALLBACK_RULE = "nll-knee"  # the rule every record can answer: the held-out NLL is always measured
DEFAULT_REL_TOL = 0.01
DEFAULT_GEN_TOL = 0.10  # relative Frechet-distance tolerance of the generation rule
GEN_FIELDS = ("gen_fd", "gen_precision", "gen_recall", "gen_density", "gen_coverage", "gen_mmd", "gen_probe_acc")


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for a single value): the one definition of "mean ± SE
    over seeds" for the rule, ``recommendation.json`` and the report's curves."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def aggregate(trials: Sequence[TrialRecord], metric: str = "nll", extra: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Per latent size: mean and standard error of ``metric``, of active units, of generation quality and
    of the ``extra`` metrics (``mse``) over complete trials.

    Trials without a finite ``metric`` are left out; a trial without ``active_units`` counts as 0.
    """
    by_dim: dict[int, list[TrialRecord]] = {}
    values: dict[int, list[float]] = {}
    for t in trials:
        v = t.metric(metric)
        if t.complete and v is not None:
            by_dim.setdefault(t.dim, []).append(t)
            values.setdefault(t.dim, []).append(v)
    rows = []
    for dim in sorted(by_dim):
        ts = by_dim[dim]
        mean, se = mean_se(values[dim])
        held = [float(t.active_units or 0) for t in ts]
        au_mean, au_se = mean_se(held)
        row: dict[str, Any] = {
            "dim": dim,
            "n_seeds": len(ts),
            f"{metric}_mean": mean,
            f"{metric}_se": se,
            "active_units_mean": au_mean,
            "active_units_se": au_se,
            "active_units_min": min(held),
            "active_units_max": max(held),
        }
        linear = [t.metric("linear_nll") for t in ts]
        if all(v is not None for v in linear):  # probabilistic PCA of the size on the same held-out samples
            row["linear_mean"] = sum(v for v in linear if v is not None) / len(linear)
            row["below_linear"] = all(below_linear(t) for t in ts)
        for g in (*GEN_FIELDS, *extra):  # generation quality and the extra metrics, where trials measured them
            vals = [v for v in (t.metric(g) for t in ts) if v is not None]
            if vals:
                row[f"{g}_mean"], row[f"{g}_se"] = mean_se(vals)
        rows.append(row)
    return rows


def per_size(trials: Sequence[TrialRecord], metrics: Sequence[str]) -> dict[str, dict[int, tuple[float, float]]]:
    """metric -> size -> (mean, standard error over seeds) of the complete trials that measured it."""
    values: dict[str, dict[int, list[float]]] = {}
    for t in trials:
        for m in metrics:
            v = t.metric(m)
            if t.complete and v is not None:
                values.setdefault(m, {}).setdefault(t.dim, []).append(v)
    return {m: {d: mean_se(vs) for d, vs in sorted(by.items())} for m, by in values.items()}


@dataclass(frozen=True)
class Question:
    """What an answer is asked under: the rule, its tolerances, and what is known of the data (its
    likelihood, its feature count, its intrinsic-dimension estimate). One value serves settle mode's answer
    after every epoch, the growth of the grid, the bootstrap and the final answer (``zdim.answer.decide``), so
    the answer a run waits on is the answer it prints."""

    rule: str = DEFAULT_RULE
    rel_tol: float = DEFAULT_REL_TOL
    range_tol: float = DEFAULT_RANGE_TOL
    gen_tol: float = DEFAULT_GEN_TOL
    likelihood: str | None = None
    n_features: int | None = None
    intrinsic_dim: int | None = None

    def given(self, have: Collection[str]) -> Question:
        """This question where the records carry the evidence its rule needs (``have``: metric names);
        else the same question under ``FALLBACK_RULE``. Settle mode's scores after each epoch hold no
        generation metrics (measured once training has ended), so under ``--rule generation`` it
        follows the NLL knee while it trains, and the rule answers on the final records."""
        return self if sig.get(self.rule).evidence() <= set(have) else replace(self, rule=FALLBACK_RULE)


def recommend(
    trials: Sequence[TrialRecord],
    *,
    per_sample: Mapping[tuple[int, int], Any] | None = None,
    question: Question | None = None,
    **asked: Any,
) -> Recommendation:
    """Recommend a latent size from trial records, under ``question`` (or its fields as keywords:
    ``rule``, ``rel_tol``, ``range_tol``, ``gen_tol``, ``likelihood``, ``n_features``, ``intrinsic_dim``).

    Every rule's pick is computed and kept in ``signals``; ``rule`` decides which one is the
    recommendation. Trials that learned nothing (``zdim.answer.checks.learned_nothing``, by ``likelihood``) are
    left out unless every trial did. Every pick lies on the lower envelope: a size whose held-out NLL is
    worse, beyond the standard error of that difference, than a smaller size's is never chosen
    (``envelope``); a pick that is such a size moves to the next larger size that is not. A size is within
    the tolerance of the best when its NLL gap to the best is no more than the tolerance (``tolerance``) or
    the standard error of that gap (``gap_se``: over seeds, and paired over ``per_sample[(dim, seed)]``,
    the (N,) held-out NLL of each sample, the same samples for every trial).
    The sanity checks (``zdim.answer.checks.checks``) add warnings; with ``n_features``, a knee at the largest
    size tried below it is not settled either, and an answer at the feature count says that no
    compression was found. Raises ``ConfigError`` for an unknown rule or a negative tolerance, and
    ``ValueError`` when no trial completed.
    """
    q = question if question is not None else Question(**asked)
    if question is not None and asked:
        raise TypeError("recommend() takes question= or its fields as keywords, not both")
    rule, rel_tol, range_tol, gen_tol, likelihood = q.rule, q.rel_tol, q.range_tol, q.gen_tol, q.likelihood
    asked_signal = sig.get(rule)  # ConfigError naming the rules for an unknown one
    for name, v in (("tolerance", rel_tol), ("range tolerance", range_tol), ("generation tolerance", gen_tol)):
        if not (v >= 0 and math.isfinite(v)):
            raise ConfigError(f"{name} must be a finite number >= 0, got {v!r}: fix --tolerance")
    failed = sum(1 for t in trials if t.status is TrialStatus.FAILED)
    measured = [t for t in trials if t.complete and t.metric("nll") is not None]
    if not measured:
        raise ValueError(f"no trial completed ({failed} failed): nothing to recommend")
    empty = [t for t in measured if learned_nothing(t, likelihood)]
    used = [t for t in measured if not learned_nothing(t, likelihood)] or measured
    rows = aggregate(used)
    best = min(rows, key=lambda r: r["nll_mean"])
    family = find(likelihood)
    tol, terms = tolerance(rows, best, rel_tol if family is None or family.relative_tolerance else None, range_tol)
    threshold = best["nll_mean"] + tol
    means = size_means(used, per_sample) if per_sample else None
    dominated = envelope(rows, means)
    for r in rows:
        r["gap"] = r["nll_mean"] - best["nll_mean"]
        r["gap_se"] = gap_se(r, best, means)
        paired = _pair_se(means, r["dim"], best["dim"]) if means is not None else 0.0
        if means is not None:
            r["nll_paired_se"] = paired
        r["within_se"] = max(paired, best["nll_se"])  # the one-SE rule reads the best size's SE, not r's
        if r["dim"] in dominated:
            r["worse_than"] = dominated[r["dim"]][0]
    sig.accept(rows, tol)
    on = [r for r in rows if r["dim"] not in dominated]  # the lower envelope (the best is always on it)
    reading = Reading(rows, on, tol, gen_tol)
    picks = {s.name: s.pick(reading) for s in sig.views()}
    knee, au_pick = picks["nll-knee"], picks["active-units"]
    assert knee is not None and au_pick is not None  # both always point somewhere on the envelope
    largest = rows[-1]
    au = largest["active_units_mean"]
    signals: dict[str, Any] = {name: (p["dim"] if p else None) for name, p in picks.items()}
    signals.update({"intrinsic-dim": q.intrinsic_dim, "largest_collapsed": sig.collapsed(reading)})
    pick = picks[rule] if rule in picks else asked_signal.pick(reading)
    if pick is None:
        raise ConfigError(asked_signal.why_missing())
    chosen = passed = pick
    if asked_signal.reads_nll:  # the rules that read held-out NLL: never a noisier larger size
        chosen = quieter(chosen, on)
    notes = checks(measured, used, empty, rows, chosen["dim"], likelihood, q.n_features)
    top = rows[-1]["dim"]
    if knee["dim"] == top and chosen["dim"] != top and q.n_features is not None and top < q.n_features:
        notes.append(
            warning(
                f"the NLL knee is the largest size tried ({top}): a larger size may fit better and move the "
                f"answer, which the active units put at {chosen['dim']}; try larger sizes",
                "knee-edge",
            )
        )
    notes = [n for n in notes if n.kind is NoteKind.WARNING] + [n for n in notes if n.kind is NoteKind.CAUTION]
    no_latent = all(t.active_units == 0 for t in used)
    codes = {n.code for n in notes}
    edge: bool | str = "features" if "no-compression" in codes else "edge" in codes
    failures = [t for t in trials if t.status is TrialStatus.FAILED]
    sentences = _rationale(knee, best, largest, tol, terms, rows, failures, no_latent=no_latent, edge=edge)
    sentences += _failed_words(failures, len(measured))
    sentences += _reference_words(used)
    sentences += _envelope_words(rows, dominated, signals, au_pick)
    sentences += _rule_words(asked_signal, passed["dim"], signals, reading)
    if chosen is not passed:
        sentences.append(
            f"Size {chosen['dim']} has a lower mean NLL than {passed['dim']} ({chosen['nll_mean']:.2f} against "
            f"{passed['nll_mean']:.2f}), so the answer is {chosen['dim']}: a quieter smaller size is never passed "
            "over for a noisier larger one."
        )
    return Recommendation(
        dim=chosen["dim"],
        rule=rule,
        best_dim=best["dim"],
        threshold=threshold,
        tolerance=tol,
        rel_tol=rel_tol,
        per_dim=rows,
        largest_dim=largest["dim"],
        largest_active_units=au,
        failed_trials=failed,
        range_tol=range_tol,
        signals=signals,
        intrinsic_dim=q.intrinsic_dim,
        notes=[*notes, *(Note(NoteKind.RULE, t) for t in sentences)],
    )


def quieter(chosen: dict[str, Any], on: list[dict[str, Any]]) -> dict[str, Any]:
    """The smallest size on the lower envelope whose mean held-out NLL is no higher than that of
    ``chosen``, the size a rule accepts (``chosen`` itself when none is smaller)."""
    return next(r for r in on if r["dim"] <= chosen["dim"] and r["nll_mean"] <= chosen["nll_mean"])


def _reference_words(trials: Sequence[TrialRecord]) -> list[str]:
    """The references the table is read against, on the same held-out samples: the model without latents
    (``baseline_nll``) and the full-covariance Gaussian (``full_nll``, Gaussian data); the per-size linear
    model is the table's ``linear`` column."""
    parts = []
    for name, words in (
        ("baseline_nll", "decoding the feature means (no latents) {:.2f}"),
        ("full_nll", "the full-covariance Gaussian {:.2f}, the best linear model of any size"),
    ):
        values = [v for t in trials if (v := t.metric(name)) is not None]
        if values:
            parts.append(words.format(sum(values) / len(values)))
    if not parts:
        return []
    return [f"References on the same held-out samples (nats per sample): {'; '.join(parts)}."]


def tolerance(
    rows: list[dict[str, Any]], best: dict[str, Any], rel_tol: float | None, range_tol: float
) -> tuple[float, str]:
    """The NLL tolerance in nats per sample, and its terms in words: the largest of ``rel_tol`` of the best
    NLL (None: no such term, for a likelihood whose NLL has no natural scale,
    ``Likelihood.relative_tolerance``), ``range_tol`` of the NLL range over sizes (from the smallest
    size to the best), and the standard error of the best size over its seeds."""
    nll_range = max(0.0, rows[0]["nll_mean"] - best["nll_mean"])
    parts = [(range_tol * nll_range, f"{range_tol:.1%} of the NLL range over sizes ({range_tol * nll_range:.2f})")]
    if rel_tol is not None:
        value = rel_tol * abs(best["nll_mean"])
        parts.insert(0, (value, f"{rel_tol:.1%} of the best NLL ({value:.2f})"))
    if best["n_seeds"] > 1:
        parts.append(
            (best["nll_se"], f"the best size's standard error over {best['n_seeds']} seeds ({best['nll_se']:.2f})")
        )
    tol = max(v for v, _ in parts)
    if len(parts) == 1:
        words = parts[0][1]
    else:
        words = (
            f"the {'largest' if len(parts) > 2 else 'larger'} of "
            + ", ".join(w for _, w in parts[:-1])
            + f" and {parts[-1][1]}"
        )
    if rel_tol is None:
        words += " (this likelihood's NLL has no natural scale, so no share of the best NLL is used)"
    return tol, words


def _envelope_words(
    rows: list[dict[str, Any]],
    dominated: dict[int, tuple[int, float, float]],
    signals: dict[str, Any],
    au_pick: dict[str, Any],
) -> list[str]:
    """The sizes no answer may be, and where a pick moved because of them."""
    if not dominated:
        return []
    named = "; ".join(
        f"{d} is {g:.2f} nats worse than {s} (SE {se:.2f})" for d, (s, g, se) in sorted(dominated.items())
    )
    text = [f"Sizes worse than a smaller size beyond the standard error of the gap are never the answer: {named}."]
    by_units = next((r for r in rows if r["dim"] >= round(rows[-1]["active_units_mean"])), None)
    if by_units is not None and by_units["dim"] in dominated and by_units["dim"] != au_pick["dim"]:
        where = "the next larger size" if au_pick["dim"] > by_units["dim"] else "the largest size"
        text.append(
            f"The active units point at {by_units['dim']}, which is off that envelope, so they count for "
            f"{au_pick['dim']}, {where} that is on it."
        )
    return text


def _rule_words(rule: sig.Signal, dim: int, signals: dict[str, Any], reading: Reading) -> list[str]:
    """What the rule picked and what each signal said."""
    said = [s.words(signals[s.name], reading) for s in sig.views() if signals[s.name] is not None]
    if signals.get("intrinsic-dim") is not None:
        said.append(f"intrinsic-dimension estimate {signals['intrinsic-dim']}")
    return ["Signals: " + ", ".join(said) + ".", rule.says(dim, reading)]


def _failed_words(failures: list[TrialRecord], complete: int) -> list[str]:
    """The failed trials, named with their reasons, and what the answer rests on instead."""
    if not failures:
        return []
    shown = "; ".join(f"{t.trial}: {t.reason or 'no reason recorded'}" for t in failures[:5])
    more = f"; and {len(failures) - 5} more" if len(failures) > 5 else ""
    were = "trial failed and was" if len(failures) == 1 else "trials failed and were"
    return [
        f"{len(failures)} {were} left out ({shown}{more}): the answer rests on the other {complete} "
        f"complete trial{'s' if complete != 1 else ''}."
    ]


def _rationale(
    knee: dict[str, Any],
    best: dict[str, Any],
    largest: dict[str, Any],
    tol: float,
    terms: str,
    rows: list[dict[str, Any]],
    failures: list[TrialRecord],
    *,
    no_latent: bool = False,
    edge: bool | str = False,
) -> list[str]:
    """The NLL knee and the active units of the largest model, in short sentences, the tolerance in the
    units a user reads (nats per sample, its terms)."""
    text = [
        f"Held-out NLL (importance-weighted bound) is lowest at latent size {best['dim']} "
        f"({best['nll_mean']:.2f} nats per sample)."
    ]
    smaller = [r for r in rows if r["dim"] < knee["dim"]]
    if knee["dim"] == best["dim"] and not smaller:
        text.append(f"It is the smallest size tried, so the NLL knee is {knee['dim']}.")
    elif knee["dim"] == best["dim"]:
        closest = smaller[-1]
        text.append(
            f"No smaller size comes within the tolerance of {tol:.2f} nats: the next smaller size tried, "
            f"{closest['dim']}, is {closest['gap']:.2f} nats worse (SE {closest['gap_se']:.2f}), so the NLL knee "
            f"is {knee['dim']}."
        )
    elif not knee.get("within", True):
        by = next(r for r in rows if r["dim"] == knee["accepted_by"])
        text.append(
            f"The smallest size accepted is {knee['dim']} ({knee['gap']:.2f} nats per sample above the best): its "
            f"mean NLL ({knee['nll_mean']:.2f}) is lower than that of size {by['dim']} ({by['nll_mean']:.2f}), which "
            f"is within the tolerance, so the NLL knee is {knee['dim']}."
        )
    else:
        how = (
            f"within the tolerance of {tol:.2f} nats"
            if knee["gap"] <= tol
            else f"within one standard error of its gap to the best ({knee.get('within_se', knee['gap_se']):.2f} nats)"
        )
        text.append(
            f"The smallest size {how} is {knee['dim']} ({knee['gap']:.2f} nats per sample above the best, SE "
            f"{knee['gap_se']:.2f}), so the NLL knee is {knee['dim']}."
        )
    text.append(f"The tolerance is {terms}.")
    if any(r["gap_se"] > 0 for r in rows):
        text.append(
            "A size also counts as within it when its gap to the best is within one standard error: the paired "
            "one over the same held-out samples for every size, or the best size's over seeds, never its own."
        )
    au = largest["active_units_mean"]
    text.append(
        f"The largest model ({largest['dim']} units) keeps {units(largest)} "
        f"(variance of the posterior mean over inputs above 0.01)."
    )
    if no_latent:
        text.append("No model has an active unit, so the active units say nothing about the size.")
    elif au < 1:
        text.append("It has no active unit, so its active units say nothing about the size.")
    elif largest["dim"] == knee["dim"] and edge == "features":
        text.append("The knee is the feature count, the largest size there is.")
    elif largest["dim"] == knee["dim"]:
        text.append(
            "The knee is the largest size tried, so the grid may be too small"
            + ("." if edge else ": try larger sizes.")
        )
    elif au >= largest["dim"]:
        text.append("None collapsed: the data may use more units than the recommendation keeps.")
    elif abs(au - knee["dim"]) <= max(1.0, 0.25 * knee["dim"]):
        text.append("Its active units are in agreement with the NLL knee.")
    else:
        text.append(f"The two views of the bottleneck differ ({_num(au)} active units vs a knee of {knee['dim']}).")
    return text


__all__ = [
    "Question",
    "recommend",
    "aggregate",
    "per_size",
    "mean_se",
    "tolerance",
    "quieter",
    "Recommendation",
    "RULES",
    "DEFAULT_RULE",
    "FALLBACK_RULE",
    "DEFAULT_REL_TOL",
    "DEFAULT_RANGE_TOL",
    "DEFAULT_GEN_TOL",
    "GEN_FIELDS",
]
