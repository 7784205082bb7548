"""The rationale of an answer in words: what the table shows (``rationale``: the best size, the NLL knee,
the tolerance and its terms, the active units of the largest model), the references it is read against,
the failed trials, the sizes off the lower envelope, and what each signal and the rule said. Each function
returns short sentences in the units a user reads (nats per sample); ``zdim.answer.rules.recommend`` joins
them into the recommendation's rule notes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..records import TrialRecord
from . import signals as sig
from .recommendation import _num
from .signals import Reading, units


def reference_words(trials: Sequence[TrialRecord]) -> list[str]:
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


def envelope_words(
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


def rule_words(rule: sig.Signal, dim: int, signals: dict[str, Any], reading: Reading) -> list[str]:
    """What the rule picked and what each signal said."""
    said = [s.words(signals[s.name], reading) for s in sig.views() if signals[s.name] is not None]
    if signals.get("intrinsic-dim") is not None:
        said.append(f"intrinsic-dimension estimate {signals['intrinsic-dim']}")
    return ["Signals: " + ", ".join(said) + ".", rule.says(dim, reading)]


def failed_words(failures: list[TrialRecord], complete: int) -> list[str]:
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


def rationale(
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


__all__ = ["envelope_words", "failed_words", "rationale", "reference_words", "rule_words"]
