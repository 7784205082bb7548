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
  error of that difference (``paired_se``): a gap the held-out samples cannot tell from noise.
- ``active-units``: the smallest size tried that holds the active units of the largest model.
- ``generation``: the smallest size whose mean Frechet distance is within ``gen_tol`` (relative) of
  the best.
- ``combined`` (default): the smaller of ``nll-knee`` and ``active-units`` when the largest model has
  collapsed units (so its active units measure what the data need); ``nll-knee`` otherwise.

Sanity checks (``Recommendation.warnings``, ``Recommendation.settled``): models that learned nothing
are left out of the rules; an answer resting on models without latent structure, on a test split too
small to measure NLL differences, on unconverged training or on the grid's largest size with every unit
active is reported as not settled.

This module knows nothing of how results were produced: it takes typed trial records
(``zdim.records.TrialRecord``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from .errors import ConfigError
from .evidence import Note, NoteKind, caution, rationale, warning
from .records import EMPTY_KL, TrialRecord, TrialStatus

RULES = ("combined", "nll-knee", "active-units", "generation")
DEFAULT_RULE = "combined"
DEFAULT_REL_TOL = 0.01
DEFAULT_RANGE_TOL = 0.02  # of the NLL improvement from the smallest size to the best one
DEFAULT_GEN_TOL = 0.10  # relative Frechet-distance tolerance of the generation rule
GEN_FIELDS = ("gen_fd", "gen_precision", "gen_recall", "gen_density", "gen_coverage", "gen_mmd", "gen_probe_acc")

MIN_TEST_SAMPLES = 100  # held-out samples below which NLL differences between sizes are noise
EMPTY_MSE = 0.9  # standardized Gaussian features: predicting the feature means gives an MSE of 1
MIN_GAIN = 0.01  # nats: a held-out gain below this is no gain, however small its standard error


@dataclass(frozen=True)
class Recommendation:
    """A recommended latent size with the rule that picked it and the evidence behind it.

    ``notes`` are the evidence (``zdim.evidence``): the rule's own sentences, its warnings (a ``WARNING``
    note makes the answer not ``settled``), and what the sweep added (settle mode, the grid, the whole
    test split, the bootstrap). ``rationale`` renders them. Files written before notes existed read back
    with their warnings as notes and their rationale as it was written (``legacy_rationale``).
    """

    dim: int
    rule: str
    best_dim: int
    threshold: float
    tolerance: float
    rel_tol: float
    per_dim: list[dict[str, Any]] = field(default_factory=list)
    largest_dim: int | None = None
    largest_active_units: float | None = None
    failed_trials: int = 0
    range_tol: float = DEFAULT_RANGE_TOL
    signals: dict[str, Any] = field(default_factory=dict)
    intrinsic_dim: int | None = None
    notes: list[Note] = field(default_factory=list)
    uncertainty: dict[str, Any] | None = None
    full_test: dict[str, Any] | None = None  # the size on the whole test split, when trials used a subset
    capacity: dict[str, Any] | None = None  # the intrinsic-dimension check (zdim.growth.capacity_check)
    legacy_rationale: str = ""  # the rationale of a file written before notes existed

    @property
    def warnings(self) -> list[str]:
        """What makes the answer doubtful: the text of each warning and caution note."""
        return [n.text for n in self.notes if n.is_warning]

    @property
    def settled(self) -> bool:
        """Whether the evidence carries the answer: no ``WARNING`` note."""
        return not any(n.kind is NoteKind.WARNING for n in self.notes)

    @property
    def rationale(self) -> str:
        """The evidence as one paragraph (``zdim.evidence.rationale``)."""
        return self.legacy_rationale or rationale(self.notes)

    def with_notes(self, *notes: Note) -> Recommendation:
        """This recommendation with ``notes`` added after its own."""
        return replace(self, notes=[*self.notes, *notes])

    def shares(self) -> dict[int, float]:
        """How often the bootstrap chose each size (empty when none was made)."""
        if not self.uncertainty:
            return {}
        return {int(k): float(v) for k, v in self.uncertainty["shares"].items()}

    @property
    def confidence(self) -> str:
        """How sure the answer is, in words: ``20 (chosen in 91% of 200 resamples; 10 in 9%)``, or just
        the size when no bootstrap was made."""
        shares = self.shares()
        if not shares or self.uncertainty is None:
            return str(self.dim)
        n = int(self.uncertainty["resamples"])
        others = "; ".join(
            f"{d} in {share_words(s)}" for d, s in sorted(shares.items(), key=lambda kv: -kv[1]) if d != self.dim
        )
        return f"{self.dim} (chosen in {share_words(shares.get(self.dim, 0.0))} of {n} resamples" + (
            f"; {others})" if others else ")"
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the fields, the notes, and the rendered ``rationale``, ``warnings`` and ``settled``
        for readers that do not read notes."""
        d = asdict(self)
        d["notes"] = [n.to_dict() for n in self.notes]
        d.pop("legacy_rationale")
        d |= {"rationale": self.rationale, "warnings": self.warnings, "settled": self.settled}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Recommendation:
        known = set(cls.__dataclass_fields__) - {"notes", "legacy_rationale"}
        kw = {k: v for k, v in d.items() if k in known}
        if isinstance(d.get("notes"), list):
            return cls(**kw, notes=[Note.from_dict(n) for n in d["notes"]])
        # written before notes: its warnings become notes, its rationale is shown as it was written
        settled = d.get("settled", True) is not False
        kind = NoteKind.CAUTION if settled else NoteKind.WARNING
        notes = [Note(kind, str(w)) for w in d.get("warnings") or []]
        if not settled and not notes:
            notes = [warning("the rule did not settle on a size: read the rationale and the curves before using it")]
        return cls(**kw, notes=notes, legacy_rationale=str(d.get("rationale", "")))


def share_words(s: float) -> str:
    """A bootstrap share in words: ``91%``; ``<1%`` for a share above 0 that rounds to 0%, and ``>99%``
    for one below 1 that rounds to 100% (so that two shares never read 100% and something)."""
    words = f"{s:.0%}"
    if s > 0 and words == "0%":
        return "<1%"
    return ">99%" if s < 1 and words == "100%" else words


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for a single value): the one definition of "mean ± SE
    over seeds" for the rule, ``recommendation.json`` and the report's curves."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def aggregate(trials: Sequence[TrialRecord], metric: str = "nll") -> list[dict[str, Any]]:
    """Per latent size: mean and standard error of ``metric`` and of active units over complete trials.

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
        units = [float(t.active_units or 0) for t in ts]
        au_mean, au_se = mean_se(units)
        row: dict[str, Any] = {
            "dim": dim,
            "n_seeds": len(ts),
            f"{metric}_mean": mean,
            f"{metric}_se": se,
            "active_units_mean": au_mean,
            "active_units_se": au_se,
            "active_units_min": min(units),
            "active_units_max": max(units),
        }
        for g in GEN_FIELDS:  # generation quality, where trials measured it
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


def learned_nothing(t: TrialRecord, likelihood: str | None = None) -> bool:
    """Whether a complete trial's model learned nothing its latents carry.

    Measured where the record has it (``baseline_nll``, ``baseline_se``): the held-out gain of the model
    over the one that ignores its latents and decodes the feature means is not above twice its paired
    standard error (or ``MIN_GAIN`` nats). Records without it (older runs, likelihoods without a reference)
    use the fixed test: held-out KL below ``EMPTY_KL`` and, for Gaussian data (standardized features), an
    MSE of at least ``EMPTY_MSE``, else no active unit. A trial missing the metrics a test needs is not
    judged empty.
    """
    if not t.complete:
        return False
    nll, base, se = t.metric("nll"), t.metric("baseline_nll"), t.metric("baseline_se")
    if nll is not None and base is not None and se is not None:
        return base - nll <= max(2.0 * se, MIN_GAIN)
    kl = t.metric("kl")
    if kl is None or kl >= EMPTY_KL:
        return False
    if likelihood == "gaussian":
        mse = t.metric("mse")
        return mse is not None and mse >= EMPTY_MSE
    return t.active_units == 0


def _empty_test(trials: Sequence[TrialRecord], likelihood: str | None) -> str:
    """The learned-nothing test the trials were judged by, in words."""
    if all(t.metric("baseline_se") is not None for t in trials):
        gains = [(t.metric("baseline_nll") or 0.0) - (t.metric("nll") or 0.0) for t in trials]
        return (
            f"the latents buy {_span(gains)} nats over decoding the feature means, within twice the paired "
            "standard error"
        )
    return (
        f"KL < {EMPTY_KL:g} nats, MSE >= {EMPTY_MSE:g}"
        if likelihood == "gaussian"
        else f"KL < {EMPTY_KL:g} nats, 0 active units"
    )


def _span(values: Sequence[float]) -> str:
    """``0.40`` or ``0.40 to 1.20``."""
    lo, hi = min(values), max(values)
    return f"{lo:.2f}" if f"{lo:.2f}" == f"{hi:.2f}" else f"{lo:.2f} to {hi:.2f}"


def _sizes(dims: Sequence[int]) -> str:
    ds = sorted(set(dims))
    return ("sizes " if len(ds) > 1 else "size ") + ", ".join(str(d) for d in ds)


def barely_moved(trials: Sequence[TrialRecord]) -> list[TrialRecord]:
    """The complete trials whose latents buy less than half of what probabilistic PCA of their own size
    buys over decoding the feature means, the gap beyond twice its paired standard error: they have barely
    left the start where a VAE decodes the feature means. (A converged VAE may well stay below PCA where
    PCA models the thin residual variance a VAE prunes; half its gain it does reach.)"""
    out = []
    for t in trials:
        nll, base, lin, se = (t.metric(k) for k in ("nll", "baseline_nll", "linear_nll", "linear_se"))
        if not t.complete or nll is None or base is None or lin is None or se is None:
            continue
        if base - nll < 0.5 * (base - lin) and nll - lin > max(2 * se, MIN_GAIN):
            out.append(t)
    return out


def recommend(
    trials: Sequence[TrialRecord],
    *,
    rule: str = DEFAULT_RULE,
    rel_tol: float = DEFAULT_REL_TOL,
    range_tol: float = DEFAULT_RANGE_TOL,
    gen_tol: float = DEFAULT_GEN_TOL,
    intrinsic_dim: int | None = None,
    likelihood: str | None = None,
    per_sample: Mapping[tuple[int, int], Any] | None = None,
    n_features: int | None = None,
) -> Recommendation:
    """Recommend a latent size from trial records.

    Every rule's pick is computed and kept in ``signals`` (with the intrinsic-dimension estimate when
    given); ``rule`` decides which one is the recommendation. ``likelihood`` (``"gaussian"``,
    ``"bernoulli"`` or None when unknown) selects the test of a model that learned nothing
    (``learned_nothing``): such trials are left out of the rules unless every trial learned nothing.
    The answer is marked not ``settled``, with a warning each, when every model used has 0 active units,
    when it rests on models that learned nothing, when the test split has fewer than
    ``MIN_TEST_SAMPLES`` samples, when a trial it rests on (the chosen size, the next smaller size tried,
    the largest size) had not converged, or when it is the largest size tried and none of its units
    collapsed. ``per_sample[(dim, seed)]``, the (N,) held-out NLL of each sample of a trial (the same
    samples for every trial), widens the NLL knee's tolerance per size to the paired standard error of
    its difference to the best (``paired_se``). With ``n_features``, a knee at the largest size tried
    below it is not settled either, whatever the active units pick (a larger size may fit better).
    Raises ``ConfigError`` for an unknown rule or a negative tolerance, and ``ValueError`` when no trial
    completed.
    """
    if rule not in RULES:
        raise ConfigError(f"unknown rule {rule!r}: choose one of {', '.join(RULES)} (--rule)")
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
    nll_range = max(0.0, rows[0]["nll_mean"] - best["nll_mean"])
    tol = max(rel_tol * abs(best["nll_mean"]), range_tol * nll_range, best["nll_se"])
    threshold = best["nll_mean"] + tol
    se_diff = paired_se(used, per_sample, best["dim"]) if per_sample else {}
    for r in rows:
        if r["dim"] in se_diff:
            r["nll_paired_se"] = se_diff[r["dim"]]
    knee = next(r for r in rows if r["nll_mean"] <= best["nll_mean"] + max(tol, se_diff.get(r["dim"], 0.0)))
    largest = rows[-1]
    au = largest["active_units_mean"]
    au_pick = next((r for r in rows if r["dim"] >= round(au)), largest)
    collapsed = au < largest["dim"]
    gen_pick = None
    fd_rows = [r for r in rows if "gen_fd_mean" in r]
    if fd_rows:
        best_fd = min(r["gen_fd_mean"] for r in fd_rows)
        gen_pick = next(r for r in fd_rows if r["gen_fd_mean"] <= best_fd * (1 + gen_tol))
    signals: dict[str, Any] = {
        "nll-knee": knee["dim"],
        "active-units": au_pick["dim"],
        "generation": gen_pick["dim"] if gen_pick else None,
        "intrinsic-dim": intrinsic_dim,
        "largest_collapsed": collapsed,
    }
    if rule == "nll-knee":
        chosen = knee
    elif rule == "active-units":
        chosen = au_pick
    elif rule == "generation":
        if gen_pick is None:
            raise ConfigError(
                "rule 'generation' needs generation metrics (gen_fd) in the trials: "
                "rerun the sweep with this zdim, or choose --rule nll-knee"
            )
        chosen = gen_pick
    else:  # combined
        chosen = min(knee, au_pick, key=lambda r: r["dim"]) if collapsed else knee
    checks = _checks(measured, used, empty, rows, chosen["dim"], likelihood)
    top = rows[-1]["dim"]
    if knee["dim"] == top and chosen["dim"] != top and n_features is not None and top < n_features:
        checks.append(
            warning(
                f"the NLL knee is the largest size tried ({top}): a larger size may fit better and move the "
                f"answer, which the active units put at {chosen['dim']}; try larger sizes",
                "knee-edge",
            )
        )
    checks = [n for n in checks if n.kind is NoteKind.WARNING] + [n for n in checks if n.kind is NoteKind.CAUTION]
    no_latent = all(t.active_units == 0 for t in used)
    edge = any(n.code == "edge" for n in checks)
    failures = [t for t in trials if t.status is TrialStatus.FAILED]
    sentences = _rationale(knee, best, largest, tol, rel_tol, range_tol, failures, no_latent=no_latent, edge=edge)
    sentences += _failed_words(failures, len(measured))
    if se_diff:  # right after the sentence that states the tolerance
        at = next((i + 1 for i, w in enumerate(sentences) if w.startswith("The tolerance is")), len(sentences))
        sentences.insert(at, _paired_words(knee, best, tol, se_diff))
    sentences += _rule_words(rule, chosen["dim"], signals, largest)
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
        intrinsic_dim=intrinsic_dim,
        notes=[*checks, *(Note(NoteKind.RULE, t) for t in sentences)],
    )


_FIX = "fix: more epochs/data, or a KL warm-up (--warmup)"


def _checks(
    measured: list[TrialRecord],
    used: list[TrialRecord],
    empty: list[TrialRecord],
    rows: list[dict[str, Any]],
    dim: int,
    likelihood: str | None,
) -> list[Note]:
    """The sanity checks of an answer ``dim`` as notes (a ``WARNING`` unsettles it), the weightiest first.
    ``used`` are the trials the rules read, ``empty`` those left out as having learned nothing."""
    out: list[Note] = []
    no_latent = all(t.active_units == 0 for t in used)
    if no_latent:
        out.append(
            warning(
                "the models learned no latent structure (every size has 0 active units), "
                f"so the size is not supported by the evidence; {_FIX}",
                "no-latent",
            )
        )
    if empty:
        empty_ids = {id(t) for t in empty}
        rests = all(id(t) in empty_ids for t in measured if t.dim == dim)  # every trial, or the size's seeds
        if rests and not (no_latent and likelihood != "gaussian"):  # else the warning above says it all
            out.append(
                warning(
                    f"{_sizes([t.dim for t in empty])} learned nothing ({_empty_test(empty, likelihood)}): "
                    f"their models do no better than decoding the feature means and cannot support an answer; {_FIX}",
                    "learned-nothing",
                )
            )
        elif not rests:
            names = ", ".join(t.trial for t in sorted(empty, key=lambda t: t.key))
            out.append(
                caution(
                    f"trials {names} learned nothing ({_empty_test(empty, likelihood)}) and were left out of the rules",
                    "learned-nothing",
                )
            )
    ns = [t.n for t in used if t.n is not None]
    if ns and min(ns) < MIN_TEST_SAMPLES:
        out.append(
            warning(
                f"the test split has only {min(ns)} samples: too few to measure NLL differences; "
                "use more data or a larger test split",
                "small-test",
            )
        )
    dims = [r["dim"] for r in rows]
    lower = max((d for d in dims if d < dim), default=None)
    rest_on = {dim, dims[-1]} | ({lower} if lower is not None else set())
    late = [t for t in used if t.dim in rest_on and t.converged is False]
    if late:
        its = "their" if len({t.dim for t in late}) > 1 else "its"
        budget = any(t.extra.get("settle_stop") == "time-budget" for t in late)
        fix = "rerun with a larger --time-budget" if budget else "rerun with more --epochs"
        out.append(
            warning(
                f"{_sizes([t.dim for t in late])} had not converged: {its} held-out NLL may still fall; {fix}",
                "unconverged",
            )
        )
    # the sizes the answer claims enough (it, and the next smaller for comparison), every seed barely moved
    claimed = {dim} | ({lower} if lower is not None else set())
    weak = barely_moved([t for t in used if t.dim in claimed])
    weak_dims = sorted({t.dim for t in weak if all(u in weak for u in used if u.dim == t.dim)})
    if weak_dims:
        bought = [(t.metric("baseline_nll") or 0.0) - (t.metric("nll") or 0.0) for t in weak if t.dim in weak_dims]
        linear = [(t.metric("baseline_nll") or 0.0) - (t.metric("linear_nll") or 0.0) for t in weak]
        out.append(
            warning(
                f"{_sizes(weak_dims)} barely moved from decoding the feature means: their latents buy "
                f"{_span(bought)} nats, less than half of what probabilistic PCA of the same size buys "
                f"({_span(linear)}), so the answer cannot rest on them; {_FIX}",
                "barely-moved",
            )
        )
    largest = rows[-1]
    if dim == largest["dim"] and largest["active_units_mean"] >= largest["dim"]:
        out.append(
            warning("the answer is the largest size tried and all its units are active: try larger sizes", "edge")
        )
    return out


def paired_se(
    trials: Sequence[TrialRecord], per_sample: Mapping[tuple[int, int], Any], best_dim: int
) -> dict[int, float]:
    """Per size: the standard error of its mean held-out NLL difference to size ``best_dim``, paired over
    the held-out samples (each size's per-sample NLL averaged over its seeds first).

    ``per_sample[(dim, seed)]`` is a trial's (N,) per-sample NLL. Empty when a complete trial has none,
    or the lengths differ (the samples are then not the same ones).
    """
    by_dim: dict[int, list[np.ndarray]] = {}
    for t in trials:
        if not t.complete:
            continue
        v = per_sample.get(t.key)
        if v is None:
            return {}
        by_dim.setdefault(t.dim, []).append(np.asarray(v, dtype=np.float64))
    lengths = {len(v) for vs in by_dim.values() for v in vs}
    if best_dim not in by_dim or len(lengths) != 1 or lengths == {0} or lengths == {1}:
        return {}
    n = lengths.pop()
    means = {d: np.mean(vs, axis=0) for d, vs in by_dim.items()}
    return {d: float(np.std(m - means[best_dim], ddof=1) / math.sqrt(n)) for d, m in means.items()}


def _paired_words(knee: dict[str, Any], best: dict[str, Any], tol: float, se: dict[int, float]) -> str:
    """The paired standard error in the rationale."""
    gap = knee["nll_mean"] - best["nll_mean"]
    if gap > tol:
        return (
            f"Size {knee['dim']} is {gap:.2f} nats above the best, more than the tolerance but within one "
            f"paired standard error of that difference ({se[knee['dim']]:.2f} nats over the same held-out "
            "samples), so the held-out data cannot tell them apart."
        )
    return (
        "A size also counts as within the tolerance when its gap to the best is within one paired standard "
        "error (the same held-out samples for every size)."
    )


def _rule_words(rule: str, dim: int, signals: dict[str, Any], largest: dict[str, Any]) -> list[str]:
    """What the rule picked and what each signal said."""
    gen = signals["generation"]
    text = [
        f"Signals: NLL knee {signals['nll-knee']}, active units {signals['active-units']} (the smallest size "
        f"tried that holds the largest model's {_units(largest)})"
        + (f", generation (Frechet distance) {gen}" if gen is not None else "")
        + (
            f", intrinsic-dimension estimate {signals['intrinsic-dim']}"
            if signals.get("intrinsic-dim") is not None
            else ""
        )
        + "."
    ]
    if rule == "combined":
        how = (
            "the smaller of the NLL knee and the active units of the largest model"
            if signals["largest_collapsed"]
            else "the NLL knee (no unit of the largest model collapsed)"
        )
        text.append(f"Rule 'combined' takes {how}: {dim}.")
    else:
        text.append(f"Rule '{rule}' recommends {dim}.")
    return text


def _units(row: dict[str, Any]) -> str:
    """The active units of a size in words: ``12 active units``, or, when its seeds differ, ``4 to 5
    active units, 4.33 on average over 3 seeds`` (never a bare fractional count)."""
    lo, hi = row.get("active_units_min"), row.get("active_units_max")
    mean = row["active_units_mean"]
    if lo is None or hi is None or lo == hi:
        return f"{_num(mean)} active unit{'' if mean == 1 else 's'}"
    return f"{_num(lo)} to {_num(hi)} active units, {_num(mean)} on average over {row['n_seeds']} seeds"


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


def _num(v: float) -> str:
    """A mean over seeds in words: at most two decimals, none when whole (4.33, 12)."""
    return f"{v:.2f}".rstrip("0").rstrip(".")


def _rationale(
    chosen: dict[str, Any],
    best: dict[str, Any],
    largest: dict[str, Any],
    tol: float,
    rel_tol: float,
    range_tol: float,
    failures: list[TrialRecord],
    *,
    no_latent: bool = False,
    edge: bool = False,
) -> list[str]:
    """The NLL knee and the active units of the largest model, in short sentences."""
    seeds = best["n_seeds"]
    text = [
        f"Held-out NLL (importance-weighted bound) is lowest at latent size {best['dim']} "
        f"({best['nll_mean']:.2f} nats)."
    ]
    if chosen["dim"] == best["dim"]:
        text.append(
            f"No smaller size comes within the tolerance of {tol:.2f} nats, so the NLL knee is {chosen['dim']}."
        )
    else:
        text.append(
            f"The smallest size within the tolerance of {tol:.2f} nats is {chosen['dim']} "
            f"({chosen['nll_mean']:.2f} nats), so the NLL knee is {chosen['dim']}."
        )
        text.append(f"The best size is only {chosen['nll_mean'] - best['nll_mean']:.2f} nats better.")
    terms = f"{rel_tol:.1%} of the best NLL"
    if seeds > 1:
        terms = (
            f"largest of {terms}, {range_tol:.1%} of the NLL range over sizes and the standard error over {seeds} seeds"
        )
    else:
        terms = f"larger of {terms} and {range_tol:.1%} of the NLL range over sizes"
    text.append(f"The tolerance is the {terms}.")
    au = largest["active_units_mean"]
    text.append(
        f"The largest model ({largest['dim']} units) keeps {_units(largest)} "
        f"(variance of the posterior mean over inputs above 0.01)."
    )
    if no_latent:
        text.append("No model has an active unit, so the active units say nothing about the size.")
    elif au < 1:
        text.append("It has no active unit, so its active units say nothing about the size.")
    elif largest["dim"] == chosen["dim"]:
        text.append(
            "The knee is the largest size tried, so the grid may be too small"
            + ("." if edge else ": try larger sizes.")
        )
    elif au >= largest["dim"]:
        text.append("None collapsed: the data may use more units than the recommendation keeps.")
    elif abs(au - chosen["dim"]) <= max(1.0, 0.25 * chosen["dim"]):
        text.append("Its active units are in agreement with the NLL knee.")
    else:
        text.append(f"The two views of the bottleneck differ ({_num(au)} active units vs a knee of {chosen['dim']}).")
    return text
