"""``Preprocessing``: what turns a raw sample, in the data's own units, into a model input, and back
(scale, standardization with training statistics, a mixed table's columns), saved with every model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    pass

from ..likelihoods import Gaussian
from ..likelihoods import get as get_likelihood
from .columns import Columns

if TYPE_CHECKING:
    from .dataset import Data


@dataclass(frozen=True, eq=False)
class Preprocessing:
    """What turns a raw sample, in the data's own units, into a model input, and back.

    A raw row ``x`` (flattened, ``(D,)``) becomes ``((x / scale) - mean) / std``; ``mean`` and ``std``
    are None when the data were not standardized (Bernoulli and count data). Saved in ``model.json``
    (key ``"preprocessing"``) with every model zdim writes, so a saved model takes raw data.

    Attributes
    ----------
    scale : float
        The reader's divisor (255 for 8-bit images, 16 for ``digits``, else 1).
    mean, std : numpy.ndarray or None
        ``(D,)`` float32 standardization statistics of the training split (Gaussian data only).
    likelihood : str
        The decoder likelihood the model was trained with.
    sample_shape : tuple of int
        Shape of one sample before flattening.
    n_features : int
        ``D``, the flattened width a model takes.
    feature_names : list of str or None
        Column names of tabular data.
    name : str
        The data set's display name (used in messages).
    columns : dict or None
        A mixed table's columns (``zdim.data.columns.Columns.to_dict``): how raw rows with categories become
        the encoded features, and back.
    """

    scale: float = 1.0
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    likelihood: str = Gaussian.name
    sample_shape: tuple[int, ...] = ()
    n_features: int = 0
    feature_names: list[str] | None = None
    name: str = ""
    columns: dict[str, Any] | None = None

    @classmethod
    def from_data(cls, data: Data) -> Preprocessing:
        return cls(
            scale=float(data.scale),
            mean=None if data.mean is None else np.asarray(data.mean, dtype=np.float32),
            std=None if data.std is None else np.asarray(data.std, dtype=np.float32),
            likelihood=data.likelihood,
            sample_shape=tuple(int(s) for s in data.sample_shape),
            n_features=data.n_features,
            feature_names=list(data.feature_names) if data.feature_names is not None else None,
            name=data.name,
            columns=data.extra.get("columns"),
        )

    @classmethod
    def identity(
        cls, n_features: int, likelihood: str = Gaussian.name, sample_shape: tuple[int, ...] = ()
    ) -> Preprocessing:
        """No scaling and no standardization: inputs are used as given."""
        return cls(likelihood=likelihood, sample_shape=tuple(sample_shape) or (n_features,), n_features=n_features)

    @property
    def is_identity(self) -> bool:
        return self.scale == 1.0 and self.mean is None and self.std is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (float lists); ``from_dict`` reads it back exactly (float32 values)."""
        return {
            "scale": self.scale,
            "mean": None if self.mean is None else [float(v) for v in self.mean],
            "std": None if self.std is None else [float(v) for v in self.std],
            "likelihood": self.likelihood,
            "sample_shape": list(self.sample_shape),
            "n_features": self.n_features,
            "feature_names": self.feature_names,
            "name": self.name,
            **({"columns": self.columns} if self.columns is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessing:
        """The inverse of ``to_dict``; ``ValueError``/``KeyError``/``TypeError`` on a malformed dict."""
        n = int(d["n_features"])

        def vector(key: str) -> np.ndarray | None:
            if d.get(key) is None:
                return None
            v = np.asarray(d[key], dtype=np.float32)
            if v.shape != (n,):
                raise ValueError(f"preprocessing {key} has shape {v.shape}, expected ({n},)")
            return v

        scale = float(d.get("scale", 1.0))
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"preprocessing scale {scale!r} is not a positive number")
        names = d.get("feature_names")
        return cls(
            scale=scale,
            mean=vector("mean"),
            std=vector("std"),
            likelihood=str(d.get("likelihood", Gaussian.name)),
            sample_shape=tuple(int(s) for s in d.get("sample_shape") or (n,)),
            n_features=n,
            feature_names=[str(v) for v in names] if names is not None else None,
            name=str(d.get("name", "")),
            columns=Columns.from_dict(d["columns"]).to_dict() if d.get("columns") is not None else None,
        )

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Raw rows ``(n, D)`` -> model inputs ``(n, D)`` float32 (a new array)."""
        out = np.array(x, dtype=np.float32)
        if self.scale != 1.0:
            out /= np.float32(self.scale)
        if self.mean is not None and self.std is not None:
            out -= self.mean
            out /= self.std
        return out

    def invert(self, x: np.ndarray) -> np.ndarray:
        """Model-unit rows ``(n, D)`` (decoder means) -> the data's own units, float32 (a new array)."""
        out = np.array(x, dtype=np.float32)
        if self.mean is not None and self.std is not None:
            out *= self.std
            out += self.mean
        if self.scale != 1.0:
            out *= np.float32(self.scale)
        return out

    def log_jacobian(self) -> float:
        """``log |d input / d raw|`` summed over features (``-D log scale - sum log std``), which turns a
        density of model inputs into a density of raw rows (a family with ``density``: Gaussian,
        continuous Bernoulli); 0 for a likelihood of discrete values."""
        if not get_likelihood(self.likelihood).density:
            return 0.0
        total = -self.n_features * float(np.log(self.scale))
        if self.std is not None:
            total -= float(np.log(self.std.astype(np.float64)).sum())
        return total
