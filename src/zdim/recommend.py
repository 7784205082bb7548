"""The rule that turns trial results into one recommended latent size, with its rationale.

Rule ``nll-knee`` (default): aggregate held-out NLL (IWAE bound) per latent size over seeds; the best
size has the lowest mean NLL. The recommendation is the *smallest* size whose mean NLL is within a
tolerance of the best, where the tolerance is ``max(rel_tol * |best NLL|, SE of the best size)`` (the
standard error across seeds; zero with one seed). Beside it we report the active units of the largest
model, a second view of the bottleneck: units the data does not need collapse to the prior.

This module knows nothing of how results were produced: it takes plain trial records.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import ConfigError

RULES = ("nll-knee",)
DEFAULT_REL_TOL = 0.01


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
        rows.append(
            {"dim": dim, "n_seeds": len(ts), f"{metric}_mean": mean, f"{metric}_se": se,
             "active_units_mean": au_mean, "active_units_se": au_se}
        )
    return rows


def recommend(
    trials: list[dict[str, Any]], *, rule: str = "nll-knee", rel_tol: float = DEFAULT_REL_TOL
) -> Recommendation:
    """Recommend a latent size from trial records (dicts with ``dim``, ``status``, ``nll``, ...).

    Raises ``ConfigError`` for an unknown rule or a negative tolerance, and ``ValueError`` when no
    trial completed.
    """
    if rule not in RULES:
        raise ConfigError(f"unknown rule {rule!r}: choose one of {', '.join(RULES)} (--rule)")
    if not (rel_tol >= 0 and math.isfinite(rel_tol)):
        raise ConfigError(f"tolerance must be a finite number >= 0, got {rel_tol!r}: fix --tolerance")
    rows = aggregate(trials)
    failed = sum(1 for t in trials if t.get("status") == "failed")
    if not rows:
        raise ValueError(f"no trial completed ({failed} failed): nothing to recommend")
    best = min(rows, key=lambda r: r["nll_mean"])
    tol = max(rel_tol * abs(best["nll_mean"]), best["nll_se"])
    threshold = best["nll_mean"] + tol
    chosen = next(r for r in rows if r["nll_mean"] <= threshold)
    largest = rows[-1]
    return Recommendation(
        dim=chosen["dim"], rule=rule, best_dim=best["dim"], threshold=threshold, tolerance=tol,
        rel_tol=rel_tol, per_dim=rows, largest_dim=largest["dim"],
        largest_active_units=largest["active_units_mean"], failed_trials=failed,
        rationale=_rationale(chosen, best, largest, tol, rel_tol, failed),
    )


def _rationale(chosen: dict[str, Any], best: dict[str, Any], largest: dict[str, Any], tol: float,
               rel_tol: float, failed: int) -> str:
    seeds = best["n_seeds"]
    tol_words = f"{rel_tol:.1%} of the best NLL" + (
        f" or its standard error over {seeds} seeds, whichever is larger" if seeds > 1 else ""
    )
    text = (
        f"Held-out NLL (importance-weighted bound) is lowest at latent size {best['dim']} "
        f"({best['nll_mean']:.2f} nats). "
    )
    if chosen["dim"] == best["dim"]:
        text += (f"No smaller size comes within the tolerance of {tol:.2f} nats ({tol_words}), "
                 f"so zdim recommends {chosen['dim']}.")
    else:
        text += (f"The smallest size within the tolerance of {tol:.2f} nats ({tol_words}) is "
                 f"{chosen['dim']} ({chosen['nll_mean']:.2f} nats), so zdim recommends {chosen['dim']}: "
                 f"the best size is only {chosen['nll_mean'] - best['nll_mean']:.2f} nats better.")
    au = largest["active_units_mean"]
    text += (
        f" The largest model ({largest['dim']} units) keeps {au:g} active units "
        f"(variance of the posterior mean over inputs above 0.01)"
    )
    if largest["dim"] == chosen["dim"]:
        text += "; the recommended size is the largest tried, so the grid may be too small: try larger sizes."
    elif au >= largest["dim"]:
        text += ", none collapsed: the data may use more units than the recommendation keeps."
    elif abs(au - chosen["dim"]) <= max(1.0, 0.25 * chosen["dim"]):
        text += ", in agreement with the recommendation."
    else:
        text += f", so the two views of the bottleneck differ ({au:g} vs {chosen['dim']})."
    if failed:
        text += f" {failed} trial(s) failed and were left out (see the results table)."
    return text
