"""The recipe of one training: ``TrainConfig`` (the optimizer, the schedules, early stopping, the noise-scale
levers, the device), each field checked by its option row where it has one (``zdim.options.check_field``)
or by ``OWN_BOUNDS``; and what follows from a recipe alone: the schedules per step (``beta_at``, ``lr_at``,
``free_bits_at``), the passes of an epoch (``passes``: at least ``EPOCH_STEPS`` optimizer steps, so a small
table gets the steps a large one gets), the noise-scale hold in steps, and the device
(``resolve_device``). ``zdim.training.trainer`` trains by it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch

from ..errors import ConfigError
from ..likelihoods import NOISE_MODES, REGISTRY
from ..likelihoods import find as find_likelihood
from ..option_table import FLOAT_0
from ..options import Bounds, check_field
from .epoch import MAX_LR_DROPS as MAX_LR_DROPS  # (named in TrainConfig's docstring)
from .levers import SIGMA_FLOOR, SIGMA_MAX

AUTO = "auto"
NOISE = NOISE_MODES  # TrainConfig.noise: how a Gaussian decoder's noise scale is set
HOLD_PASSES = 5  # a noise-scale hold lasts at most this many passes over the training split
EPOCH_STEPS = 100  # TrainConfig.epoch_steps by default: the fewest optimizer steps of an epoch
# The bounds of the fields no option row sets; every other field is checked by its row's (zdim.option_table:
# --epochs, --lr, --patience, ...), so no bound is written twice. The levers (sigma_*) and the device are
# checked on their own (TrainConfig.__post_init__).
EPOCHS_0 = Bounds("a float", 0, finite=True)
OWN_BOUNDS = {
    "weight_decay": FLOAT_0,
    "free_bits_epochs": EPOCHS_0,
    "lr_warmup_epochs": EPOCHS_0,
    "lr_factor": Bounds("a float", 0, 1, strict=True),
}
# The wake-up levers a recipe leaves at "auto" (TrainConfig.resolve): off, and their default per likelihood,
# which its family owns (``Likelihood.wakeup``). Gaussian (issues 22 and 36, benchmarks/validate/reach.py): a
# model with the linear start gets the noise scale 0.1 from the start, held for 1 epoch; one without, none.
LEVERS_OFF: dict[str, float | str] = {"sigma_init": 1.0, "sigma_warmup_epochs": 0.0, "sigma_after": 0}
WAKEUP_DEFAULTS: dict[str, dict[str, float | str]] = {n: dict(f.wakeup) for n, f in REGISTRY.items() if f.wakeup}


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
    sigma_init : float, "pca" or "auto"
        Gaussian decoder only: the noise scale (std per standardized feature) the ``Trainer`` sets,
        before the first step or after epoch ``sigma_after``. A number: that value for every feature
        (1.0, the std of a standardized feature, is what the model is built with: off); ``"pca"``: per
        feature, the root mean squared residual of the training split reconstructed by its first
        ``latent_dim`` principal components (at least ``PCA_FLOOR``); ``"auto"`` (default):
        ``WAKEUP_DEFAULTS`` for the model's likelihood (see ``resolve``).
    sigma_warmup_epochs : float or "auto"
        Gaussian decoder only: for this many epochs the noise scale is held at ``sigma_init`` (not
        trained), then learned; at the release it is set once to the root mean squared residual of the
        training split reconstructed by the model (the noise scale that maximizes the reconstruction
        term), so that learning goes on from there (0: none; ``"auto"``, the default: as ``sigma_init``).
    sigma_after : int or "auto"
        When ``sigma_init`` and the hold apply: 0, before the first step, to every model; N >= 1, after
        epoch N and only to a model still asleep then (no epoch with a training KL of ``EMPTY_KL``: it
        decodes the feature means), held from there, so that a model that woke by itself trains as it
        would without the levers; ``"auto"`` (default): as ``sigma_init``.
    free_bits_epochs : float
        Apply ``free_bits`` only during the first this many epochs (0: throughout).
    lr_warmup_epochs : float
        Length of a linear learning-rate warm-up from 0 to ``lr``, in epochs (0: none).
    lr_patience : int
        Lower the learning rate (times ``lr_factor``, at most ``MAX_LR_DROPS`` times) after this many
        epochs without a new best validation -ELBO (0: never). Early stopping then waits for a first
        lowering: a training has converged only once it stopped improving at a lowered rate.
    lr_factor : float
        What a plateau multiplies the learning rate by, in (0, 1).
    epoch_steps : int or None
        The fewest optimizer steps of one epoch: a training split of fewer batches is passed over
        several times in one epoch (each time in a new order), so that every window counted in epochs
        (patience, the plateaus, settle mode's) holds at least this many steps times its length: a small
        table gets the steps a large one gets. None (default): ``EPOCH_STEPS``.
    noise : {"calibrated", "learned"}
        Gaussian decoder only: ``calibrated`` (default) sets the noise scale in closed form, per feature,
        to the one that maximizes the likelihood given the decoded means: on each batch for its step, on
        the training split after each epoch (the scale the model is validated, evaluated and saved with;
        Rybkin et al. 2021); ``learned`` trains it as a parameter. A model that keeps its noise scale its
        own way (nested, or a user's model with its own likelihood) learns it.

    The early-stopping patience and settle mode's convergence wait for the warm-ups: neither counts an
    epoch before the longest of ``warmup_epochs``, ``sigma_warmup_epochs``, ``free_bits_epochs`` (with
    free bits) and ``lr_warmup_epochs`` has ended (``Trainer.warming``), and the best weights are those
    of the best epoch from that one on (the objective is not the ELBO before it).
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
    sigma_init: float | str = AUTO
    sigma_warmup_epochs: float | str = AUTO
    sigma_after: int | str = AUTO
    free_bits_epochs: float = 0.0
    lr_warmup_epochs: float = 0.0
    lr_patience: int = 5
    lr_factor: float = 0.3
    epoch_steps: int | None = None
    noise: str = "calibrated"

    def __post_init__(self) -> None:
        for f in fields(self):  # the bounds of the option rows (--epochs, --lr, ...), else the field's own
            value, own = getattr(self, f.name), OWN_BOUNDS.get(f.name)
            check_field(f.name, value, own, fix=f"TrainConfig({f.name}=...)", optional=f.default is None)
        if not _epochs_ok(self.sigma_warmup_epochs, auto=True):
            hold = self.sigma_warmup_epochs
            raise ConfigError(f"sigma_warmup_epochs must be 'auto' or a float >= 0, got {hold!r}: fix --sigma-warmup")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}: fix --device")
        resolve_device(self.device)  # CUDA asked for where there is none: fail now, not in every trial
        if not _sigma_init_ok(self.sigma_init):
            raise ConfigError(
                f"sigma_init must be 'auto', 'pca' or a number in [{SIGMA_FLOOR:g}, {SIGMA_MAX:g}], got "
                f"{self.sigma_init!r}: fix --sigma-init"
            )
        after = self.sigma_after
        if not (after == AUTO or (isinstance(after, int) and not isinstance(after, bool) and after >= 0)):
            raise ConfigError(f"sigma_after must be 'auto' or an integer >= 0, got {after!r}: fix --sigma-after")
        for name in ("sigma_init", "sigma_warmup_epochs"):
            value = getattr(self, name)
            if not isinstance(value, str):
                object.__setattr__(self, name, float(value))

    @property
    def min_epoch_steps(self) -> int:
        """``epoch_steps``, or ``EPOCH_STEPS`` where it is None."""
        return EPOCH_STEPS if self.epoch_steps is None else int(self.epoch_steps)

    def resolve(self, likelihood: str | None, linear: bool = True) -> TrainConfig:
        """This recipe with every lever left at ``"auto"`` set for ``likelihood``: ``WAKEUP_DEFAULTS``
        for it (Gaussian data) where the model starts at its linear model (``linear``: the hold kicks its
        nonlinear path off that start, benchmarks/validate/reach.py), else the lever off (on a model
        started at random the hold only costs: its decoder fits the rows under a small noise scale, then
        has to unlearn it). An explicit value is kept."""
        auto = {name: getattr(self, name) == AUTO for name in LEVERS_OFF}
        if not any(auto.values()):
            return self
        family = find_likelihood(likelihood)
        values = family.wakeup if family is not None and linear else {}
        chosen: dict[str, Any] = {n: values.get(n, LEVERS_OFF[n]) for n, a in auto.items() if a}
        return replace(self, **chosen)

    def levers(self, likelihood: str | None, linear: bool = False) -> list[str]:
        """The wake-up levers beyond the KL warm-up that act on a model of ``likelihood`` trained with
        this recipe (resolved for it): the names of the fields. The noise-scale levers (and a calibrated
        noise scale) act only on a Gaussian decoder. ``zdim.training.stacked`` trains none of them and
        leaves such a member to ``Trainer``."""
        c = self.resolve(likelihood, linear)
        acting = []
        family = find_likelihood(likelihood)
        noisy = family is not None and family.noise is not None
        if noisy and (c.sigma_init != 1.0 or lever_value(c.sigma_warmup_epochs) > 0):
            acting += ["sigma_init", "sigma_warmup_epochs"]
        if noisy and c.noise == "calibrated":
            acting.append("noise")
        if c.free_bits > 0 and c.free_bits_epochs > 0:
            acting.append("free_bits_epochs")
        if c.lr_warmup_epochs > 0:
            acting.append("lr_warmup_epochs")
        return acting

    @property
    def warm_epochs(self) -> int:
        """Epochs until the last warm-up from the start has ended (0: none): the stopping rules wait for
        it (the hold of a model still asleep after epoch ``sigma_after`` ends ``sigma_warmup_epochs``
        later: ``Trainer.warming``). Of a resolved recipe (``resolve``): ``ValueError`` while a lever
        is ``"auto"``."""
        hold = lever_value(self.sigma_warmup_epochs)
        spans = [self.warmup_epochs, hold if self.sigma_after == 0 else 0.0, self.lr_warmup_epochs]
        if self.free_bits > 0:
            spans.append(self.free_bits_epochs)
        return math.ceil(max(spans))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def _epochs_ok(v: object, auto: bool = False) -> bool:
    if isinstance(v, str):
        return auto and v == AUTO
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


def lever_value(v: float | str) -> float:
    """A lever's value; ``ValueError`` for one still ``"auto"`` (``TrainConfig.resolve`` sets it)."""
    if isinstance(v, str):
        raise ValueError(f"lever value {v!r} is not resolved: call TrainConfig.resolve(likelihood) first")
    return float(v)


