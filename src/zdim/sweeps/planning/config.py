"""What a sweep trains: ``SweepConfig`` (the grid, the architecture template and the training recipe).

A configuration says *what* is trained, never *how* the grid is run: the mode (settle, per-size,
nested), the rule and the scale-out options live in the resolved ``zdim.sweeps.planning.plan.SweepPlan``. Here too are
the pieces every way of running reads from it: the size-``dim`` model of a sweep (``model_config``,
``build_sweep_model``) and the held-out data its trials are evaluated on (``eval_data``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from ...answer.rules import DEFAULT_REL_TOL
from ...data.dataset import Data
from ...errors import ConfigError
from ...grid import DimSpec
from ...likelihoods import get as likelihood_of_name
from ...models.custom import DataInfo, build_model, normalize_spec
from ...models.vae import VAE, VAEConfig
from ...training.config import TrainConfig

DEFAULT_HIDDEN = (512, 256)  # images (chosen on MNIST), and a SweepConfig built by hand
DEFAULT_ARCH = "mlp"
TABLE_DEPTH = 3  # hidden layers of zdim's network for a table
TABLE_WIDTHS = (32, 256)  # the narrowest and widest of them


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
    linear : bool
        Give zdim's MLP ``VAE`` a linear path started at probabilistic PCA (``VAEConfig.linear``) where the
        data's likelihood has numeric columns to start it from (Gaussian data, a mixed table's numbers):
        every member then starts where the linear model of its size ends. A run made before it existed
        records none and resumes without it.
    seeded : tuple of int or None
        The sizes trained with every one of ``seeds``; the others with the first seed only. None (the
        default): every size. Settle mode's default run starts with ``()`` and gives the further seeds to
        the sizes that compete for the answer (``zdim.sweeps.executors.growth``: sequential evidence).
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
    linear: bool = True
    seeded: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", normalize_spec(self.model))
        object.__setattr__(self, "dims", tuple(sorted(set(DimSpec.of(self.dims).sizes(10**9)))))
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if self.seeded is not None:
            object.__setattr__(self, "seeded", tuple(sorted({int(d) for d in self.seeded})))
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
        return [(d, base + s) for d in self.dims for s in range(self.seeds_of(d))]

    def seeds_of(self, dim: int) -> int:
        """How many seeds size ``dim`` is trained with: ``seeds``, or one for a size not (yet) ``seeded``."""
        return self.seeds if self.seeded is None or dim in self.seeded else 1

    def with_seeded(self, dims: tuple[int, ...] | list[int] | set[int]) -> SweepConfig:
        """The configuration with every seed for ``dims`` too (``seeded``)."""
        return replace(self, seeded=tuple(sorted({*(self.seeded or ()), *dims})))

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
            "linear": self.linear,
        }
        if self.model is not None:
            d["model"] = self.model
        if self.eval_samples is not None:
            d["eval_samples"] = self.eval_samples
        if self.seeded is not None:
            d["seeded"] = list(self.seeded)
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
            linear=bool(d.get("linear", False)),  # a run made before the linear start had none
            seeded=None if d.get("seeded") is None else tuple(int(v) for v in d["seeded"]),
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


def default_hidden(data: Data) -> tuple[int, ...]:
    """zdim's hidden widths for ``data`` when none are asked for (``--hidden``): ``DEFAULT_HIDDEN`` for
    images; for a table, ``TABLE_DEPTH`` layers as wide as twice the square root of its training rows,
    rounded to a power of two within ``TABLE_WIDTHS``. The widths chosen on MNIST cost a few hundred
    thousand parameters per member, which a table of a few hundred rows neither needs (its linear part is
    the linear path's, ``VAEConfig.linear``) nor can fit without overfitting; a curved sheet of thousands
    of rows wants depth more than width (benchmarks/validate/reach.py)."""
    return hidden_for(int(data.train.shape[0]), data.is_image)


def hidden_for(n_train: int, is_image: bool) -> tuple[int, ...]:
    """``default_hidden`` of data of ``n_train`` training rows (``run.json``'s data summary has both)."""
    if is_image:
        return DEFAULT_HIDDEN
    low, high = TABLE_WIDTHS
    width = 2 ** round(math.log2(2.0 * math.sqrt(max(1, n_train))))
    return (min(high, max(low, width)),) * TABLE_DEPTH


def likelihood_of(data: Data) -> Any:
    """The likelihood family of ``data`` (``zdim.likelihoods``)."""
    return likelihood_of_name(data.likelihood)


def model_config(data: Data, dim: int, cfg: SweepConfig, hidden: tuple[int, ...] | None = None) -> VAEConfig:
    """The architecture of the size-``dim`` model of a sweep (``hidden`` overrides the widths): with a
    linear path (``SweepConfig.linear``) for zdim's MLP where the likelihood has numeric columns."""
    linear = cfg.linear and cfg.model is None and cfg.arch == "mlp" and likelihood_of(data).numbers(data.n_features) > 0
    return VAEConfig(
        input_dim=data.n_features,
        latent_dim=dim,
        likelihood=data.likelihood,
        hidden=cfg.hidden if hidden is None else hidden,
        arch=cfg.arch,
        image_shape=data.sample_shape if data.is_image else None,
        linear=linear,
    )


def build_sweep_model(data: Data, dim: int, cfg: SweepConfig, hidden: tuple[int, ...] | None = None) -> VAE:
    """The untrained size-``dim`` model of a sweep: zdim's ``VAE`` or the user's (``cfg.model``)."""
    return build_model(model_config(data, dim, cfg, hidden), DataInfo.from_data(data), cfg.model)


__all__ = [
    "SweepConfig",
    "eval_data",
    "model_config",
    "build_sweep_model",
    "default_hidden",
    "hidden_for",
    "DEFAULT_HIDDEN",
    "DEFAULT_ARCH",
]
