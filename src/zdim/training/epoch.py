"""One training's epochs: the bookkeeping every trainer shares.

``zdim.training.trainer.Trainer`` (one model) and ``zdim.training.stacked.StackedMember`` (one member of a
batched stack) train their steps differently; everything after the steps is this module's ``Epochs``, the one tail of
an epoch: divergence, the history, the best epoch and weights, when the model woke up, the wake-up
lever's hook, early stopping (asked of ``zdim.training.stopping``) and the epoch cap, and the counters of a
checkpoint. Both classes therefore stop, keep and resume in the same way, by construction.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import TrainingDiverged
from ..records import EMPTY_KL
from .stopping import is_asleep, stop_early

if TYPE_CHECKING:  # the recipe's class; zdim.training.trainer imports this module
    from .trainer import TrainConfig


@dataclass
class FitResult:
    """What ``fit`` returns: per-epoch history and where the best weights came from."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_val: float = math.inf
    stopped_early: bool = False
    seconds: float = 0.0


def divergence(epoch: int, lr: float, train_loss: float, val_loss: float | None = None) -> str | None:
    """The ``TrainingDiverged`` message for an epoch whose training loss (or, when given, validation
    -ELBO) is NaN or infinite; None when both are finite."""
    if not math.isfinite(train_loss):
        return (
            f"training diverged at epoch {epoch}: loss is {train_loss}; "
            f"try a smaller --lr (now {lr}) or a KL warm-up (--warmup)"
        )
    if val_loss is not None and not math.isfinite(val_loss):
        return f"training diverged at epoch {epoch}: validation -ELBO is {val_loss}; try a smaller --lr (now {lr})"
    return None


