"""When a training stops, and when it has converged: the one owner of both.

Two questions, asked of every training:

- **Stop now?** (per training, after each of its epochs): patience on the validation -ELBO, which waits
  for the warm-ups and for a model to start using its latent code (``stop_early``, ``is_asleep``).
  ``zdim.training.epoch.Epochs`` asks it for ``Trainer`` and every stacked member alike.
- **Converged?** (of a sequence of scores, one per epoch, lower is better): a ``StoppingRule``. Its
  ``improvement`` says how much the best score fell over the last ``window`` epochs, its ``flat`` whether
  that is too little to matter; ``converged`` adds what every rule shares (an early-stopped training has
  converged, one still asleep has not). ``RelativeGain`` judges a finished trial's validation -ELBO
  (``TrialRecord.converged``); ``ProjectedGain`` is settle mode's rule, whose members ask it after every
  epoch (``zdim.sweeps.executors.member.Member.converged``). A new rule is one subclass with a ``name`` and one
  row of ``STOPPING_RULES``, the registry ``--stopping`` (``stopping=``) chooses from: settle mode's
  members and per-size and nested trials' records then ask it (``zdim.sweeps.planning.plan.SweepPlan.stopping_rule``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

WAKE_GRACE = 5  # early stopping waits at most this many patiences for a model to start using its latents
CONVERGENCE_WINDOW = 10  # epochs (the patience when early stopping is on)
CONVERGENCE_TOL = 1e-3  # relative improvement of the best validation -ELBO over the window


def is_asleep(awake: int, epoch: int, patience: int, *, warm_end: int = 0, started: bool = True) -> bool:
    """Whether a model that first used its latent code at epoch ``awake`` (0: not yet) is, after
    ``epoch`` epochs, still asleep: a warm-up still acts (``epoch < warm_end``), or it has not yet
    started (not using its latents, or, with ``started`` False, not yet better than before the
    warm-ups) and is within the ``WAKE_GRACE`` patiences (``patience``, or ``CONVERGENCE_WINDOW`` when
    early stopping is off) it is given to start."""
    if epoch < warm_end:
        return True
    return not (awake and started) and epoch < WAKE_GRACE * (patience or CONVERGENCE_WINDOW)


def stop_early(
    epoch: int, patience: int, awake: int, best_epoch: int, *, warm_end: int = 0, started: bool = True
) -> bool:
    """Whether early stopping ends a training after ``epoch`` (see ``Epochs._stop_early``): nothing is
    counted while a warm-up acts (``epoch < warm_end``); patience then counts from the latest of the
    best epoch, the end of the warm-ups and the epoch the model woke up; a model that never wakes is
    stopped once its grace has passed. ``patience`` 0 never stops."""
    if not patience or epoch < warm_end:
        return False
    start = max(best_epoch, warm_end)
    if awake:
        return epoch - max(start, awake) >= patience
    return not is_asleep(awake, epoch, patience, warm_end=warm_end, started=started) and epoch - start >= patience


@dataclass(frozen=True)
class StoppingRule:
    """Whether a training whose score (lower is better) was ``scores[i]`` after epoch ``i + 1`` has
    converged: going on would not change what it is used for.

    Subclasses write ``flat`` (and, for another measure of the gain, ``improvement`` and ``reason``).

    Attributes
    ----------
    window : int
        Epochs over which the gain of the best score is measured.
    tol : float
        The gain below which going on does not matter (its unit is the subclass's).
    """

    name: ClassVar[str] = ""  # what ``--stopping`` calls it (its row of ``STOPPING_RULES``)
    window: int = CONVERGENCE_WINDOW
    tol: float = CONVERGENCE_TOL

    def improvement(self, scores: Sequence[float]) -> float | None:
        """How much the best score fell over the last ``window`` epochs (None before ``window + 1``)."""
        if len(scores) <= self.window:
            return None
        return min(scores[: -self.window]) - min(scores)

    def flat(self, scores: Sequence[float], horizon: int = 0) -> bool:
        """Whether the scores are too flat for going on to matter (``horizon``: see ``ProjectedGain``)."""
        raise NotImplementedError

    def converged(
        self, scores: Sequence[float], *, stopped_early: bool = False, asleep: bool = False, horizon: int = 0
    ) -> bool:
        """Early-stopped (patience already judged it), or awake and ``flat``. A training that has not yet
        used its latent code (``asleep``, ``is_asleep``) is flat because it has not started: never
        converged."""
        if stopped_early:
            return True
        if asleep:
            return False
        return self.flat(scores, horizon)

    def reason(self, scores: Sequence[float]) -> str:
        """The sentence that says why ``scores`` converged (a record's evidence)."""
        return f"the score fell {self.improvement(scores)} over the last {self.window} epochs, below {self.tol:.3g}"


@dataclass(frozen=True)
class RelativeGain(StoppingRule):
    """A finished trial's rule: the best validation -ELBO fell by less than ``tol`` (``CONVERGENCE_TOL``),
    relative to ``max(|best|, 1)``, over the last ``window`` epochs (``TrialRecord.converged`` and
    ``window_improvement``)."""

    name: ClassVar[str] = "relative-gain"

    def improvement(self, scores: Sequence[float]) -> float | None:
        gain = super().improvement(scores)
        return None if gain is None else gain / max(abs(min(scores)), 1.0)

    def flat(self, scores: Sequence[float], horizon: int = 0) -> bool:
        gain = self.improvement(scores)
        return gain is not None and gain < self.tol

    @staticmethod
    def scores(history: Sequence[dict[str, Any]]) -> list[float]:
        """The finite validation -ELBO of each epoch of a ``FitResult.history``."""
        return [float(r["val_neg_elbo"]) for r in history if math.isfinite(float(r.get("val_neg_elbo", math.nan)))]


@dataclass(frozen=True)
class ProjectedGain(StoppingRule):
    """Settle mode's rule: the gain of the best score (in nats) over the last ``window`` epochs, kept up
    for as many epochs again as the training has run, or as its finished neighbours ran when it joined
    the grid late (``horizon``), stays below ``tol`` (half the answer's tolerance: a smaller gain cannot
    move the answer): ``gain * max(epochs, horizon) / window < tol``. A size added by growth or bisection
    is held to its neighbours' standard, not to its own short history."""

    name: ClassVar[str] = "projected-gain"

    def flat(self, scores: Sequence[float], horizon: int = 0) -> bool:
        gain = self.improvement(scores)
        return gain is not None and gain * max(len(scores), horizon) / self.window < self.tol

    def reason(self, scores: Sequence[float]) -> str:
        return (
            f"validation NLL fell {self.improvement(scores):.3g} nats over the last {self.window} epochs: kept up "
            f"for {len(scores)} epochs more, less than half the rule's tolerance ({self.tol:.3g})"
        )


# The stopping rules by name: ``--stopping``'s choices (its option row reads them here, ``zdim.option_table``),
# settle mode's default first. Text and the standard library only: every command line, ``--help`` included,
# reads it.
STOPPING_RULES: dict[str, type[StoppingRule]] = {rule.name: rule for rule in (ProjectedGain, RelativeGain)}
DEFAULT_STOPPING = ProjectedGain.name  # settle mode's; the other modes' is RelativeGain (zdim.sweeps.planning.plan)


__all__ = [
    "STOPPING_RULES",
    "DEFAULT_STOPPING",
    "StoppingRule",
    "RelativeGain",
    "ProjectedGain",
    "stop_early",
    "is_asleep",
    "WAKE_GRACE",
    "CONVERGENCE_WINDOW",
    "CONVERGENCE_TOL",
]
