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

``recommend`` reads the table (``zdim.answer.envelope.size_table``: the sizes, their gaps and the lower
envelope), takes every signal's pick and the rule's, and joins the checks' warnings with the rationale
(``zdim.answer.wording``). This module knows nothing of how results were produced: it takes typed trial
records (``zdim.records.TrialRecord``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..errors import ConfigError
from ..evidence import Note, NoteKind, warning
from ..records import TrialRecord
from . import signals as sig
from .checks import checks
from .envelope import GEN_FIELDS, SizeTable, aggregate, mean_se, per_size, size_table, tolerance
from .recommendation import DEFAULT_RANGE_TOL, Recommendation
from .wording import envelope_words, failed_words, rationale, reference_words, rule_words

RULES = sig.names()  # the rules when this module was imported: zdim.answer.signals.names() reads them live
DEFAULT_RULE = "combined"
FALLBACK_RULE = "nll-knee"  # the rule every record can answer: the held-out NLL is always measured
DEFAULT_REL_TOL = 0.01
DEFAULT_GEN_TOL = 0.10  # relative Frechet-distance tolerance of the generation rule


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

    Three steps: the table (``zdim.answer.envelope.size_table``: trials that learned nothing left out
    unless every trial did, every size's gap to the best with its standard error, over seeds and paired
    over ``per_sample[(dim, seed)]``, the (N,) held-out NLL of each sample, the same samples for every
    trial; the tolerance; the lower envelope), the picks (``picks``: every signal's, kept in ``signals``;
    ``rule`` decides which one is the recommendation, and no pick is a size off the envelope), and the
    words (the sanity checks' warnings, ``zdim.answer.checks.checks``, and the rationale,
    ``zdim.answer.wording``). With ``n_features``, a knee at the largest size tried below it is not settled
    either, and an answer at the feature count says that no compression was found. Raises ``ConfigError``
    for an unknown rule or a negative tolerance, and ``ValueError`` when no trial completed.
    """
    q = question if question is not None else Question(**asked)
    if question is not None and asked:
        raise TypeError("recommend() takes question= or its fields as keywords, not both")
    asked_signal = sig.get(q.rule)  # ConfigError naming the rules for an unknown one
    for name, v in (("tolerance", q.rel_tol), ("range tolerance", q.range_tol), ("generation tolerance", q.gen_tol)):
        if not (v >= 0 and math.isfinite(v)):
            raise ConfigError(f"{name} must be a finite number >= 0, got {v!r}: fix --tolerance")
    table = size_table(
        trials, per_sample, likelihood=q.likelihood, rel_tol=q.rel_tol, range_tol=q.range_tol, gen_tol=q.gen_tol
    )
    signals, passed, chosen = picks(table, q, asked_signal)
    notes = _notes(table, q, signals, chosen)
    return Recommendation(
        dim=chosen["dim"],
        rule=q.rule,
        best_dim=table.best["dim"],
        threshold=table.best["nll_mean"] + table.tol,
        tolerance=table.tol,
        rel_tol=q.rel_tol,
        per_dim=table.rows,
        largest_dim=table.rows[-1]["dim"],
        largest_active_units=table.rows[-1]["active_units_mean"],
        failed_trials=len(table.failures),
        range_tol=q.range_tol,
        signals=signals,
        intrinsic_dim=q.intrinsic_dim,
        notes=[*notes, *(Note(NoteKind.RULE, t) for t in _words(table, signals, asked_signal, passed, chosen, notes))],
    )


def picks(table: SizeTable, q: Question, asked: sig.Signal) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Every signal's pick (size or None, with the intrinsic-dimension estimate and whether the largest
    model collapsed), the row the rule picked, and the answer: that row, or for the rules that read held-out
    NLL the smallest size on the envelope no worse than it (``quieter``)."""
    reading = table.reading
    found = {s.name: s.pick(reading) for s in sig.views()}
    signals: dict[str, Any] = {name: (p["dim"] if p else None) for name, p in found.items()}
    signals.update({"intrinsic-dim": q.intrinsic_dim, "largest_collapsed": sig.collapsed(reading)})
    pick = found[q.rule] if q.rule in found else asked.pick(reading)
    if pick is None:
        raise ConfigError(asked.why_missing())
    return signals, pick, quieter(pick, reading.on) if asked.reads_nll else pick  # never a noisier larger size


def _notes(table: SizeTable, q: Question, signals: dict[str, Any], chosen: dict[str, Any]) -> list[Note]:
    """The sanity checks' warnings and cautions on the answer, warnings first."""
    rows, top = table.rows, table.rows[-1]["dim"]
    notes = checks(table.measured, table.used, table.empty, rows, chosen["dim"], q.likelihood, q.n_features)
    knee = signals["nll-knee"]
    if knee == top and chosen["dim"] != top and q.n_features is not None and top < q.n_features:
        notes.append(
            warning(
                f"the NLL knee is the largest size tried ({top}): a larger size may fit better and move the "
                f"answer, which the active units put at {chosen['dim']}; try larger sizes",
                "knee-edge",
            )
        )
    return [n for n in notes if n.kind is NoteKind.WARNING] + [n for n in notes if n.kind is NoteKind.CAUTION]


def _words(
    table: SizeTable,
    signals: dict[str, Any],
    asked: sig.Signal,
    passed: dict[str, Any],
    chosen: dict[str, Any],
    notes: list[Note],
) -> list[str]:
    """The rationale's sentences (``zdim.answer.wording``), in the order a reader follows them."""
    rows, reading = table.rows, table.reading
    knee = next(r for r in rows if r["dim"] == signals["nll-knee"])
    au_pick = next(r for r in rows if r["dim"] == signals["active-units"])
    codes = {n.code for n in notes}
    edge: bool | str = "features" if "no-compression" in codes else "edge" in codes
    no_latent = all(t.active_units == 0 for t in table.used)
    sentences = rationale(
        knee, table.best, rows[-1], table.tol, table.terms, rows, table.failures, no_latent=no_latent, edge=edge
    )
    sentences += failed_words(table.failures, len(table.measured))
    sentences += reference_words(table.used)
    sentences += envelope_words(rows, table.dominated, signals, au_pick)
    sentences += rule_words(asked, passed["dim"], signals, reading)
    if chosen is not passed:
        sentences.append(
            f"Size {chosen['dim']} has a lower mean NLL than {passed['dim']} ({chosen['nll_mean']:.2f} against "
            f"{passed['nll_mean']:.2f}), so the answer is {chosen['dim']}: a quieter smaller size is never passed "
            "over for a noisier larger one."
        )
    return sentences


def quieter(chosen: dict[str, Any], on: list[dict[str, Any]]) -> dict[str, Any]:
    """The smallest size on the lower envelope whose mean held-out NLL is no higher than that of
    ``chosen``, the size a rule accepts (``chosen`` itself when none is smaller)."""
    return next(r for r in on if r["dim"] <= chosen["dim"] and r["nll_mean"] <= chosen["nll_mean"])


__all__ = [
    "Question",
    "recommend",
    "picks",
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