def _sigma_init_ok(v: object) -> bool:
    if isinstance(v, str):
        return v in ("pca", AUTO)
    return (
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and SIGMA_FLOOR <= v <= SIGMA_MAX
    )


def beta_at(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """KL weight at optimizer step ``step`` under the linear warm-up."""
    if config.warmup_epochs <= 0:
        return config.beta
    ramp = config.warmup_epochs * steps_per_epoch
    return config.beta * min(1.0, (step + 1) / ramp)


def lr_at(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Learning rate at optimizer step ``step`` under the linear learning-rate warm-up."""
    if config.lr_warmup_epochs <= 0:
        return config.lr
    return config.lr * min(1.0, (step + 1) / (config.lr_warmup_epochs * steps_per_epoch))


def free_bits_at(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Free bits per unit at optimizer step ``step`` (0 once ``free_bits_epochs`` have passed)."""
    if config.free_bits_epochs > 0 and step >= config.free_bits_epochs * steps_per_epoch:
        return 0.0
    return config.free_bits


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


def passes(n: int, batch_size: int, config: TrainConfig) -> tuple[int, int]:
    """``(steps per pass, passes per epoch)`` of a training split of ``n`` rows in batches of ``batch_size``:
    the ragged last batch is dropped (every step sees ``batch_size`` rows), and a small split is passed over
    as many times as an epoch of at least ``config.min_epoch_steps`` steps takes."""
    per_pass = max(1, n // batch_size)
    return per_pass, max(1, math.ceil(config.min_epoch_steps / per_pass))


def hold_steps(epochs: float, steps_per_epoch: int, per_pass: int) -> int:
    """The steps a noise-scale hold of ``epochs`` epochs lasts: at most ``HOLD_PASSES`` passes over the
    training split (on a small table, where an epoch is many passes, a longer hold lets the decoder memorize
    its rows under a small noise scale)."""
    return min(math.ceil(epochs * steps_per_epoch), HOLD_PASSES * per_pass)


def held_steps(config: TrainConfig, steps_per_epoch: int, per_pass: int) -> int:
    """The step at which a hold from the start ends (``sigma_after`` 0), -1 where there is none."""
    hold = lever_value(config.sigma_warmup_epochs) if config.sigma_after == 0 else 0.0
    return hold_steps(hold, steps_per_epoch, per_pass) if hold > 0 else -1


__all__ = [
    "AUTO",
    "EPOCH_STEPS",
    "HOLD_PASSES",
    "LEVERS_OFF",
    "NOISE",
    "OWN_BOUNDS",
    "TrainConfig",
    "WAKEUP_DEFAULTS",
    "beta_at",
    "free_bits_at",
    "held_steps",
    "hold_steps",
    "lever_value",
    "lr_at",
    "passes",
    "resolve_device",
]
