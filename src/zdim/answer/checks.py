"""The sanity checks of an answer: whether the evidence can carry it.

``learned_nothing`` (a model no better than decoding the feature means), ``barely_moved`` (less than half
of what probabilistic PCA of its size buys), ``below_linear`` (worse than probabilistic PCA of its
size) and ``checks`` (the notes of an answer: no latent structure,
models that learned nothing, a test split too small, unconverged models it rests on, barely moved models,
the edge of the grid). A ``WARNING`` note makes the answer not settled. Pure functions of typed trial
records (``zdim.records.TrialRecord``); ``zdim.answer.rules`` calls them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..evidence import Note, caution, rerun, warning
from ..likelihoods import find as find_likelihood
from ..records import EMPTY_KL, TrialRecord

MIN_TEST_SAMPLES = 100  # held-out samples below which NLL differences between sizes are noise
EMPTY_MSE = 0.9  # standardized Gaussian features: predicting the feature means gives an MSE of 1
MIN_GAIN = 0.01  # nats: a held-out gain below this is no gain, however small its standard error


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
    if _standardized(likelihood):
        mse = t.metric("mse")
        return mse is not None and mse >= EMPTY_MSE
    return t.active_units == 0


def _standardized(likelihood: str | None) -> bool:
    """Whether ``likelihood``'s data are standardized features (Gaussian): there decoding the feature
    means gives an MSE of 1, and the MSE can tell a model that learned nothing."""
    family = find_likelihood(likelihood)
    return family is not None and family.standardized


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
        if _standardized(likelihood)
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


def below_linear(t: TrialRecord) -> bool:
    """Whether a complete trial's held-out NLL is worse than that of probabilistic PCA of its own size on the
    same samples (``linear_nll``; from D - 1 components on the full-covariance Gaussian) beyond twice the
    paired standard error of the gap (or ``MIN_GAIN``): a model of that size with a linear path reaches the
    linear model (it starts there, ``zdim.likelihoods.LinearStart``), so such a trial stopped short of
    what its size can reach."""
    nll, lin, se = t.metric("nll"), t.metric("linear_nll"), t.metric("linear_se")
    return t.complete and nll is not None and lin is not None and se is not None and nll - lin > max(2 * se, MIN_GAIN)


def below_linear_dims(trials: Sequence[TrialRecord]) -> list[int]:
    """The sizes every complete trial of which is ``below_linear``."""
    dims = sorted({t.dim for t in trials if t.complete})
    return [d for d in dims if all(below_linear(t) for t in trials if t.dim == d and t.complete)]


_FIX = "fix: more epochs/data, or a KL warm-up (--warmup)"


def checks(
    measured: list[TrialRecord],
    used: list[TrialRecord],
    empty: list[TrialRecord],
    rows: list[dict[str, Any]],
    dim: int,
    likelihood: str | None,
    n_features: int | None = None,
) -> list[Note]:
    """The sanity checks of an answer ``dim`` as notes (a ``WARNING`` unsettles it), the weightiest first.
    ``used`` are the trials the rules read, ``empty`` those left out as having learned nothing. An answer
    at the largest size tried with every unit active is the edge of the grid (not settled), unless that
    size is the feature count (``n_features``): then no compression was found, which is said as a caution.
    An answer at the smallest size tried, above 1, is flagged like the largest: a smaller size was never
    measured."""
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
        if rests and not (no_latent and not _standardized(likelihood)):  # else the warning above says it all
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
        fix = rerun("a larger --time-budget" if budget else "more --epochs")
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
    short = [d for d in below_linear_dims(used) if d not in weak_dims]  # (barely moved says it already)
    if short:
        gaps = [(t.metric("nll") or 0.0) - (t.metric("linear_nll") or 0.0) for t in used if t.dim in short]
        rests = bool(claimed & set(short))
        them = "it" if len(short) == 1 else "them"
        text = (
            f"{_sizes(short)} {'is' if len(short) == 1 else 'are'} worse on the held-out samples than probabilistic "
            f"PCA of the same size ({_span(gaps)} nats, beyond twice the paired standard error): "
            f"{'its' if len(short) == 1 else 'their'} training stopped short of what a model of that size reaches"
        )
        if rests:
            out.append(warning(f"{text}, so the answer cannot rest on {them}; {_FIX}", "below-linear"))
        else:
            out.append(caution(f"{text}; the answer does not rest on {them}", "below-linear"))
    largest, smallest = rows[-1], rows[0]
    if dim == largest["dim"] and n_features is not None and dim >= n_features and len(rows) > 1:
        below = min(rows[:-1], key=lambda r: r["nll_mean"])  # the best of the smaller sizes
        out.append(
            caution(
                f"no compression found: the answer is the feature count ({n_features}), the largest latent size "
                f"there is; the best smaller size tried ({below['dim']}) is {below['gap']:.2f} nats worse per "
                "sample, so every feature carries variance that fewer latent units do not model (noise of its own, "
                "or a structure a Gaussian latent cannot fold into fewer units)",
                "no-compression",
            )
        )
    elif dim == largest["dim"] and largest["active_units_mean"] >= largest["dim"]:
        out.append(
            warning("the answer is the largest size tried and all its units are active: try larger sizes", "edge")
        )
    if dim == smallest["dim"] and dim > 1 and len(rows) > 1:
        out.append(
            warning(
                f"the answer is the smallest size tried ({dim}): no smaller size was measured, so a smaller one "
                "may do as well; try smaller sizes",
                "low-edge",
            )
        )
    return out


__all__ = [
    "checks",
    "learned_nothing",
    "barely_moved",
    "below_linear",
    "below_linear_dims",
    "MIN_TEST_SAMPLES",
    "EMPTY_MSE",
    "MIN_GAIN",
]
