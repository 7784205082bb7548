"""The table an answer is read from: per latent size, the mean and standard error of held-out NLL over
seeds (``aggregate``), its gap to the best size with the standard error of that gap (over seeds, and paired
over the same held-out samples), the tolerance in nats per sample (``tolerance``), and the lower envelope:
the sizes no answer may be because a smaller size is better beyond the standard error of the gap
(``zdim.answer.pairing.envelope``). ``size_table`` builds it from trial records; the rules
(``zdim.answer.rules``) read it and the rationale (``zdim.answer.wording``) says it. Pure functions of
records.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..likelihoods import find
from ..records import TrialRecord, TrialStatus
from . import signals as sig
from .checks import below_linear, learned_nothing
from .pairing import _pair_se, envelope, gap_se, size_means
from .signals import Reading

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


@dataclass(frozen=True)
class SizeTable:
    """What the rules read: the trials that completed (``measured``), those that learned nothing
    (``empty``, left out unless every trial did) and those the table is built from (``used``); every size's
    row (``aggregate``, with ``gap``, ``gap_se``, ``within_se``, ``worse_than``, ``within`` and
    ``accepted``), the best size's row, the tolerance and its terms in words, the sizes off the lower
    envelope (size -> (the smaller size, the gap, its SE)), and the ``Reading`` the signals pick from."""

    failures: list[TrialRecord]
    measured: list[TrialRecord]
    used: list[TrialRecord]
    empty: list[TrialRecord]
    best: dict[str, Any]
    terms: str
    dominated: dict[int, tuple[int, float, float]]
    reading: Reading

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.reading.rows

    @property
    def tol(self) -> float:
        return self.reading.tol


def size_table(
    trials: Sequence[TrialRecord],
    per_sample: Mapping[tuple[int, int], Any] | None,
    *,
    likelihood: str | None,
    rel_tol: float,
    range_tol: float,
    gen_tol: float,
) -> SizeTable:
    """The table of ``trials`` (``per_sample[(dim, seed)]``: the (N,) held-out NLL of each sample, the same
    samples for every trial, for the paired standard errors). Trials that learned nothing
    (``zdim.answer.checks.learned_nothing``, by ``likelihood``) are left out unless every trial did. A size
    is within the tolerance of the best when its gap is no more than the tolerance or the standard error the
    one-standard-error rule reads (the paired one, or the best size's over seeds, never its own); a size
    whose mean NLL is no higher than that of a size within is accepted too (``zdim.answer.signals.accept``).
    Raises ``ValueError`` when no trial completed."""
    failures = [t for t in trials if t.status is TrialStatus.FAILED]
    measured = [t for t in trials if t.complete and t.metric("nll") is not None]
    if not measured:
        raise ValueError(f"no trial completed ({len(failures)} failed): nothing to recommend")
    empty = [t for t in measured if learned_nothing(t, likelihood)]
    used = [t for t in measured if not learned_nothing(t, likelihood)] or measured
    rows = aggregate(used)
    best = min(rows, key=lambda r: r["nll_mean"])
    family = find(likelihood)
    tol, terms = tolerance(rows, best, rel_tol if family is None or family.relative_tolerance else None, range_tol)
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
    return SizeTable(failures, measured, used, empty, best, terms, dominated, Reading(rows, on, tol, gen_tol))


__all__ = ["GEN_FIELDS", "SizeTable", "aggregate", "mean_se", "per_size", "size_table", "tolerance"]
