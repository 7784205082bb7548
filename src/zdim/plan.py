"""What a sweep will do, validated before anything is done: ``SweepConfig`` and ``SweepPlan``.

``make_plan`` checks every option against the data (sizes, architecture, device, rule, tolerance,
workers, the combinations nested sweeps refuse) and runs the model once on a batch of the data, so a
bad option or a model that cannot take this data fails in a second with one line, before the run
directory is created, replaced or touched. Code that receives a ``SweepPlan`` trusts it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from ._version import __version__
from .custom import DataInfo, build_model, check_model_class, check_protocol, normalize_spec
from .data import Data
from .errors import ConfigError, RunDirError
from .models import VAE, NestedVAE, VAEConfig
from .recommend import DEFAULT_REL_TOL, DEFAULT_RULE, RULES
from .train import TrainConfig, resolve_device

MODES = ("per-size", "settle", "nested")  # ways to execute a plan (zdim.executors)
SETTLE_SEEDS = 3  # seeds per size when settle mode is chosen and no seed count is given
DEFAULT_STUDY = "zdim-sweep"


@dataclass(frozen=True)
class SweepConfig:
    """What a sweep trains: the grid, the architecture template and the training recipe.

    Attributes
    ----------
    dims : tuple of int
        Latent sizes to try.
    seeds : int
        Independent trainings per size (seeds ``seed, seed+1, ...``).
    hidden, arch : see ``VAEConfig``.
    train : TrainConfig
        Training recipe shared by every trial (its ``seed`` is the base seed).
    k : int
        Importance samples for the held-out NLL bound.
    eval_samples : int or None
        Evaluate every trial on this many test samples (one fixed random subset, the same for every
        trial: paired) instead of the whole test split; the recommended size is then evaluated on the
        whole test split too (``Recommendation.full_test``). None: the whole test split.
    rel_tol : float
        Relative NLL tolerance of the recommendation rule.
    nested : bool
        Train one nested VAE per seed with the largest size and cut every size's model out of it
        (see ``zdim.nested``), instead of one VAE per (size, seed).
    model : str, class or None
        Your own model (see ``zdim.custom``): a class, ``"path/to/file.py:ClassName"`` or
        ``"package.module:ClassName"``; None for zdim's ``VAE``. Stored as its spec string (a class as
        ``module:qualname``, a file with its absolute path); ``hidden`` and ``arch`` do not apply to it.
    """

    dims: tuple[int, ...]
    seeds: int = 1
    hidden: tuple[int, ...] = (512, 256)
    arch: str = "mlp"
    train: TrainConfig = field(default_factory=TrainConfig)
    k: int = 100
    rel_tol: float = DEFAULT_REL_TOL
    nested: bool = False
    model: str | type | None = None
    eval_samples: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", normalize_spec(self.model))
        if not self.dims:
            raise ConfigError("no latent sizes given: pass e.g. --dims 2,4,8 or --dims 1-16")
        bad = [d for d in self.dims if int(d) != d or d < 1]
        if bad:
            raise ConfigError(f"latent size {bad[0]!r} is not a positive integer: fix --dims")
        object.__setattr__(self, "dims", tuple(sorted({int(d) for d in self.dims})))
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if self.seeds < 1:
            raise ConfigError(f"seeds must be >= 1, got {self.seeds}: fix --seeds")
        if self.k < 1:
            raise ConfigError(f"k (importance samples) must be >= 1, got {self.k}: fix --k")
        n_eval = self.eval_samples
        if n_eval is not None and (not isinstance(n_eval, int) or isinstance(n_eval, bool) or n_eval < 1):
            raise ConfigError(
                f"eval_samples must be an integer >= 1, got {self.eval_samples!r}: fix --eval-samples "
                "(or leave it out to evaluate on the whole test split)"
            )
        if not (math.isfinite(self.rel_tol) and self.rel_tol >= 0):
            raise ConfigError(f"tolerance must be a finite number >= 0, got {self.rel_tol!r}: fix --tolerance")

    @property
    def mode(self) -> str:
        return "nested" if self.nested else "per-size"

    def grid(self) -> list[tuple[int, int]]:
        """Every ``(size, seed)`` point, by size then seed."""
        base = self.train.seed
        return [(d, base + s) for d in self.dims for s in range(self.seeds)]

    def to_dict(self) -> dict[str, Any]:
        d = {
            "dims": list(self.dims),
            "seeds": self.seeds,
            "hidden": list(self.hidden),
            "arch": self.arch,
            "train": self.train.to_dict(),
            "k": self.k,
            "rel_tol": self.rel_tol,
            "nested": self.nested,
        }
        if self.model is not None:
            d["model"] = self.model
        if self.eval_samples is not None:
            d["eval_samples"] = self.eval_samples
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SweepConfig:
        return cls(
            dims=tuple(d["dims"]),
            seeds=int(d["seeds"]),
            hidden=tuple(d["hidden"]),
            arch=str(d["arch"]),
            train=TrainConfig.from_dict(d["train"]),
            k=int(d["k"]),
            rel_tol=float(d["rel_tol"]),
            nested=bool(d.get("nested", False)),
            model=d.get("model"),
            eval_samples=d.get("eval_samples"),
        )


def eval_data(data: Data, config: SweepConfig) -> Data:
    """The data whose test split every trial is evaluated on: ``data`` itself, or with its test split cut
    to ``config.eval_samples`` samples, one random subset fixed by the base seed (the same for every
    trial, so per-sample values stay paired)."""
    n = data.test.shape[0]
    if config.eval_samples is None or config.eval_samples >= n:
        return data
    gen = torch.Generator().manual_seed(config.train.seed)
    idx = torch.randperm(n, generator=gen)[: config.eval_samples].sort().values
    y = data.y_test[idx.numpy()] if data.y_test is not None else None
    return replace(data, test=data.test[idx], y_test=y)


@dataclass(frozen=True)
class SweepPlan:
    """A validated sweep: the configuration and how it is run (see ``make_plan``)."""

    config: SweepConfig
    rule: str = DEFAULT_RULE
    refine: bool = False
    extend: bool = True
    settle: bool = False
    time_budget: float | None = None
    prune: bool = False
    workers: int = 1
    storage: str | None = None
    study_name: str = DEFAULT_STUDY

    @property
    def mode(self) -> str:
        """How the plan is executed: ``settle``, ``nested`` or ``per-size`` (see ``zdim.executors``)."""
        return "settle" if self.settle else self.config.mode


def resolve_mode(
    mode: str | None,
    *,
    workers: int = 1,
    storage: str | None = None,
    prune: bool = False,
    nested: bool = False,
    time_budget: float | None = None,
) -> str:
    """The mode a sweep runs in. ``mode`` when given (``ConfigError`` if unknown); else ``nested`` for a
    nested sweep, ``per-size`` when an option needs one Optuna trial per point (``workers > 1``,
    ``storage``, ``prune``) and no ``time_budget`` is asked for, and ``settle`` otherwise: the default of
    a single-process sweep."""
    if mode is not None:
        if mode not in MODES:
            raise ConfigError(f"mode {mode!r} is not one of {', '.join(MODES)}: fix --mode")
        return mode
    if nested:
        return "nested"
    if time_budget is None and (workers != 1 or storage is not None or prune):
        return "per-size"
    return "settle"


SETTLE_EPOCHS = 500  # the epoch cap of settle mode when none is given: it stops by itself
PER_SIZE_EPOCHS = 100


def default_epochs(mode: str) -> int:
    """The epoch cap when none is given: ``SETTLE_EPOCHS`` in settle mode (a cap it rarely reaches: it
    stops once the answer has settled, and members early-stop), ``PER_SIZE_EPOCHS`` otherwise."""
    return SETTLE_EPOCHS if mode == "settle" else PER_SIZE_EPOCHS


def default_seeds(mode: str) -> int:
    """Seeds per size when none are given: ``SETTLE_SEEDS`` in settle mode (the answer's uncertainty
    needs several), 1 otherwise."""
    return SETTLE_SEEDS if mode == "settle" else 1


def default_dims(n_features: int, cap: int = 64) -> tuple[int, ...]:
    """Powers of two up to ``min(n_features, cap)``, plus that bound itself."""
    top = min(n_features, cap)
    dims = [2**i for i in range(0, int(math.log2(top)) + 1)]
    return tuple(sorted(set(dims + [top])))


def check_dims(dims: tuple[int, ...] | list[int], data: Data) -> None:
    too_big = [d for d in dims if d > data.n_features]
    if too_big:
        raise ConfigError(
            f"latent size {too_big[0]} exceeds the {data.n_features} features of {data.name!r}: "
            f"choose sizes <= {data.n_features} in --dims"
        )


def model_config(data: Data, dim: int, cfg: SweepConfig, hidden: tuple[int, ...] | None = None) -> VAEConfig:
    """The architecture of the size-``dim`` model of a sweep (``hidden`` overrides the widths)."""
    return VAEConfig(
        input_dim=data.n_features,
        latent_dim=dim,
        likelihood=data.likelihood,
        hidden=cfg.hidden if hidden is None else hidden,
        arch=cfg.arch,
        image_shape=data.sample_shape if data.is_image else None,
    )


def build_sweep_model(data: Data, dim: int, cfg: SweepConfig, hidden: tuple[int, ...] | None = None) -> VAE:
    """The untrained size-``dim`` model of a sweep: zdim's ``VAE`` or the user's (``cfg.model``)."""
    return build_model(model_config(data, dim, cfg, hidden), DataInfo.from_data(data), cfg.model)


def check_model(data: Data, cfg: SweepConfig) -> None:
    """Build the smallest and largest model and run them on two training samples: a model that cannot
    take this data (architecture, shapes, NaN at initialization) fails here with one line. A user's
    model is also checked against the protocol (``zdim.custom.check_protocol``)."""
    check_model_class(cfg.model, cfg.nested)
    sizes = (min(cfg.dims), max(cfg.dims))
    x = data.train[:2].float()
    for dim in sizes:
        vcfg = model_config(data, dim, cfg)  # ConfigError: e.g. conv on a table
        torch.manual_seed(0)
        model: VAE = NestedVAE(vcfg, cfg.dims) if cfg.nested and dim == sizes[1] else build_sweep_model(data, dim, cfg)
        check_protocol(model, x)
        try:
            with torch.no_grad():
                rec, kl = model.elbo_terms(x)
        except Exception as e:  # noqa: BLE001 - any failure of the model on the data is the user's setting
            if cfg.model is not None:
                raise ConfigError(
                    f"--model {cfg.model} at latent size {dim} fails on {data.name!r} of shape "
                    f"{tuple(data.sample_shape)} ({type(e).__name__}: {e}): fix the model"
                ) from None
            raise ConfigError(
                f"the {cfg.arch} model of size {dim} cannot take {data.name!r} of shape "
                f"{tuple(data.sample_shape)} ({type(e).__name__}: {e}): fix --arch or --hidden"
            ) from None
        if not (torch.isfinite(rec).all() and torch.isfinite(kl).all()):
            raise ConfigError(f"the model of size {dim} gives a non-finite loss at initialization: check the data")


def check_same_model(old_info: dict[str, Any], info: dict[str, Any], out: Any) -> None:
    """``RunDirError`` when a resumed run names another model than the run directory was made with."""
    old, new = old_info.get("sweep", {}).get("model"), info["sweep"].get("model")
    if old != new:
        raise RunDirError(
            f"{out} was made with model {old or 'zdim VAE'}, not {new or 'zdim VAE'}: resume with the same "
            "--model, or use --overwrite"
        )


def make_plan(
    data: Data,
    config: SweepConfig,
    *,
    rule: str = DEFAULT_RULE,
    refine: bool = False,
    extend: bool = True,
    settle: bool = False,
    time_budget: float | None = None,
    prune: bool = False,
    workers: int = 1,
    storage: str | None = None,
    study_name: str | None = None,
    has_out: bool = True,
) -> SweepPlan:
    """Validate every option of a sweep against ``data``; raise ``ConfigError`` (one line) on the first
    bad one. Writes nothing."""
    check_dims(config.dims, data)
    if rule not in RULES:
        raise ConfigError(f"unknown rule {rule!r}: choose one of {', '.join(RULES)} (--rule)")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be an integer >= 1, got {workers!r}: fix --workers")
    if workers > 1 and not has_out and storage is None:
        raise ConfigError("--workers > 1 needs a run directory (--out) or --storage to share the study")
    if config.nested:
        for on, flag, why in (
            (refine, "--refine", "its sizes are fixed when the nested model is trained"),
            (prune, "--prune", "one training serves every size"),
            (workers > 1, "--workers > 1", "one training serves every size; use --seeds to spread seeds"),
        ):
            if on:
                raise ConfigError(f"{flag} does not combine with --nested ({why}): drop {flag} or --nested")
    if time_budget is not None and not (math.isfinite(time_budget) and time_budget > 0):
        raise ConfigError(f"time budget must be a number of seconds > 0, got {time_budget!r}: fix --time-budget")
    if time_budget is not None and not settle:
        raise ConfigError(
            "--time-budget caps settle mode only: use --mode settle (the default without --workers, "
            "--storage, --prune or --nested), or drop --time-budget"
        )
    if settle:
        for on, flag, why in (
            (config.nested, "--nested", "settle mode trains one model per size"),
            (prune, "--prune", "settle mode stops members itself"),
            (workers > 1, "--workers > 1", "settle mode trains every member in one process"),
            (storage is not None, "--storage", "settle mode trains every member in one process: nothing to share"),
        ):
            if on:
                raise ConfigError(f"{flag} does not combine with --mode settle ({why}): drop {flag}")
    if config.train.binarize and not data.extra.get("binarized"):
        raise ConfigError(
            "training with binarize needs data loaded with binarize=True (fixed binary validation and test "
            "splits): pass --binarize (zdim.sweep(..., binarize=True)), which does both"
        )
    resolve_device(config.train.device)
    check_model(data, config)
    return SweepPlan(
        config=config,
        rule=rule,
        refine=refine,
        extend=extend and not config.nested,  # a nested model serves the sizes it was trained for only
        settle=settle,
        time_budget=time_budget,
        prune=prune,
        workers=workers,
        storage=storage,
        study_name=study_name or DEFAULT_STUDY,
    )


def make_run_info(
    data: Data, config: SweepConfig, command: str | None, loader: dict[str, Any] | None
) -> dict[str, Any]:
    """The content of ``run.json``: what was asked, and how to reload the data (for ``zdim tune``)."""
    info = {
        "zdim_version": __version__,
        "torch_version": torch.__version__,
        "command": command,
        "data": data.summary(),
        "sweep": config.to_dict(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if loader:
        info["loader"] = dict(loader)
    return info


__all__ = [
    "SweepConfig",
    "SweepPlan",
    "make_plan",
    "default_dims",
    "check_dims",
    "model_config",
    "eval_data",
    "resolve_mode",
    "default_seeds",
    "default_epochs",
    "build_sweep_model",
    "check_same_model",
    "make_run_info",
]
