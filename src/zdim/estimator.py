"""``VAETransformer``: a VAE as a scikit-learn transformer, with the latent-size search inside ``fit``.

The estimator is a thin adapter: ``fit`` reads ``X`` through ``zdim.load_data`` (split, likelihood,
standardization), trains with ``zdim.training.trainer.fit``, and with ``latent_dim="auto"`` runs ``zdim.sweep`` in
memory, per size (``mode="per-size"``: each trial trained to its own end, as the final model will be),
and retrains the recommended size with the seed of its best trial (the same data and seed give the same
weights, so this is the sweep's model). It follows the scikit-learn contract: ``__init__``
only stores parameters, learned state ends in an underscore.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils._set_output import ADAPTERS_MANAGER, _get_output_config
from sklearn.utils.validation import check_is_fitted, validate_data

from .data.columns import is_text
from .data.dataset import Data, load_data
from .data.preprocessing import Preprocessing
from .errors import ConfigError, TrainingDiverged, ZdimError
from .evaluation.metrics import neg_elbo
from .grid import default_dims
from .messages import python_message, warn_unsettled
from .models.vae import VAE, VAEConfig
from .options import defaults, route
from .saved import SavedModel
from .sweeps.execute import sweep
from .sweeps.planning.config import SweepConfig, model_config
from .sweeps.records.result import SweepResult
from .training.config import TrainConfig
from .training.trial import train as train_vae

Float32Array = NDArray[np.float32]
_DEFAULT = defaults()  # the option table's defaults (zdim.options), the same as zdim.sweep's
# the parameters that are also zdim.sweep's keywords (rel_tol is its tolerance; epochs, seeds and hidden
# have the estimator's own defaults): read through the option table in fit
SHARED = (
    "epochs",
    "batch_size",
    "lr",
    "beta",
    "patience",
    "likelihood",
    "seeds",
    "k",
    "val_fraction",
    "seed",
    "device",
)


def _unit_scale_constant_features(data: Data) -> Data:
    """Give features constant in the training split a scale of 1 instead of ``load_data``'s 1e-6 floor.

    Data passed to ``transform`` or ``score`` later may vary where the training data did not (a pixel
    that is always 0 in one cross-validation fold); divided by 1e-6 such values reach the encoder in
    the millions and its output overflows. With a scale of 1 (as scikit-learn's ``StandardScaler``
    does) they stay finite and the model simply finds them unlikely.
    """
    if data.std is None:
        return data
    const = data.std <= 1e-6  # load_data's floor: the feature is constant in the training split
    if not const.any():
        return data
    factor = torch.from_numpy(np.where(const, np.float32(1e-6), np.float32(1.0)).astype(np.float32))
    return replace(
        data,
        train=data.train * factor,
        val=data.val * factor,
        test=data.test * factor,
        std=np.where(const, np.float32(1.0), data.std).astype(np.float32),
    )


# scikit-learn ships no type information, so its base classes are Any to mypy: [misc] is that warning.
class VAETransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """A Variational Autoencoder as a scikit-learn transformer: ``transform`` gives latent means.

    Parameters
    ----------
    latent_dim : int or "auto"
        Latent units K. ``"auto"`` runs zdim's bottleneck search over ``dims`` inside ``fit`` and keeps
        the recommended size (``latent_dim_``; the whole search is in ``sweep_result_``).
    hidden : tuple of int
        Hidden widths of the encoder MLP (the decoder mirrors them); default (512, 256), as ``zdim.sweep``.
    epochs, batch_size, lr, beta, patience : see ``zdim.TrainConfig``
        Training recipe; training stops early on validation -ELBO after ``patience`` epochs (0: never).
    likelihood : {"auto", "bernoulli", "gaussian"}
        Decoder likelihood; ``auto`` picks Bernoulli when every value of ``X`` lies in [0, 1].
    dims : sequence of int, optional
        Sizes tried by ``latent_dim="auto"``; default powers of two up to ``min(n_features, 64)``.
    seeds : int
        Trainings per size in the search (seeds ``seed, seed+1, ...``).
    k : int
        Importance samples of the search's held-out NLL (default 100, as ``zdim.sweep``).
    rel_tol : float
        Relative NLL tolerance of the recommendation rule.
    val_fraction : float
        Fraction of ``X`` held out for early stopping (and, with ``"auto"``, the same again for the
        search's test split).
    seed : int
        Seed of the split, initialization and training.
    device : str
        ``auto`` (CUDA when present, else the CPU), ``cpu`` or ``cuda``.

    Attributes
    ----------
    model_ : zdim.VAE
        The trained model (in evaluation mode).
    latent_dim_ : int
        The latent size used (the recommendation with ``latent_dim="auto"``).
    n_features_in_ : int
        Features seen in ``fit``.
    likelihood_ : str
        The decoder likelihood used.
    mean_, std_ : numpy.ndarray or None
        ``(n_features,)`` standardization of Gaussian data (None for Bernoulli data).
    preprocessing_ : zdim.data.dataset.Preprocessing
        The same as a saved model's ``model.json`` records (scale, standardization, likelihood, shape);
        pickling carries it.
    history_ : list of dict
        Per-epoch training record of ``model_``.
    sweep_result_ : zdim.SweepResult or None
        The latent-size search (``latent_dim="auto"`` only).

    Warns
    -----
    zdim.UnsettledAnswerWarning
        From ``fit`` with ``latent_dim="auto"`` when the recommended size is not a settled answer
        (``sweep_result_.recommendation.settled`` is False); the message gives its warnings.
    """

    def __init__(
        self,
        latent_dim: int | Literal["auto"] = "auto",
        *,
        hidden: Sequence[int] = (512, 256),
        epochs: int = 100,
        batch_size: int = _DEFAULT["batch_size"],
        lr: float = _DEFAULT["lr"],
        beta: float = _DEFAULT["beta"],
        patience: int = _DEFAULT["patience"],
        likelihood: str = _DEFAULT["likelihood"],
        dims: Sequence[int] | None = None,
        seeds: int = 1,
        k: int = _DEFAULT["k"],
        rel_tol: float = _DEFAULT["tolerance"],
        val_fraction: float = _DEFAULT["val_fraction"],
        seed: int = _DEFAULT["seed"],
        device: str = _DEFAULT["device"],
    ) -> None:
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.beta = beta
        self.patience = patience
        self.likelihood = likelihood
        self.dims = dims
        self.seeds = seeds
        self.k = k
        self.rel_tol = rel_tol
        self.val_fraction = val_fraction
        self.seed = seed
        self.device = device

    # ------------------------------------------------------------------------------------ fitting

    def fit(self, X: ArrayLike, y: object = None) -> VAETransformer:
        """Train a VAE on ``X`` ``(n_samples, n_features)``; ``y`` is ignored.

        Returns
        -------
        self
        """
        table = _text_frame(X)
        if table:  # a DataFrame with text columns: read as zdim.sweep reads it (zdim.data.columns)
            validate_data(self, X, skip_check_array=True)  # n_features_in_ and feature_names_in_ only
            source: Any = X
        else:
            x = validate_data(self, X, dtype=[np.float64, np.float32])
            auto = self._check_latent_dim(x.shape[1])
            source = np.asarray(x, dtype=np.float32)
        # the parameters zdim.sweep also has are read through the option table: checked, sent where they go
        values = {name: getattr(self, name) for name in SHARED} | {"tolerance": self.rel_tol}
        try:
            routed = route(values)
            train = TrainConfig(**routed["train"], epochs=self.epochs)
        except ZdimError as e:  # a Python caller: the message names the parameter, not the flag
            e.args = (re.sub(r"\btolerance\b", "rel_tol", python_message(str(e))), *e.args[1:])
            raise
        searched = isinstance(self.latent_dim, str) and self.latent_dim == "auto"
        test_fraction = self.val_fraction if searched else 0.0
        data = load_data(source, **routed.loader(), test_fraction=test_fraction)
        if table:  # the encoded width (a category's one-hot block counts each value) bounds the size
            auto = self._check_latent_dim(data.n_features)
        data = _unit_scale_constant_features(data)
        dims = tuple(self.dims) if self.dims is not None else default_dims(data.n_features)
        config = SweepConfig(
            dims=dims if auto else (int(self.latent_dim),),
            seeds=self.seeds,
            hidden=tuple(self.hidden),
            train=train,
            k=self.k,
            rel_tol=self.rel_tol,
        )
        self.sweep_result_: SweepResult | None = None
        seed = self.seed
        if auto:
            result = sweep(data, config=config, mode="per-size")  # trials trained as _train trains
            if result.recommendation is None:
                reasons = [t.reason for t in result.trials]
                raise TrainingDiverged(f"no trial of the latent-size search completed ({reasons[0]})")
            self.sweep_result_ = result
            warn_unsettled(result.recommendation)
            best = min(
                (t for t in result.trials if t.complete and t.dim == result.recommendation.dim),
                key=lambda t: t.metric("nll") or 0.0,
            )
            seed = best.seed
        dim = result.recommendation.dim if auto and result.recommendation else config.dims[0]
        self._train(data, dim, config, replace(train, seed=seed))
        return self

    def _check_latent_dim(self, n_features: int) -> bool:
        """Whether the size is searched; a fixed size must be an integer in [1, n_features]."""
        if isinstance(self.latent_dim, str) and self.latent_dim == "auto":
            return True
        if (
            isinstance(self.latent_dim, bool)
            or not isinstance(self.latent_dim, (int, np.integer))
            or self.latent_dim < 1
        ):
            raise ConfigError(
                f"latent_dim={self.latent_dim!r} is not a positive integer or 'auto': pass "
                "e.g. VAETransformer(latent_dim=8), or latent_dim='auto' to search it"
            )
        if self.latent_dim > n_features:
            raise ConfigError(
                f"latent_dim={self.latent_dim} exceeds the {n_features} feature(s) of X: "
                f"choose latent_dim <= {n_features}, or 'auto'"
            )
        return False

    def _train(self, data: Data, dim: int, config: SweepConfig, train: TrainConfig) -> None:
        # The sweep's own trial path (zdim.training.trial.train), so the recommended trial's model is reproduced.
        model, fitted = train_vae(data, model_config(data, dim, config), train)
        self.model_ = model.cpu().eval()
        self.latent_dim_ = dim
        self.likelihood_ = data.likelihood
        self.mean_ = data.mean
        self.std_ = data.std
        self.preprocessing_ = Preprocessing.from_data(data)
        self.history_ = fitted.history
        self.best_epoch_ = fitted.best_epoch

    # ------------------------------------------------------------------------------------ using

    @property
    def _n_features_out(self) -> int:
        """Output width for ``get_feature_names_out`` (``vaetransformer0``, ...)."""
        return int(self.latent_dim_)

    def _saved(self) -> SavedModel:
        """The fitted model as a saved model sees it: raw rows in (a table's, with its categories), raw
        rows out, one ``DataError`` naming the column for rows it cannot take."""
        return SavedModel(self.model_, self.preprocessing_)

    def _scaled(self, X: ArrayLike) -> torch.Tensor:
        """Validated ``X`` in the model's units (standardized for Gaussian data): (n, D) float32."""
        check_is_fitted(self)
        if self.preprocessing_.columns is not None:  # fit on a table with text columns: its raw rows
            return self._saved()._model_input(X)[0].cpu()  # type: ignore[arg-type]  # its rows, any form
        x = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return torch.from_numpy(self.preprocessing_.apply(x))  # a new float32 array, also of read-only input

    def _unscaled(self, x: torch.Tensor) -> Any:
        """Model-unit decoder means (n, D) back to the units of ``X``: a float32 array, a DataFrame of the
        table's columns (fit on text columns: each category its most likely value), or, under
        ``set_output(transform="pandas")`` (or ``"polars"``), a frame of the columns ``fit`` saw."""
        out = self._saved()._output(x, None, units=True)
        if self.preprocessing_.columns is not None:
            return out
        config = _get_output_config("transform", self)["dense"]
        if config == "default":
            return out
        names = getattr(self, "feature_names_in_", None)
        columns = [str(c) for c in names] if names is not None else [f"x{j}" for j in range(out.shape[1])]
        return ADAPTERS_MANAGER.adapters[config].create_container(out, None, columns)

    def transform(self, X: ArrayLike) -> Float32Array:
        """Posterior means of the latent units: ``(n_samples, n_features)`` -> ``(n_samples, latent_dim_)``."""
        z: Float32Array = self.model_.transform(self._scaled(X)).numpy()
        return z

    def inverse_transform(self, X: ArrayLike) -> Any:
        """Decoder means of latent codes ``(n, latent_dim_)``, in the units of the data ``fit`` saw: an array,
        a DataFrame of the table's columns (fit on text columns), or the frame ``set_output`` asks for."""
        check_is_fitted(self)
        z = np.asarray(X, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim_:
            raise ConfigError(
                f"latent codes of shape {z.shape} do not match latent_dim_={self.latent_dim_}: "
                "pass an array (n, latent_dim_), e.g. the output of transform"
            )
        with torch.no_grad():
            return self._unscaled(self.model_.mean(self.model_.decode(torch.from_numpy(z))))

    def score(self, X: ArrayLike, y: object = None) -> float:
        """Mean ELBO per sample of ``X`` in nats (higher is better), in the units of ``X``.

        A single-sample ELBO with analytic KL and a fixed seed (the same ``X`` gives the same score).
        For Gaussian data it includes the log-Jacobian of the standardization, so scores of models fit
        on the same data are comparable whatever their likelihood's internal scaling.
        """
        x = self._scaled(X)
        elbo = -neg_elbo(self.model_, x, seed=self.seed)
        if self.std_ is not None:
            elbo -= float(np.log(self.std_.astype(np.float64)).sum())
        return float(elbo) if math.isfinite(elbo) else -math.inf

    def sample(self, n_samples: int = 1, random_state: int | None = None) -> Any:
        """Decoder means of ``n_samples`` draws from the prior, in the units of ``X``: (n_samples, D), as
        ``inverse_transform`` gives them."""
        check_is_fitted(self)
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise ConfigError(f"n_samples={n_samples!r} is not a positive integer: pass e.g. sample(10)")
        gen = torch.Generator().manual_seed(self.seed if random_state is None else int(random_state))
        return self._unscaled(self.model_.sample(int(n_samples), generator=gen))

    def __getstate__(self) -> dict[str, Any]:
        # Pickling (joblib, GridSearchCV workers) carries the fitted VAE as its config and safetensors bytes,
        # not as a pickled torch module: the same form zdim writes to disk.
        state: dict[str, Any] = dict(super().__getstate__())  # a copy: it may be self.__dict__ itself
        model = state.pop("model_", None)
        pre = state.pop("preprocessing_", None)
        if pre is not None:  # the model.json form: plain lists, no zdim class in the pickle
            state["_preprocessing"] = pre.to_dict()
        if model is not None:
            weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
            state["_vae_config"] = model.config.to_dict()
            state["_vae_weights"] = st_save(weights)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        config, weights = state.pop("_vae_config", None), state.pop("_vae_weights", None)
        pre = state.pop("_preprocessing", None)
        super().__setstate__(state)
        if pre is not None:
            self.preprocessing_ = Preprocessing.from_dict(pre)
        if config is not None and weights is not None:
            model = VAE(VAEConfig.from_dict(config))
            model.load_state_dict(st_load(weights))
            self.model_ = model.eval()

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]  # the network computes in float32
        return tags


def _text_frame(X: Any) -> bool:
    """A pandas DataFrame with a column that is not numbers (text, bool, categorical)."""
    if not (type(X).__name__ == "DataFrame" and type(X).__module__.startswith("pandas")):
        return False
    return any(is_text(X[c]) for c in X.columns)


__all__ = ["VAETransformer"]
