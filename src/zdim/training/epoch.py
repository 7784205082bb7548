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
from .stopping import CONVERGENCE_WINDOW, is_asleep, stop_early

MAX_LR_DROPS = 3  # a plateau lowers the learning rate at most this many times (0.3**3: 1/37 of it)
START_GRACE = 2  # patiences a training is given to improve on its linear start before it counts as flat

if TYPE_CHECKING:  # the recipe's class; zdim.training.trainer imports this module
    from .config import TrainConfig


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
        self.lr_scale = 1.0  # what the plateaus so far multiplied the learning rate by
        self.lr_drops = 0  # how many times a plateau lowered it
        self._last_drop = 0  # the epoch after which it was last lowered
        self._has_start = False  # a start (epoch 0) was a candidate for the best weights
        self._start_val: float | None = None  # the validation -ELBO of a candidate start (epoch 0)
        self._start_state: Any = None  # its weights (kept until the warm-ups end)

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
    def on_start(self) -> bool:
        """Whether the best weights are still those of the start (``_start_candidate``: a linear start that
        no epoch has bettered yet on validation): the training has not yet improved on the linear model,
        and is given the grace of a model that has not started before it is taken as flat."""
        return self._has_start and self.result.best_epoch == 0

    @property
    def asleep(self) -> bool:
        """Whether the model is still warming up, or has not yet started and is still within the
        ``WAKE_GRACE`` patiences it is given to: it has not used its latent code (no epoch with a training
        KL of ``EMPTY_KL``), or after warm-ups it has not yet done better than before them, or than its
        linear start (``on_start``; for ``START_GRACE`` patiences). A flat
        validation loss then means it has not started, not that it has converged."""
        patience = self.config.patience
        if is_asleep(self.awake, self.epoch, patience, warm_end=self._warm_end, started=self._started):
            return True
        return self.on_start and self.epoch < START_GRACE * (patience or CONVERGENCE_WINDOW)

    def _stop_early(self, epoch: int) -> bool:
        """Whether early stopping ends the training after ``epoch``.

        Patience counts only once the model uses its latent code (training KL of at least ``EMPTY_KL``
        nats per sample), from the later of its best epoch and that epoch: a VAE often starts at the
        solution that ignores the latents (for Gaussian data, decoding the feature means), where the
        validation loss is flat, and plain patience would stop it there, having learned nothing. A model
        that never uses its latents is stopped as before once ``WAKE_GRACE`` patiences have passed.
        Nothing is counted while a warm-up acts: patience counts from the end of the longest one. With a
        plateau schedule (``lr_patience``) nothing stops a training before its learning rate was lowered
        once, and patience counts from the last lowering too.
        """
        if self.config.lr_patience and not self.lr_drops:
            return False  # not before the rate was lowered on a plateau: then patience counts from there
        if self.on_start:  # not yet better than its linear start: stopped once its grace has passed
            return not self.asleep
        return stop_early(
            epoch,
            self.config.patience,
            self.awake,
            max(self.result.best_epoch, self._last_drop),
            warm_end=self._warm_end,
            started=self._started,
        )

    def _start_candidate(self, val_loss: float, weights: Any) -> None:
        """The weights before the first step (``weights``, as ``_keep_best`` keeps them) are a candidate for
        the best ones, with validation -ELBO ``val_loss`` (a linear start: the model computes probabilistic
        PCA's ELBO, a true one): the best epoch is then 0 until an epoch does better, and that is said by
        ``best_epoch`` 0. Kept through the warm-ups, whose epochs are not candidates."""
        self._has_start, self._start_val, self._start_state = True, val_loss, weights
        self.result.best_val, self.result.best_epoch = val_loss, 0
        self._restore_start()

    def _restore_start(self) -> None:
        """The start's weights back as the best ones (``_start_candidate``)."""
        raise NotImplementedError

    def _record(self, record: dict[str, Any]) -> bool:
        """Keep the epoch's record; whether its validation -ELBO is the best so far (the caller keeps the
        weights). The best is chosen from the end of the warm-ups on (or the start, ``_start_candidate``)."""
        epoch, val_loss, result = int(record["epoch"]), float(record["val_neg_elbo"]), self.result
        result.history.append(record)
        if epoch == self._warm_end:  # the warm-ups end: the best weights are chosen from this epoch on
            self._before_best, result.best_val = result.best_val, math.inf
            if self._start_val is not None:  # the start stays a candidate
                result.best_val, result.best_epoch = self._start_val, 0
                self._restore_start()
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
        self._plateau(epoch)
        if self._stop_early(epoch):
            self.result.stopped_early = True
            self.done = True
        elif epoch >= config.epochs:
            self.done = True
        return record

    def _plateau(self, epoch: int) -> None:
        """Lower the learning rate after ``lr_patience`` epochs without a new best validation -ELBO (counted
        from the end of the warm-ups and from the last lowering), at most ``MAX_LR_DROPS`` times."""
        patience = self.config.lr_patience
        if not patience or epoch < self._warm_end or self.lr_drops >= MAX_LR_DROPS or self.asleep:
            return  # (a model that has not started yet keeps its rate: it is not on a plateau)
        if epoch - max(self.result.best_epoch, self._warm_end, self._last_drop) >= patience:
            self.lower_lr()

    def lower_lr(self) -> None:
        """Lower the learning rate once (times ``lr_factor``), from the next step on: a plateau, or settle
        mode's coordinator for a member whose score has flattened before it ever lowered it."""
        self.lr_scale *= self.config.lr_factor
        self.lr_drops += 1
        self._last_drop = self.epoch

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
            "lr_scale": self.lr_scale,
            "lr_drops": self.lr_drops,
            "last_drop": self._last_drop,
            "start_val": self._start_val,
            "has_start": self._has_start,
        }

    def _load_progress(self, meta: dict[str, Any]) -> None:
        self.epoch, self.step, self.done = int(meta["epoch"]), int(meta["step"]), bool(meta["done"])
        self.awake = int(meta.get("awake", 0))
        self._release = int(meta.get("release", self._release))
        self._warm_end = int(meta.get("warm_end", self._warm_end))
        before = meta.get("before_best")
        self._before_best = math.inf if before is None else float(before)
        self._seconds = float(meta["seconds"])
        self.lr_scale = float(meta.get("lr_scale", 1.0))
        self.lr_drops = int(meta.get("lr_drops", 0))
        self._last_drop = int(meta.get("last_drop", 0))
        self._has_start = bool(meta.get("has_start", False))
        start = meta.get("start_val")
        self._start_val = None if start is None or self.epoch >= self._warm_end else float(start)
        self.result = FitResult(
            history=list(meta["history"]),
            best_epoch=int(meta["best_epoch"]),
            best_val=float(meta["best_val"]) if meta["best_val"] is not None else math.inf,
            stopped_early=bool(meta["stopped_early"]),
        )


__all__ = ["Epochs", "FitResult", "divergence"]
