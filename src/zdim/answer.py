"""The one owner of the answer: trial records in, a ``Recommendation`` with its evidence out.

Settle mode (after every epoch, on the validation subset), the growth of the grid (edge, bisection, the
intrinsic dimension), the final answer of a sweep and the bootstrap all ask ``decide`` under the same
``Question`` (``zdim.rules.Question``: the rule, its tolerances, the likelihood, the feature count, the
intrinsic-dimension estimate), so the answer a run waits on is the answer it prints:

1. ``zdim.rules.recommend``: the rule's pick on the lower envelope of held-out NLL over sizes, with the
   sanity checks (``zdim.checks``);
2. ``capacity``: the intrinsic-dimension check, when an estimate is given (``Evidence.intrinsic``);
3. ``zdim.uncertainty``: the paired bootstrap over held-out samples and seeds, when asked for
   (``resamples``), its shares shown only where it can see what unsettles the answer.

The CLI, the Python API and the report read the ``Recommendation`` it returns; none decides again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .capacity import capacity_check
from .evidence import Note
from .intrinsic import IntrinsicDim
from .records import TrialRecord
from .rules import Question, Recommendation, recommend
from .uncertainty import BOOTSTRAP_RESAMPLES, bootstrap, with_uncertainty


@dataclass(frozen=True)
class Evidence:
    """What an answer is decided from: the trial records, the per-sample held-out NLL of each trial
    (``(dim, seed) -> (N,)``, the same samples for every trial), the intrinsic-dimension estimate, and
    notes others add (how settle mode ended, how the grid grew, the whole test split)."""

    records: Sequence[TrialRecord]
    per_sample: Mapping[tuple[int, int], Any] = field(default_factory=dict)
    intrinsic: IntrinsicDim | None = None
    notes: Sequence[Note] = ()


def decide(evidence: Evidence, question: Question, *, resamples: int = 0, seed: int = 0) -> Recommendation | None:
    """The answer of ``evidence`` under ``question`` (None when no trial completed): the rule on the lower
    envelope with its checks, the notes given, the intrinsic-dimension check, and with ``resamples`` > 0
    the bootstrap (seeded by ``seed``)."""
    if not any(r.complete and r.metric("nll") is not None for r in evidence.records):
        return None
    rec = recommend(evidence.records, per_sample=evidence.per_sample or None, question=question)
    rec = capacity_check(rec.with_notes(*evidence.notes), evidence.records, evidence.per_sample, evidence.intrinsic)
    if resamples <= 0:
        return rec
    drawn = bootstrap(evidence.records, evidence.per_sample, resamples=resamples, seed=seed, question=question)
    return with_uncertainty(rec, drawn)


__all__ = ["Evidence", "decide", "Question", "BOOTSTRAP_RESAMPLES"]