class Epochs:
    """One training's epochs, as ``Trainer`` and every ``zdim.training.stacked.StackedMember`` keep them: the
    counters, the warm-ups the stopping rules wait for, the rules themselves (``zdim.training.stopping``), the
    best epoch, the epoch's bookkeeping once its steps are done (``_end_epoch``), and the counters' part
    of a checkpoint (``state()``'s meta, readable by either class).

    A subclass trains the steps and says how to keep its best weights (``_keep_best``) and, where it has
    a noise scale, how to wake a sleeper up (``_wake_up``).
    """

    config: TrainConfig

    def _start(self, warm_end: int) -> None:
        self.epoch = 0
        self.step = 0
        self.done = False
        self.awake = 0  # first epoch whose training KL reached EMPTY_KL (0: not yet): see ``_stop_early``
        self.result = FitResult()
        self._seconds = 0.0
        self._release = -1  # the first step at which a held noise scale is learned (-1: none held)
        self._warm_end = warm_end  # the epoch until which the stopping rules wait for the warm-ups
        self._before_best = math.inf  # the best validation -ELBO of the epochs before the warm-ups ended

    @property
    def warming(self) -> bool:
        """Whether a warm-up (KL, noise scale, free bits, learning rate) still acts after the epochs run:
        the stopping rules do not count these epochs (``TrainConfig.warm_epochs``, or the end of the hold
        of a model that was still asleep after epoch ``sigma_after``)."""
        return self.epoch < self._warm_end

    @property
    def _started(self) -> bool:
        return bool(self.awake) and self.result.best_val <= self._before_best

    @property
    def asleep(self) -> bool:
        """Whether the model is still warming up, or has not yet started and is still within the
        ``WAKE_GRACE`` patiences it is given to: it has not used its latent code (no epoch with a training
        KL of ``EMPTY_KL``), or after warm-ups it has not yet done better than before them. A flat
        validation loss then means it has not started, not that it has converged."""
        return is_asleep(self.awake, self.epoch, self.config.patience, warm_end=self._warm_end, started=self._started)

    def _stop_early(self, epoch: int) -> bool:
        """Whether early stopping ends the training after ``epoch``.

        Patience counts only once the model uses its latent code (training KL of at least ``EMPTY_KL``
        nats per sample), from the later of its best epoch and that epoch: a VAE often starts at the
        solution that ignores the latents (for Gaussian data, decoding the feature means), where the
        validation loss is flat, and plain patience would stop it there, having learned nothing. A model
        that never uses its latents is stopped as before once ``WAKE_GRACE`` patiences have passed.
        Nothing is counted while a warm-up acts: patience counts from the end of the longest one.
        """
        return stop_early(
            epoch,
            self.config.patience,
            self.awake,
            self.result.best_epoch,
            warm_end=self._warm_end,
            started=self._started,
        )

    def _record(self, record: dict[str, Any]) -> bool:
        """Keep the epoch's record; whether its validation -ELBO is the best so far (the caller keeps the
        weights). The best is chosen from the end of the warm-ups on."""
        epoch, val_loss, result = int(record["epoch"]), float(record["val_neg_elbo"]), self.result
        result.history.append(record)
        if epoch == self._warm_end:  # the warm-ups end: the best weights are chosen from this epoch on
            self._before_best, result.best_val = result.best_val, math.inf
        if val_loss < result.best_val:
            result.best_val, result.best_epoch = val_loss, epoch
            return True
        return False

    def _end_epoch(
        self, train_loss: float, val_loss: float, train_kl: float, beta: float, seconds: float
    ) -> dict[str, Any]:
        """The epoch's bookkeeping after its steps and its validation, the one tail of every trainer:
        ``TrainingDiverged`` for a NaN or infinite loss; the record (kept in the history); the best
        weights (``_keep_best``, from the end of the warm-ups on); the first epoch that used the latent
        code (``awake``); a sleeper's noise-scale lever after epoch ``sigma_after`` (``_wake_up``); the
        stopping rules (``done``: early stopping, or the epoch cap). Returns the record."""
        epoch, config = self.epoch, self.config
        diverged = divergence(epoch, config.lr, train_loss, val_loss)
        if diverged:
            raise TrainingDiverged(diverged)
        record = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_neg_elbo": val_loss,
            "train_kl": train_kl,
            "beta": beta,
            "seconds": seconds,
        }
        if self._record(record):
            self._keep_best()
        if not self.awake and train_kl >= EMPTY_KL:
            self.awake = epoch
        if config.sigma_after and epoch == config.sigma_after and not self.awake:
            self._wake_up()
        if self._stop_early(epoch):
            self.result.stopped_early = True
            self.done = True
        elif epoch >= config.epochs:
            self.done = True
        return record

    def _keep_best(self) -> None:
        """Keep the current weights as the best ones (the epoch just recorded is the best so far)."""
        raise NotImplementedError

    def _wake_up(self) -> None:
        """A model still asleep after epoch ``sigma_after``: set and hold its noise scale (``Trainer``);
        nothing where there is no noise scale to set (a stack trains none of the levers)."""

    def _progress_meta(self) -> dict[str, Any]:
        r = self.result
        return {
            "epoch": self.epoch,
            "step": self.step,
            "done": self.done,
            "awake": self.awake,
            "release": self._release,
            "warm_end": self._warm_end,
            "before_best": self._before_best if math.isfinite(self._before_best) else None,
            "seconds": self._seconds,
            "history": copy.deepcopy(r.history),
            "best_epoch": r.best_epoch,
            "best_val": r.best_val,
            "stopped_early": r.stopped_early,
        }

    def _load_progress(self, meta: dict[str, Any]) -> None:
        self.epoch, self.step, self.done = int(meta["epoch"]), int(meta["step"]), bool(meta["done"])
        self.awake = int(meta.get("awake", 0))
        self._release = int(meta.get("release", self._release))
        self._warm_end = int(meta.get("warm_end", self._warm_end))
        before = meta.get("before_best")
        self._before_best = math.inf if before is None else float(before)
        self._seconds = float(meta["seconds"])
        self.result = FitResult(
            history=list(meta["history"]),
            best_epoch=int(meta["best_epoch"]),
            best_val=float(meta["best_val"]) if meta["best_val"] is not None else math.inf,
            stopped_early=bool(meta["stopped_early"]),
        )


__all__ = ["Epochs", "FitResult", "divergence"]
