"""What a sweep trains: ``SweepConfig`` (the grid, the architecture template and the training recipe).

A configuration says *what* is trained, never *how* the grid is run: the mode (settle, per-size,
nested), the rule and the scale-out options live in the resolved ``zdim.sweeps.plan.SweepPlan``. Here too are
the pieces every way of running reads from it: the size-``dim`` model of a sweep (``model_config``,
``build_sweep_model``) and the held-out data its trials are evaluated on (``eval_data``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from ..answer.rules import DEFAULT_REL_TOL
from ..data.dataset import Data
from ..errors import ConfigError
from ..grid import DimSpec
from ..models.custom import DataInfo, build_model, normalize_spec
from ..models.vae import VAE, VAEConfig
from ..training.trainer import TrainConfig

DEFAULT_HIDDEN = (512, 256)
DEFAULT_ARCH = "mlp"


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
    model : str, class or None
        Your own model (see ``zdim.models.custom``): a class, ``"path/to/file.py:ClassName"`` or
        ``"package.module:ClassName"``; None for zdim's ``VAE``. Stored as its spec string (a class as
        ``module:qualname``, a file with its absolute path); ``hidden`` and ``arch`` do not apply to it.
    """

    dims: tuple[int, ...]
    seeds: int = 1
    hidden: tuple[int, ...] = DEFAULT_HIDDEN
    arch: str = DEFAULT_ARCH
    train: TrainConfig = field(default_factory=TrainConfig)
    k: int = 100
    rel_tol: float = DEFAULT_REL_TOL
    model: str | type | None = None
    eval_samples: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", normalize_spec(self.model))
        object.__setattr__(self, "dims", tuple(sorted(set(DimSpec.of(self.dims).sizes(10**9)))))
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise ConfigError(f"seeds must be an integer >= 1, got {self.seeds!r}: fix --seeds")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ConfigError(f"k (importance samples) must be an integer >= 1, got {self.k!r}: fix --k")
        n_eval = self.eval_samples
        if n_eval is not None and (not isinstance(n_eval, int) or isinstance(n_eval, bool) or n_eval < 1):
            raise ConfigError(
                f"eval_samples must be an integer >= 1, got {self.eval_samples!r}: fix --eval-samples "
                "(or leave it out to evaluate on the whole test split)"
            )
        if not (math.isfinite(self.rel_tol) and self.rel_tol >= 0):
            raise ConfigError(f"tolerance must be a finite number >= 0, got {self.rel_tol!r}: fix --tolerance")

    def grid(self) -> list[tuple[int, int]]:
        """Every ``(size, seed)`` point, by size then seed."""
        base = self.train.seed
        return [(d, base + s) for d in self.dims for s in range(self.seeds)]

    def with_dims(self, dims: tuple[int, ...] | list[int]) -> SweepConfig:
        return replace(self, dims=tuple(dims))

    def to_dict(self) -> dict[str, Any]:
        d = {
            "dims": list(self.dims),
            "seeds": self.seeds,
            "hidden": list(self.hidden),
            "arch": self.arch,
            "train": self.train.to_dict(),
            "k": self.k,
            "rel_tol": self.rel_tol,
        }
        if self.model is not None:
            d["model"] = self.model
        if self.eval_samples is not None:
            d["eval_samples"] = self.eval_samples
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SweepConfig:
        """The configuration of ``to_dict`` (``run.json``'s ``sweep``; its ``mode`` is the plan's)."""
        return cls(
            dims=tuple(d["dims"]),
            seeds=int(d["seeds"]),
            hidden=tuple(d["hidden"]),
            arch=str(d["arch"]),
            train=TrainConfig.from_dict(d["train"]),
            k=int(d["k"]),
            rel_tol=float(d["rel_tol"]),
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


__all__ = ["SweepConfig", "eval_data", "model_config", "build_sweep_model", "DEFAULT_HIDDEN", "DEFAULT_ARCH"]
