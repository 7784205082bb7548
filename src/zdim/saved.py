"""Saved models for raw data: ``zdim.load_model`` and ``SavedModel``.

``load_model`` reads a trial folder (``zdim.models.checkpoints``: checked weights, never unpickled) and wraps
the ``VAE`` in a ``SavedModel`` that applies the preprocessing saved with it (``model.json`` key
``"preprocessing"``: the data's scale and standardization) on the way in and undoes it on the way out,
with one clear error for input of the wrong shape, type or values (NaN, negative counts).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import torch

from .data.columns import Columns
from .data.preprocessing import Preprocessing
from .errors import ConfigError, DataError, ModelFileError
from .evaluation.metrics import neg_elbo
from .likelihoods import get as get_likelihood
from .models.checkpoints import MODEL_JSON, folder_of, read_saved, rebuild
from .models.vae import VAE, VAEConfig

if TYPE_CHECKING:
    import pandas as pd


def load_model(path: str | os.PathLike[str], device: str = "cpu", trust_code: bool = False) -> SavedModel:
    """Load a saved model (a trial folder, ``tune/final``, or its ``model.safetensors``) to use on raw data.

    Parameters
    ----------
    path : str or os.PathLike
        The folder holding ``model.safetensors`` and ``model.json`` (or one of those files).
    device : str
        Where the network runs (``"cpu"``, ``"cuda"``); inputs are moved there, outputs back.
    trust_code : bool
        Allow rebuilding a model whose class is user code named in ``model.json`` (that imports it).

    Returns
    -------
    SavedModel
        ``transform``, ``reconstruct``, ``score``, ``sample`` and ``inverse_transform`` on data in its
        own units; ``.module`` is the torch ``VAE``. Never unpickles.

    Raises
    ------
    ModelFileError
        When a file is missing, truncated or does not match its config.
    """
    folder = folder_of(path)
    meta, state = read_saved(folder)
    module = rebuild(folder, meta, state, trust_code).to(device).eval()
    pre = meta.get("preprocessing")
    known = isinstance(pre, dict)
    if isinstance(pre, dict):
        try:
            preprocessing = Preprocessing.from_dict(pre)
        except (ValueError, KeyError, TypeError) as e:
            raise ModelFileError(f"{folder / MODEL_JSON} has an invalid preprocessing ({e}): rerun the trial") from e
        if preprocessing.n_features != module.config.input_dim:
            raise ModelFileError(
                f"{folder / MODEL_JSON}: its preprocessing is for {preprocessing.n_features} features but the "
                f"model takes {module.config.input_dim}: rerun the trial"
            )
    else:
        c = module.config
        preprocessing = Preprocessing.identity(c.input_dim, c.likelihood, tuple(c.image_shape or (c.input_dim,)))
    return SavedModel(module, preprocessing, preprocessing_known=known, meta=meta, path=folder)


Input = Union[np.ndarray, torch.Tensor, "pd.DataFrame", Sequence[Any]]


class SavedModel:
    """A saved VAE with the preprocessing of the data it was trained on; made by ``zdim.load_model``.

    Every method takes samples in the data's own units (raw pixel values 0..255, raw ``digits`` 0..16,
    unstandardized table values) as a NumPy array, a list, a pandas DataFrame or a torch tensor
    ``(n, D)`` (or ``(n, *sample_shape)``), applies the training data's scaling and standardization on
    the way in and undoes them on the way out. NumPy, list and DataFrame inputs give NumPy arrays;
    tensors give tensors.

    Attributes
    ----------
    module : zdim.VAE
        The torch model (in evaluation mode); it works in model units.
    preprocessing : zdim.data.dataset.Preprocessing
        Scale, standardization, likelihood, shape and feature names of the training data.
    preprocessing_known : bool
        False for a model saved before zdim recorded preprocessing: inputs are then used as given
        (divide 8-bit images by 255, ``digits`` by 16, and standardize Gaussian data yourself).
    """

    def __init__(
        self,
        module: VAE,
        preprocessing: Preprocessing,
        *,
        preprocessing_known: bool = True,
        meta: dict[str, Any] | None = None,
        path: Path | None = None,
    ) -> None:
        self.module = module
        self.preprocessing = preprocessing
        self.preprocessing_known = preprocessing_known
        self.meta = dict(meta or {})
        self.path = path

    @property
    def latent_dim(self) -> int:
        return self.module.latent_dim

    @property
    def config(self) -> VAEConfig:
        return self.module.config

    @property
    def n_features(self) -> int:
        return self.module.config.input_dim

    def __repr__(self) -> str:
        p = self.preprocessing
        where = f"{str(self.path)!r}, " if self.path is not None else ""
        if not self.preprocessing_known:
            how = "preprocessing unknown (saved before zdim recorded it): inputs are used as given"
        else:
            steps = [f"divide by {p.scale:g}"] if p.scale != 1.0 else []
            steps += ["standardize"] if p.mean is not None else []
            how = f"preprocessing: {', then '.join(steps) or 'none'}"
        data = f" of {p.name!r}" if p.name else ""
        return (
            f"SavedModel({where}latent_dim={self.latent_dim}, {p.likelihood} likelihood, "
            f"{self.n_features} features{data}; {how})"
        )

    # ------------------------------------------------------------------------------------ inputs

    def _device(self) -> torch.device:
        return next(self.module.parameters()).device

    def _table(self) -> list[str] | None:
        """The names of the columns of the table the model was trained on (a mixed table's own columns, a
        table of numbers' feature names), or None (arrays, images)."""
        columns = self._columns()
        if columns is not None:
            return columns.names
        names = self.preprocessing.feature_names if self.preprocessing_known else None
        return list(names) if names is not None and len(names) == self.n_features else None

    def _expected(self) -> str:
        p = self.preprocessing
        table = self._table()
        if table is not None:
            encoded = f", {self.n_features} features encoded" if len(table) != self.n_features else ""
            return f"this model was trained on a table of {len(table)} columns ({_shown(table)}{encoded})"
        data = f" ({p.name})" if p.name else ""
        return f"this model was trained on {self.n_features}{data}"

    def _fix(self) -> str:
        """What a message about the shape of ``X`` asks for: a DataFrame of the table's columns where the
        model was trained on one (a mixed table: only that), else an array of the model's width."""
        d, table = self.n_features, self._table()
        if table is None:
            return f"pass an array (n, {d})"
        if self._columns() is not None:
            return "pass a DataFrame with those columns"
        return f"pass a DataFrame with those columns, or an array (n, {d})"

    def _feature(self, j: int) -> str:
        """Feature ``j`` of the model's rows in a message: its column's name where the model has names."""
        names = self.preprocessing.feature_names if self.preprocessing_known else None
        return f"column {names[j]!r}" if names is not None and j < len(names) else f"feature {j}"

    def _rows(self, X: Input, what: str = "X") -> tuple[np.ndarray, torch.Tensor | None]:
        """``X`` as float rows ``(n, D)`` in its own units, and the tensor it was (or None)."""
        d = self.n_features
        fix = self._fix()
        tensor = X if isinstance(X, torch.Tensor) else None
        if tensor is not None:
            if tensor.is_complex():
                raise DataError(f"{what} holds values of dtype {tensor.dtype}, not real numbers: {fix}")
            x = tensor.detach().cpu().numpy()
        elif _is_frame(X) and self._columns() is not None:
            columns = self._columns()
            assert columns is not None
            x = columns.encode(X, what)  # type: ignore[arg-type]  # a mixed table's raw rows, with categories
        elif _is_frame(X):
            x = self._frame_rows(X, what, fix)
        else:
            try:
                x = np.asarray(X)
            except (ValueError, TypeError) as e:
                raise DataError(f"{what} is not a rectangular array ({e}): {fix}") from None
        if x.dtype.kind not in "biuf":
            kind = "strings" if x.dtype.kind in "USO" else f"dtype {x.dtype}"
            if self._columns() is not None:  # the raw rows of a mixed table come as a DataFrame
                raise DataError(f"{what} holds {kind} (dtype {x.dtype}); {self._expected()}: {fix}")
            raise DataError(f"{what} holds {kind}, not numbers (dtype {x.dtype}): {fix} of numbers")
        shape = tuple(self.preprocessing.sample_shape)
        if x.ndim == 2 and x.shape[1] == d:
            rows = x
        elif x.ndim >= 3 and tuple(x.shape[1:]) in (shape, shape[1:]) and int(np.prod(x.shape[1:])) == d:
            rows = x.reshape(len(x), d)
        elif x.ndim == 2:
            raise DataError(f"{what} has {x.shape[1]} features per sample; {self._expected()}: {fix}")
        else:
            one = f"; for one sample use {what}.reshape(1, -1)" if x.ndim == 1 else ""
            raise DataError(f"{what} has shape {tuple(x.shape)}, expected (n, {d}); {self._expected()}: {fix}{one}")
        if len(rows) == 0:
            raise DataError(f"{what} holds no samples: {fix} with n >= 1")
        finite = np.isfinite(rows)
        if not finite.all():
            i, j = (int(v[0]) for v in np.nonzero(~finite))
            raise DataError(
                f"{what} holds NaN or infinite values (first at row {i}, {self._feature(j)}: {rows[i, j]}): the "
                f"model cannot encode them; drop or fill those samples ({int((~finite).any(1).sum())} of {len(rows)})"
            )
        lik = self.preprocessing.likelihood
        if get_likelihood(lik).counts and (rows < 0).any():
            i, j = (int(v[0]) for v in np.nonzero(rows < 0))
            raise DataError(
                f"{what} holds negative values (first at row {i}, {self._feature(j)}: {rows[i, j]:g}); this {lik} "
                "model takes counts >= 0: pass raw counts"
            )
        return rows, tensor

    def _frame_rows(self, frame: Any, what: str, fix: str) -> np.ndarray:
        columns = [str(c) for c in frame.columns]
        names = self.preprocessing.feature_names
        if names is not None and all(isinstance(c, str) for c in frame.columns) and set(columns) != set(names):
            missing = [n for n in names if n not in columns]
            if missing:
                shown = ", ".join(repr(n) for n in missing[:5]) + (" ..." if len(missing) > 5 else "")
                raise DataError(
                    f"{what} lacks column(s) {shown} of the {len(names)} the model was trained on: "
                    "pass a DataFrame with those columns"
                )
        if names is not None and set(names) <= set(columns):
            frame = frame[[c for c in frame.columns if str(c) in set(names)]]
            frame = frame[sorted(frame.columns, key=lambda c: names.index(str(c)))]
        bad = [str(c) for c, t in frame.dtypes.items() if t.kind not in "biuf"]
        if bad:
            raise DataError(f"{what} has non-numeric column(s) {', '.join(repr(c) for c in bad[:5])}: {fix} of numbers")
        return np.asarray(frame.to_numpy(dtype=np.float64))

    def _model_input(self, X: Input, what: str = "X") -> tuple[torch.Tensor, torch.Tensor | None]:
        rows, tensor = self._rows(X, what)
        x = self.preprocessing.apply(rows) if self.preprocessing_known else rows.astype(np.float32)
        return torch.from_numpy(np.ascontiguousarray(x)).to(self._device()), tensor

    def _columns(self) -> Columns | None:
        """A mixed table's columns (raw rows in, raw rows out), or None."""
        d = self.preprocessing.columns if self.preprocessing_known else None
        return Columns.from_dict(d) if d is not None else None

    def _output(self, y: torch.Tensor, like: torch.Tensor | None, units: bool) -> Any:
        out = y.detach().cpu().numpy().astype(np.float32)
        if units and self.preprocessing_known:
            out = self.preprocessing.invert(out)
            columns = self._columns()
            if columns is not None:  # a mixed table: a DataFrame of its columns, categories as labels
                return columns.decode(out)
        if like is not None:
            return torch.from_numpy(out).to(like.device)
        return out

    # ------------------------------------------------------------------------------------ using

    @torch.no_grad()
    def transform(self, X: Input) -> Any:
        """Posterior means of the latent units: ``(n, D)`` raw samples -> ``(n, latent_dim)``."""
        x, like = self._model_input(X)
        return self._output(self.module.transform(x), like, units=False)

    @torch.no_grad()
    def reconstruct(self, X: Input) -> Any:
        """Decoder means at the posterior means, in the data's units: ``(n, D)`` -> ``(n, D)`` (a mixed
        table: raw rows in, a DataFrame of its columns out, each category its most likely value)."""
        x, like = self._model_input(X)
        out = self._output(self.module.reconstruct(x), like, units=True)
        if _is_frame(out) and _is_frame(X):  # a mixed table's rows keep their index
            out.index = X.index  # type: ignore[union-attr]
        return out

    def score(self, X: Input, seed: int = 0) -> float:
        """Mean ELBO per sample of ``X`` in nats (higher is better), in the units of ``X``.

        A single-sample ELBO with analytic KL and a fixed ``seed`` (as ``VAETransformer.score``). For a
        likelihood that is a density (Gaussian, continuous Bernoulli) it includes the log-Jacobian of the
        scaling and standardization, so it is a density of the raw rows.
        """
        x, _ = self._model_input(X)
        elbo = -neg_elbo(self.module, x, seed=seed)
        if self.preprocessing_known:
            elbo += self.preprocessing.log_jacobian()
        return float(elbo) if math.isfinite(elbo) else -math.inf

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None) -> Any:
        """Decoder means of ``n`` draws from the prior, in the data's units: NumPy ``(n, D)`` (a mixed
        table: a DataFrame of its columns, each binary and category its most likely value)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigError(f"n={n!r} is not a positive integer: pass e.g. sample(16)")
        gen = torch.Generator(device=self._device())
        if seed is None:
            gen.seed()
        else:
            gen.manual_seed(int(seed))
        return self._output(self.module.sample(int(n), generator=gen), None, units=True)

    @torch.no_grad()
    def inverse_transform(self, Z: Input) -> Any:
        """Decoder means of latent codes ``(n, latent_dim)``, in the data's units: ``(n, D)``."""
        k = self.latent_dim
        like = Z if isinstance(Z, torch.Tensor) else None
        try:
            z = Z.detach().cpu().numpy() if isinstance(Z, torch.Tensor) else np.asarray(Z)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"Z is not a rectangular array ({e}): pass latent codes (n, {k})") from None
        if z.dtype.kind not in "biuf":
            raise ConfigError(f"Z holds values of dtype {z.dtype}, not numbers: pass latent codes (n, {k})")
        if z.ndim != 2 or z.shape[1] != k:
            raise ConfigError(
                f"Z has shape {tuple(z.shape)}; this model has {k} latent units: pass latent codes (n, {k}), "
                "e.g. the output of transform"
            )
        zt = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32)).to(self._device())
        return self._output(self.module.mean(self.module.decode(zt)), like, units=True)


def _shown(names: list[str], limit: int = 6) -> str:
    """Column names in a message: the first ``limit``, then how many more."""
    more = f", ... {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(repr(n) for n in names[:limit]) + more


def _is_frame(obj: object) -> bool:
    return type(obj).__name__ == "DataFrame" and type(obj).__module__.startswith("pandas")


__all__ = ["load_model", "SavedModel"]
