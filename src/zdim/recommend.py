"""The rule that turns trial results into one recommended latent size, with its rationale.

Signals (see docs/recommendation.md): held-out NLL (IWAE bound) per size, averaged over seeds; the
active units of the largest model; generation quality (Frechet distance of decoded prior samples to
held-out data); the intrinsic-dimension estimate (recorded beside, never used alone).

Rules (``--rule``):

- ``nll-knee``: the *smallest* size whose mean NLL is within a tolerance of the best, where the
  tolerance is ``max(rel_tol * |best NLL|, range_tol * (NLL of the smallest size - best NLL), SE of the
  best size)``. The range term keeps the rule meaningful where the NLL is near 0 (standardized Gaussian
  data), where a tolerance relative to ``|best NLL|`` vanishes; SE is the standard error across seeds.
- ``active-units``: the smallest size tried that holds the active units of the largest model.
- ``generation``: the smallest size whose mean Frechet distance is within ``gen_tol`` (relative) of
  the best.
- ``combined`` (default): the smaller of ``nll-knee`` and ``active-units`` when the largest model has
  collapsed units (so its active units measure what the data need); ``nll-knee`` otherwise.

This module knows nothing of how results were produced: it takes plain trial records.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import ConfigError

RULES = ("combined", "nll-knee", "active-units", "generation")
DEFAULT_RULE = "combined"
DEFAULT_REL_TOL = 0.01
DEFAULT_RANGE_TOL = 0.02  # of the NLL improvement from the smallest size to the best one
DEFAULT_GEN_TOL = 0.10  # relative Frechet-distance tolerance of the generation rule
GEN_FIELDS = ("gen_fd", "gen_precision", "gen_recall", "gen_density", "gen_coverage", "gen_mmd", "gen_probe_acc")


@dataclass(frozen=True)
class Recommendation:
    """A recommended latent size with the rule that picked it and the evidence behind it."""

    dim: int
    rule: str
    rationale: str
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Recommendation:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def _mean_se(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def aggregate(trials: list[dict[str, Any]], metric: str = "nll") -> list[dict[str, Any]]:
    """Per latent size: mean and standard error of ``metric`` and of active units over complete trials."""
    by_dim: dict[int, list[dict[str, Any]]] = {}
    for t in trials:
        if t.get("status") == "complete" and t.get(metric) is not None and math.isfinite(t[metric]):
            by_dim.setdefault(int(t["dim"]), []).append(t)
    rows = []
    for dim in sorted(by_dim):
        ts = by_dim[dim]
        mean, se = _mean_se([float(t[metric]) for t in ts])
        au_mean, au_se = _mean_se([float(t.get("active_units", 0)) for t in ts])
        row = {
            "dim": dim,
            "n_seeds": len(ts),
            f"{metric}_mean": mean,
            f"{metric}_se": se,
            "active_units_mean": au_mean,
            "active_units_se": au_se,
        }
        for g in GEN_FIELDS:  # generation quality, where trials measured it
            vals = [float(t[g]) for t in ts if t.get(g) is not None and math.isfinite(float(t[g]))]
            if vals:
                row[f"{g}_mean"], row[f"{g}_se"] = _mean_se(vals)
        rows.append(row)
    return rows


def recommend(
    trials: list[dict[str, Any]],
    *,
    rule: str = DEFAULT_RULE,
    rel_tol: float = DEFAULT_REL_TOL,
    range_tol: float = DEFAULT_RANGE_TOL,
    gen_tol: float = DEFAULT_GEN_TOL,
    intrinsic_dim: int | None = None,
) -> Recommendation:
    """Recommend a latent size from trial records (dicts with ``dim``, ``status``, ``nll``, ...).

    Every rule's pick is computed and kept in ``signals`` (with the intrinsic-dimension estimate when
    given); ``rule`` decides which one is the recommendation. Raises ``ConfigError`` for an unknown
    rule or a negative tolerance, and ``ValueError`` when no trial completed.
    """
    if rule not in RULES:
        raise ConfigError(f"unknown rule {rule!r}: choose one of {', '.join(RULES)} (--rule)")
    for name, v in (("tolerance", rel_tol), ("range tolerance", range_tol), ("generation tolerance", gen_tol)):
        if not (v >= 0 and math.isfinite(v)):
            raise ConfigError(f"{name} must be a finite number >= 0, got {v!r}: fix --tolerance")
    rows = aggregate(trials)
    failed = sum(1 for t in trials if t.get("status") == "failed")
    if not rows:
        raise ValueError(f"no trial completed ({failed} failed): nothing to recommend")
    best = min(rows, key=lambda r: r["nll_mean"])
    nll_range = max(0.0, rows[0]["nll_mean"] - best["nll_mean"])
    tol = max(rel_tol * abs(best["nll_mean"]), range_tol * nll_range, best["nll_se"])
    threshold = best["nll_mean"] + tol
    knee = next(r for r in rows if r["nll_mean"] <= threshold)
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
        rationale=_rationale(knee, best, largest, tol, rel_tol, failed) + _rule_words(rule, chosen["dim"], signals),
    )


def _rule_words(rule: str, dim: int, signals: dict[str, Any]) -> str:
    """What the rule picked and what each signal said."""
    gen = signals["generation"]
    text = (
        f" Signals: NLL knee {signals['nll-knee']}, active units {signals['active-units']}"
        + (f", generation (Frechet distance) {gen}" if gen is not None else "")
        + (
            f", intrinsic-dimension estimate {signals['intrinsic-dim']}"
            if signals.get("intrinsic-dim") is not None
            else ""
        )
        + "."
    )
    if rule == "combined":
        how = (
            "the smaller of the NLL knee and the active units of the largest model"
            if signals["largest_collapsed"]
            else "the NLL knee (no unit of the largest model collapsed)"
        )
        text += f" Rule 'combined' takes {how}: {dim}."
    else:
        text += f" Rule '{rule}' recommends {dim}."
    return text


def _rationale(
    chosen: dict[str, Any], best: dict[str, Any], largest: dict[str, Any], tol: float, rel_tol: float, failed: int
) -> str:
    seeds = best["n_seeds"]
    tol_words = f"{rel_tol:.1%} of the best NLL, a share of the NLL range over sizes" + (
        f" or its standard error over {seeds} seeds, whichever is larger" if seeds > 1 else ""
    )
    text = (
        f"Held-out NLL (importance-weighted bound) is lowest at latent size {best['dim']} "
        f"({best['nll_mean']:.2f} nats). "
    )
    if chosen["dim"] == best["dim"]:
        text += (
            f"No smaller size comes within the tolerance of {tol:.2f} nats ({tol_words}), "
            f"so the NLL knee is {chosen['dim']}."
        )
    else:
        text += (
            f"The smallest size within the tolerance of {tol:.2f} nats ({tol_words}) is "
            f"{chosen['dim']} ({chosen['nll_mean']:.2f} nats), so the NLL knee is {chosen['dim']}: "
            f"the best size is only {chosen['nll_mean'] - best['nll_mean']:.2f} nats better."
        )
    au = largest["active_units_mean"]
    text += (
        f" The largest model ({largest['dim']} units) keeps {au:g} active units "
        f"(variance of the posterior mean over inputs above 0.01)"
    )
    if largest["dim"] == chosen["dim"]:
        text += "; the knee is the largest size tried, so the grid may be too small: try larger sizes."
    elif au >= largest["dim"]:
        text += ", none collapsed: the data may use more units than the recommendation keeps."
    elif abs(au - chosen["dim"]) <= max(1.0, 0.25 * chosen["dim"]):
        text += ", in agreement with the NLL knee."
    else:
        text += f", so the two views of the bottleneck differ ({au:g} vs {chosen['dim']})."
    if failed:
        text += f" {failed} trial(s) failed and were left out (see the results table)."
    return text
