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


CONVERGENCE_WINDOW = 10  # epochs (the patience when early stopping is on)
CONVERGENCE_TOL = 1e-3  # relative improvement of the best validation -ELBO over the window


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
    config = config or TrainConfig()
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    model.to(device)
    train = train.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    n = train.shape[0]
    bs = min(config.batch_size, n)
    steps_per_epoch = max(1, n // bs)  # drop the ragged last batch: every step sees bs samples
    result = FitResult()
    best_state = copy.deepcopy(model.state_dict())
    step = 0
    t0 = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        model.train()
        te = time.perf_counter()
        perm = torch.randperm(n, generator=gen).to(device)
        total = torch.zeros((), device=device)
        beta = config.beta
        for i in range(steps_per_epoch):
            x = train[perm[i * bs : (i + 1) * bs]]
            beta = beta_at(config, step, steps_per_epoch)
            rec, kl_units = model.elbo_terms(x)
            loss = rec.mean() + beta * kl_term(kl_units, config.free_bits)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
            opt.step()
            total += loss.detach()
            step += 1
        train_loss = float(total) / steps_per_epoch
        if not math.isfinite(train_loss):
            raise TrainingDiverged(
                f"training diverged at epoch {epoch}: loss is {train_loss}; "
                f"try a smaller --lr (now {config.lr}) or a KL warm-up (--warmup)"
            )
        val_loss = neg_elbo(model, val, seed=config.seed)
        if not math.isfinite(val_loss):
            raise TrainingDiverged(
                f"training diverged at epoch {epoch}: validation -ELBO is {val_loss}; "
                f"try a smaller --lr (now {config.lr})"
            )
        record = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_neg_elbo": val_loss,
            "beta": beta,
            "seconds": time.perf_counter() - te,
        }
        result.history.append(record)
        if val_loss < result.best_val:
            result.best_val, result.best_epoch = val_loss, epoch
            best_state = copy.deepcopy(model.state_dict())
        if callback is not None:
            callback(epoch, record)
        if config.patience and epoch - result.best_epoch >= config.patience:
            result.stopped_early = True
            break
    model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.perf_counter() - t0
    return result
