"""One member of a settle sweep, as settle mode reads it (``Member``): its (size, seed), its validation scores
after every epoch, whether it still trains, and how far it is from its plateau (``improvement``, ``flat``,
``converged``, ``gain``: the projected further gain a stopping rule reads); and ``_horizon``, the epochs a
member that joins the grid late converges to. ``zdim.sweeps.executors.settle`` decides with them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...training.stopping import ProjectedGain, StoppingRule
from ..records.ledger import Finished, Key
from .engines import Status


@dataclass
class Member:
    """One (size, seed) of the grid in training, as the coordinator keeps it (the engine trains it)."""

    dim: int
    seed: int
    epoch: int = 0
    done: bool = False  # its training ended by itself: early stopping or the epoch cap
    stopped_early: bool = False
    asleep: bool = True  # it has not yet used its latent code, within its grace (zdim.training.trainer)
    lr_drops: int = 0  # how many times its learning rate was lowered (its own plateaus, or ``lower``)
    lowered_at: int = 0  # the epoch after which its learning rate was first lowered (0: not yet)
    stopped: str = ""  # why settle mode stopped it ("" while it trains or when it ran to its own end)
    stop_code: str = ""  # the same as a code: "settled", "collapsed" or "time-budget"
    val_nll: float | None = None
    active: int | None = None
    failed: str = ""
    scores: list[float] = field(default_factory=list)  # validation-subset NLL after each epoch
    per_sample: Any = None  # the latest (N,) per-sample NLL on the validation subset (paired across members)
    horizon: int = 0  # epochs its finished neighbours trained: a member that joins late converges to their standard
    rule: type[StoppingRule] = ProjectedGain  # when it has converged (zdim.training.stopping)

    @property
    def key(self) -> Key:
        return self.dim, self.seed

    @property
    def training(self) -> bool:
        return not (self.done or self.stopped or self.failed)

    def update(self, s: Status, scored: bool = True) -> None:
        """The member after an epoch (or a restore, ``scored=False``: its scores are already kept)."""
        self.epoch, self.done, self.stopped_early, self.asleep = s.epoch, s.done, s.stopped_early, s.asleep
        if s.lr_drops and not self.lowered_at:
            self.lowered_at = max(1, s.epoch - 1)  # lowered after the epoch before this one's (or before it)
        self.lr_drops = s.lr_drops
        if s.failed:
            self.failed = s.failed
            return
        if s.val_nll is not None:
            self.val_nll, self.active, self.per_sample = s.val_nll, s.active, s.per_sample
            if scored:
                self.scores.append(s.val_nll)

    def record(self) -> dict[str, Any]:
        """What a checkpoint keeps of the coordinator's side of the member (``meta["member"]``)."""
        return {
            "stopped": self.stopped,
            "stop_code": self.stop_code,
            "failed": self.failed,
            "scores": self.scores,
            "val_nll": self.val_nll,
            "active": self.active,
            "horizon": self.horizon,
            "lowered_at": self.lowered_at,
        }

    def load(self, status: Status, saved: dict[str, Any]) -> None:
        """The member as a checkpoint left it: the engine's ``status``, the coordinator's ``saved`` record."""
        self.stopped, self.stop_code = str(saved.get("stopped", "")), str(saved.get("stop_code", ""))
        self.failed, self.scores = str(saved.get("failed", "")), [float(v) for v in saved.get("scores", [])]
        self.update(status, scored=False)
        self.val_nll, self.active = saved.get("val_nll"), saved.get("active")
        self.horizon = int(saved.get("horizon", self.horizon))
        self.lowered_at = int(saved.get("lowered_at", self.lowered_at))

    def improvement(self, window: int) -> float | None:
        """How much the best subset NLL fell over the last ``window`` epochs (None before ``window + 1``)."""
        return self.rule(window).improvement(self.scores)

    def flat(self, window: int, tol: float) -> bool:
        """Whether settle mode's stopping rule (``rule``, ``zdim.training.stopping.ProjectedGain`` by default)
        finds the member's subset NLL flat with gains below ``tol`` over ``window`` epochs (judged against
        the epochs it has trained, or those its finished neighbours trained when it joined the grid late:
        ``horizon``), or it early-stopped. A member that has not yet used its latent code (``asleep``) is
        never flat: it has not started."""
        rule = self.rule(window, tol)
        return rule.converged(
            self.scores, stopped_early=self.done and self.stopped_early, asleep=self.asleep, horizon=self.horizon
        )

    def converged(self, window: int, tol: float) -> bool:
        """Whether the member has converged: ``flat`` over a window of ``window`` epochs after its learning
        rate was first lowered (a plateau of its own, or settle mode lowering it once it was first flat), so
        that a member is never taken as converged while a smaller step would still improve it; an
        early-stopped member (which waits for a lowering itself) has."""
        if self.done and self.stopped_early:
            return True
        lowered = self.lr_drops > 0 and self.epoch - self.lowered_at >= window
        return lowered and self.flat(window, tol)

    def gain(self, window: int) -> float | None:
        """The member's projected further gain in nats (``ProjectedGain``: the gain of its best subset NLL
        over the last ``window`` epochs, kept up for as many epochs again as it has trained); None before
        ``window + 1`` epochs."""
        gain = self.improvement(window)
        return None if gain is None else gain * max(len(self.scores), self.horizon) / window


def _horizon(dim: int, done: dict[Key, Finished]) -> int:
    """The epochs the finished members of the nearest sizes below and above ``dim`` trained (the most of
    them; 0 when none finished): the standard a member that joins the grid late converges to."""
    sizes = {k[0] for k, f in done.items() if f.record.complete}
    near = [max((d for d in sizes if d < dim), default=None), min((d for d in sizes if d > dim), default=None)]
    epochs = [
        f.record.epochs_run or 0 for k, f in done.items() if f.record.complete and k[0] in near and k[0] is not None
    ]
    return max(epochs, default=0)


__all__ = ["Member", "_horizon"]
