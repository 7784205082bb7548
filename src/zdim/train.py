"""Training: ``TrainConfig`` and ``fit``.

The loop runs over tensors held in memory: one random permutation per epoch, batches gathered by
index, no per-sample Python and no host sync per step (the epoch loss is summed on the device and read
once). Validation -ELBO is computed every epoch; early stopping restores the best weights.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .errors import ConfigError, TrainingDiverged
from .metrics import neg_elbo
from .models import VAE
from .records import EMPTY_KL

EpochCallback = Callable[[int, dict[str, Any]], None]


@dataclass(frozen=True)
class TrainConfig:
    """How one VAE is trained.

    Attributes
    ----------
    epochs : int
        Maximum number of passes over the training split.
    batch_size : int
        Samples per optimizer step.
    lr : float
        Adam learning rate.
    beta : float
        Weight of the KL term after warm-up (1.0 is the true ELBO).
    warmup_epochs : float
        Length of a linear KL warm-up from 0 to ``beta``, in epochs (0: none).
    free_bits : float
        Minimum KL per latent unit, in nats, below which the KL is not penalized (Kingma et al.
        2016); computed on batch means. 0 disables it.
    patience : int
        Stop after this many epochs without improvement of validation -ELBO (0: never stop early).
    seed : int
        Seed of initialization, shuffling and sampling.
    device : str
        ``auto`` (CUDA when present, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``. Asking for CUDA
        where there is none is a ``ConfigError`` here, not a failure of every trial later.
    weight_decay : float
        Adam weight decay.
    binarize : bool
        Draw a fresh binary sample of every training batch (pixel ~ Bernoulli(grey level)): dynamic
        binarization, for data in [0, 1] loaded with ``load_data(binarize=True)``.
    """

    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-3
    beta: float = 1.0
    warmup_epochs: float = 0.0
    free_bits: float = 0.0
    patience: int = 10
    seed: int = 0
    device: str = "auto"
    weight_decay: float = 0.0
    binarize: bool = False

    def __post_init__(self) -> None:
        checks = [
            ("epochs", self.epochs >= 1, "an integer >= 1", "--epochs"),
            ("batch_size", self.batch_size >= 1, "an integer >= 1", "--batch-size"),
            ("lr", 0 < self.lr < 10, "a float in (0, 10)", "--lr"),
            ("beta", self.beta >= 0 and math.isfinite(self.beta), "a finite float >= 0", "--beta"),
            ("warmup_epochs", self.warmup_epochs >= 0, "a float >= 0", "--warmup"),
            ("free_bits", self.free_bits >= 0, "a float >= 0", "--free-bits"),
            ("patience", self.patience >= 0, "an integer >= 0", "--patience"),
            ("weight_decay", self.weight_decay >= 0, "a float >= 0", "--weight-decay"),
        ]
        for name, ok, expected, flag in checks:
            if not ok:
                raise ConfigError(f"{name} must be {expected}, got {getattr(self, name)!r}: fix {flag}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}: fix --device")
        resolve_device(self.device)  # CUDA asked for where there is none: fail now, not in every trial

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class FitResult:
    """What ``fit`` returns: per-epoch history and where the best weights came from."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_val: float = math.inf
    stopped_early: bool = False
    seconds: float = 0.0


def beta_at(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """KL weight at optimizer step ``step`` under the linear warm-up."""
    if config.warmup_epochs <= 0:
        return config.beta
    ramp = config.warmup_epochs * steps_per_epoch
    return config.beta * min(1.0, (step + 1) / ramp)


def kl_term(kl_units: torch.Tensor, free_bits: float) -> torch.Tensor:
    """KL penalty from per-sample, per-unit KL (B, K): batch mean per unit, floored at free bits."""
    per_unit = kl_units.mean(0)  # (K,)
    if free_bits > 0:
        per_unit = per_unit.clamp(min=free_bits)
    return per_unit.sum()


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else the CPU; ``ConfigError`` for CUDA where there is none."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for but CUDA is not available here: use --device cpu or auto")
    if name.startswith("cuda:") and int(name.split(":", 1)[1] or 0) >= torch.cuda.device_count():
        raise ConfigError(
            f"device {name!r} was asked for but there are {torch.cuda.device_count()} CUDA device(s): fix --device"
        )
    return torch.device(name)


WAKE_GRACE = 5  # early stopping waits at most this many patiences for a model to start using its latents
CONVERGENCE_WINDOW = 10  # epochs (the patience when early stopping is on)
CONVERGENCE_TOL = 1e-3  # relative improvement of the best validation -ELBO over the window


def is_asleep(awake: int, epoch: int, patience: int) -> bool:
    """Whether a model that first used its latent code at epoch ``awake`` (0: not yet) is, after
    ``epoch`` epochs, still asleep: not yet using its latents and within the ``WAKE_GRACE`` patiences
    (``patience``, or ``CONVERGENCE_WINDOW`` when early stopping is off) it is given to start."""
    return not awake and epoch < WAKE_GRACE * (patience or CONVERGENCE_WINDOW)


def stop_early(epoch: int, patience: int, awake: int, best_epoch: int) -> bool:
    """Whether early stopping ends a training after ``epoch`` (see ``Trainer._stop_early``): patience
    counts from the later of the best epoch and the epoch the model woke up; a model that never wakes
    is stopped once its grace has passed. ``patience`` 0 never stops."""
    if not patience:
        return False
    if awake:
        return epoch - max(best_epoch, awake) >= patience
    return not is_asleep(awake, epoch, patience) and epoch - best_epoch >= patience


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


def convergence(history: list[dict[str, Any]], window: int = CONVERGENCE_WINDOW) -> tuple[bool, float | None]:
    """Whether a training had converged: ``(converged, improvement)``.

    ``improvement`` is how much the best validation -ELBO fell over the last ``window`` epochs, relative
    to ``max(|best|, 1)``; converged when it is below ``CONVERGENCE_TOL``. A history shorter than
    ``window + 1`` epochs cannot show it: not converged, improvement None.
    """
    vals = [float(r["val_neg_elbo"]) for r in history if math.isfinite(float(r.get("val_neg_elbo", math.nan)))]
    if len(vals) <= window:
        return False, None
    before, after = min(vals[:-window]), min(vals)
    improvement = (before - after) / max(abs(after), 1.0)
    return improvement < CONVERGENCE_TOL, improvement


class Trainer:
    """One VAE's training, an epoch at a time: ``run_epoch()`` until ``done``, then ``finish()``.

    ``fit`` is ``Trainer`` run to the end. Several trainers may be interleaved (settle mode): each keeps
    its optimizer, its shuffling generator and its own stream of the global torch RNG (the
    reparameterization noise), swapped in around each epoch, so a model trained interleaved is the
    model trained alone, bit for bit.
    """

    def __init__(
        self,
        model: VAE,
        train: torch.Tensor,
        val: torch.Tensor,
        config: TrainConfig | None = None,
        *,
        callback: EpochCallback | None = None,
    ) -> None:
        self.config = config = config or TrainConfig()
        self.device = resolve_device(config.device)
        self.model, self.val, self.callback = model, val, callback
        torch.manual_seed(config.seed)
        self._rng = torch.get_rng_state()
        self._cuda_rng = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        self.gen = torch.Generator().manual_seed(config.seed)
        model.to(self.device)
        self.train = train.to(self.device)
        self.opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.n = self.train.shape[0]
        self.bs = min(config.batch_size, self.n)
        self.steps_per_epoch = max(1, self.n // self.bs)  # drop the ragged last batch: every step sees bs samples
        self.result = FitResult()
        self.best_state = copy.deepcopy(model.state_dict())
        self.step = 0
        self.epoch = 0
        self.done = False
        self.awake = 0  # first epoch whose training KL reached EMPTY_KL (0: not yet): see ``_stop_early``
        self._seconds = 0.0

    def run_epoch(self) -> dict[str, Any]:
        """Train one epoch, validate, keep the best weights; return the epoch's record. Sets ``done`` at
        the epoch cap or when early stopping triggers. Raises ``TrainingDiverged`` on a NaN/inf loss."""
        config, model, device = self.config, self.model, self.device
        t0 = time.perf_counter()
        torch.set_rng_state(self._rng)  # this training's own noise stream
        if self._cuda_rng is not None:
            torch.cuda.set_rng_state(self._cuda_rng, self.device)
        self.epoch += 1
        epoch = self.epoch
        model.train()
        te = time.perf_counter()
        perm = torch.randperm(self.n, generator=self.gen).to(device)
        total = torch.zeros((), device=device)
        kl_total = torch.zeros((), device=device)
        beta = config.beta
        bs = self.bs
        for i in range(self.steps_per_epoch):
            x = self.train[perm[i * bs : (i + 1) * bs]]
            if config.binarize:
                x = torch.bernoulli(x)  # dynamic binarization: a new binary sample each time
            beta = beta_at(config, self.step, self.steps_per_epoch)
            rec, kl_units = model.elbo_terms(x)
            loss = rec.mean() + beta * kl_term(kl_units, config.free_bits)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
            self.opt.step()
            total += loss.detach()
            kl_total += kl_units.detach().sum(1).mean()
            self.step += 1
        train_loss = float(total) / self.steps_per_epoch
        train_kl = float(kl_total) / self.steps_per_epoch
        diverged = divergence(epoch, config.lr, train_loss)
        if diverged:
            raise TrainingDiverged(diverged)
        val_loss = neg_elbo(model, self.val, seed=config.seed)
        diverged = divergence(epoch, config.lr, train_loss, val_loss)
        if diverged:
            raise TrainingDiverged(diverged)
        record = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_neg_elbo": val_loss,
            "train_kl": train_kl,
            "beta": beta,
            "seconds": time.perf_counter() - te,
        }
        result = self.result
        result.history.append(record)
        if val_loss < result.best_val:
            result.best_val, result.best_epoch = val_loss, epoch
            self.best_state = copy.deepcopy(model.state_dict())
        self._rng = torch.get_rng_state()
        if self._cuda_rng is not None:
            self._cuda_rng = torch.cuda.get_rng_state(self.device)
        self._seconds += time.perf_counter() - t0
        if self.callback is not None:
            self.callback(epoch, record)
        if not self.awake and train_kl >= EMPTY_KL:
            self.awake = epoch
        if self._stop_early(epoch):
            result.stopped_early = True
            self.done = True
        elif epoch >= config.epochs:
            self.done = True
        return record

    @property
    def asleep(self) -> bool:
        """Whether the model has not yet used its latent code (no epoch with a training KL of
        ``EMPTY_KL``) and is still within the ``WAKE_GRACE`` patiences it is given to start: a flat
        validation loss then means it has not started, not that it has converged."""
        return is_asleep(self.awake, self.epoch, self.config.patience)

    def _stop_early(self, epoch: int) -> bool:
        """Whether early stopping ends the training after ``epoch``.

        Patience counts only once the model uses its latent code (training KL of at least ``EMPTY_KL``
        nats per sample), from the later of its best epoch and that epoch: a VAE often starts at the
        solution that ignores the latents (for Gaussian data, decoding the feature means), where the
        validation loss is flat, and plain patience would stop it there, having learned nothing. A model
        that never uses its latents is stopped as before once ``WAKE_GRACE`` patiences have passed.
        """
        return stop_early(epoch, self.config.patience, self.awake, self.result.best_epoch)

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Everything needed to go on later exactly where this training is: ``(tensors, meta)`` (weights,
        best weights, optimizer moments, noise and shuffling streams; counters and the history)."""
        tensors = {f"model.{k}": v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        tensors |= {f"best.{k}": v.detach().cpu().clone() for k, v in self.best_state.items()}
        for i, st in self.opt.state_dict()["state"].items():
            tensors |= {f"opt.{i}.{k}": v.detach().cpu().clone() for k, v in st.items() if torch.is_tensor(v)}
        tensors["rng"], tensors["gen"] = self._rng.clone(), self.gen.get_state()
        if self._cuda_rng is not None:
            tensors["cuda_rng"] = self._cuda_rng.cpu().clone()
        r = self.result
        meta = {
            "epoch": self.epoch,
            "step": self.step,
            "done": self.done,
            "awake": self.awake,
            "seconds": self._seconds,
            "history": r.history,
            "best_epoch": r.best_epoch,
            "best_val": r.best_val,
            "stopped_early": r.stopped_early,
        }
        return tensors, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Go on from a ``state()`` of the same configuration."""

        def part(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

        self.model.load_state_dict(part("model."))
        self.best_state = {k: v.to(self.device) for k, v in part("best.").items()}
        sd = self.opt.state_dict()
        moments: dict[int, dict[str, torch.Tensor]] = {}
        for k, v in part("opt.").items():
            i, name = k.split(".", 1)
            moments.setdefault(int(i), {})[name] = v.to(self.device) if name != "step" else v
        sd["state"] = moments
        self.opt.load_state_dict(sd)
        self._rng = tensors["rng"].clone()
        self.gen.set_state(tensors["gen"].clone())
        if self._cuda_rng is not None and "cuda_rng" in tensors:
            self._cuda_rng = tensors["cuda_rng"].clone()
        self.epoch, self.step, self.done = int(meta["epoch"]), int(meta["step"]), bool(meta["done"])
        self.awake = int(meta.get("awake", 0))
        self._seconds = float(meta["seconds"])
        self.result = FitResult(
            history=list(meta["history"]),
            best_epoch=int(meta["best_epoch"]),
            best_val=float(meta["best_val"]) if meta["best_val"] is not None else math.inf,
            stopped_early=bool(meta["stopped_early"]),
        )

    def finish(self) -> FitResult:
        """Restore the best validation weights, put the model in evaluation mode, return the record."""
        self.done = True
        self.model.load_state_dict(self.best_state)
        self.model.eval()
        self.result.seconds = self._seconds
        return self.result


def fit(
    model: VAE,
    train: torch.Tensor,
    val: torch.Tensor,
    config: TrainConfig | None = None,
    *,
    callback: EpochCallback | None = None,
) -> FitResult:
    """Train ``model`` on ``train`` (N, D), early-stopping on validation -ELBO of ``val`` (M, D).

    ``callback(epoch, record)`` is called after every epoch with the epoch's record (``train_loss``,
    ``val_neg_elbo``, ``beta``, ``seconds``); it may raise to stop training (e.g. Optuna pruning).
    Raises ``TrainingDiverged`` when the loss becomes NaN or infinite. On return the model holds the
    weights of its best validation epoch.
    """
    trainer = Trainer(model, train, val, config, callback=callback)
    while not trainer.done:
        trainer.run_epoch()
    return trainer.finish()
