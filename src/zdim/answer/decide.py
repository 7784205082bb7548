"""The one owner of the answer: trial records in, a ``Recommendation`` with its evidence out.

Settle mode (after every epoch, on the validation subset), the growth of the grid (edge, bisection, the
intrinsic dimension), the final answer of a sweep and the bootstrap all ask ``decide`` under the same
``Question`` (``zdim.answer.rules.Question``: the rule, its tolerances, the likelihood, the feature count, the
intrinsic-dimension estimate), so the answer a run waits on is the answer it prints:

1. ``zdim.answer.rules.recommend``: the rule's pick on the lower envelope of held-out NLL over sizes, with the
   sanity checks (``zdim.answer.checks``);
2. ``capacity``: the intrinsic-dimension check, when an estimate is given (``Evidence.intrinsic``);
3. ``zdim.answer.uncertainty``: the paired bootstrap over held-out samples, seeds and (pooled evidence)
   folds, when asked for (``resamples``), its shares beside the answer only where it can see what
   unsettles it, and in a warning of their own when the answer is chosen in too few resamples.

The CLI, the Python API and the report read the ``Recommendation`` it returns; none decides again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from ..evaluation.intrinsic import IntrinsicDim
from ..evidence import Note
from ..records import TrialRecord, TrialStatus
from .capacity import capacity_check
from .recommendation import Recommendation
from .rules import GEN_FIELDS, Question, recommend
from .uncertainty import BOOTSTRAP_RESAMPLES, bootstrap, with_uncertainty

MEANS = ("nll", "neg_elbo", "rec", "kl", "mse", "baseline_nll", "linear_nll", "full_nll")  # means weighted by rows
# The record metrics pooled evidence carries (``pool``), and so what a rule may read with folds
# (``zdim.sweeps.planning.plan`` refuses a rule that needs another before anything is trained)
POOLED = frozenset(
    {*MEANS, "baseline_se", "linear_se", "active_units", "n", "k", "epochs_run", "converged", "train_seconds",
     *GEN_FIELDS}
)  # fmt: skip


@dataclass(frozen=True)
class Evidence:
    """What an answer is decided from: the trial records, the per-sample held-out NLL of each trial
    (``(dim, seed) -> (N,)``, the same samples for every trial), the intrinsic-dimension estimate, and
    notes others add (how settle mode ended, how the grid grew, the whole test split)."""

    records: Sequence[TrialRecord]
    per_sample: Mapping[tuple[int, int], Any] = field(default_factory=dict)
    intrinsic: IntrinsicDim | None = None
    notes: Sequence[Note] = ()


def pool(parts: Sequence[Evidence]) -> Evidence:
    """The evidence of k folds as one: per (size, seed) one record over every fold's test rows (the NLL
    and the other held-out means weighted by rows, active units averaged, converged only where every
    fold converged, the learned-nothing and PCA references pooled with their standard errors, the
    generation metrics every fold measured weighted by rows, KL per unit averaged rank by rank; ``POOLED``
    names what a pooled record carries) and the
    per-sample NLL of the folds joined in fold order (the same rows in the same order for every size:
    paired; each record's ``extra["fold_rows"]`` says how many rows each fold gave, so the bootstrap can
    resample the folds too). A point that did not complete in every fold is a failed record naming the
    folds."""
    keys = sorted({r.key for p in parts for r in p.records})
    records: list[TrialRecord] = []
    per_sample: dict[tuple[int, int], Any] = {}
    for key in keys:
        found = [next((r for r in p.records if r.key == key), None) for p in parts]
        done = [r for r in found if r is not None and r.complete and r.nll is not None]
        values = [p.per_sample.get(key) for p in parts]
        if len(done) < len(parts) or any(v is None for v in values):
            lost = [str(j) for j, r in enumerate(found) if r is None or not r.complete]
            why = "; ".join(f"fold {j}: {r.reason}" for j, r in enumerate(found) if r is not None and r.reason)
            records.append(
                TrialRecord(
                    dim=key[0], seed=key[1], status=TrialStatus.FAILED,
                    reason=f"not complete in fold(s) {', '.join(lost) or '?'}" + (f" ({why})" if why else ""),
                )
            )  # fmt: skip
            continue
        ns = [float(r.n or len(np.asarray(v))) for r, v in zip(done, values, strict=True)]
        rows = [len(np.asarray(v)) for v in values]  # each fold's rows in the joined per-sample order
        total = sum(ns)

        mean = partial(_weighted, done, ns, total=total)
        se = partial(_weighted, done, ns, total=total, squares=True)
        units = [r.active_units or 0 for r in done]
        means: dict[str, Any] = {m: mean(m) for m in MEANS}
        records.append(
            TrialRecord(
                dim=key[0], seed=key[1], status=TrialStatus.COMPLETE, **means,
                active_units=round(sum(units) / len(units)), n=int(total), k=done[0].k,
                epochs_run=max(r.epochs_run or 0 for r in done), baseline_se=se("baseline_se"),
                linear_se=se("linear_se"), converged=all(r.converged is not False for r in done),
                train_seconds=sum(r.train_seconds or 0.0 for r in done),
                kl_per_unit=_mean_sorted([r.kl_per_unit for r in done]), generation=_generation(done, ns, total),
                extra={"folds": len(parts), "fold_nll": [r.nll for r in done], "fold_rows": rows},
            )
        )  # fmt: skip
        per_sample[key] = np.concatenate([np.asarray(v, dtype=np.float64) for v in values])
    return Evidence(records, per_sample)


def _mean_sorted(vectors: Sequence[Sequence[float]]) -> list[float]:
    """Per-unit values of the folds' models (KL per unit) as one row: each fold's sorted from the largest
    (a unit of one fold's model is not a unit of another's), then the mean per rank; [] when a fold lacks
    them."""
    if not vectors or any(not v for v in vectors) or len({len(v) for v in vectors}) > 1:
        return []
    ranked = np.sort(np.asarray(vectors, dtype=np.float64), axis=1)[:, ::-1]
    return [float(v) for v in ranked.mean(axis=0)]


def _generation(done: Sequence[TrialRecord], ns: Sequence[float], total: float) -> dict[str, Any]:
    """The generation metrics every fold measured, weighted by the folds' rows (``gen_n`` summed; a value
    every fold shares, such as the feature space, kept)."""
    out: dict[str, Any] = {}
    for key, first in done[0].generation.items():
        values = [r.generation.get(key) for r in done]
        if all(v == first for v in values) and key != "gen_n":  # the feature space, k: the same in every fold
            out[key] = first
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            numbers = [float(v) for v in values]  # type: ignore[arg-type]
            pooled = sum(numbers) if key == "gen_n" else sum(v * n for v, n in zip(numbers, ns, strict=True)) / total
            out[key] = int(pooled) if key == "gen_n" else pooled
    return out


def _weighted(
    done: Sequence[TrialRecord], ns: Sequence[float], name: str, *, total: float, squares: bool = False
) -> float | None:
    """The metric ``name`` of the folds' records (``TrialRecord.metric``) weighted by their rows (None when
    a fold lacks it); with ``squares``, the standard error of that weighted mean from the folds' ones."""
    vals = [r.metric(name) for r in done]
    if any(v is None for v in vals):
        return None
    if squares:
        return math.sqrt(sum((float(v or 0.0) * n) ** 2 for v, n in zip(vals, ns, strict=True))) / total
    return sum(float(v or 0.0) * n for v, n in zip(vals, ns, strict=True)) / total


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


__all__ = ["Evidence", "decide", "pool", "Question", "BOOTSTRAP_RESAMPLES", "POOLED"]
