"""Your own model: a user's class swept, saved and loaded by zdim like its own ``VAE``.

The protocol
------------
A *protocol class* is a ``torch.nn.Module`` built as ``MyVAE(latent_dim, data_info)``:

- ``latent_dim`` (int): the latent size K zdim sweeps; ``data_info`` (``DataInfo``): ``n_features``
  D, ``sample_shape`` (``(C, H, W)`` for images, ``(D,)`` otherwise), ``likelihood`` (``bernoulli``,
  ``gaussian``, ``poisson`` or ``nb``), ``is_image`` and ``feature_names``.
- ``encode(x) -> (mu, logvar)``: ``x`` is a batch in the data's own shape, ``(B, *sample_shape)``
  (raw counts for ``poisson``/``nb``: apply ``log1p`` yourself); ``mu`` and ``logvar`` are each
  ``(B, latent_dim)``, the mean and log-variance of the diagonal Gaussian posterior.
- ``decode(z) -> params``: ``z`` is ``(B, latent_dim)``; ``params`` is ``(B, n_features)`` (or
  ``(B, *sample_shape)``, flattened by zdim): what zdim's likelihood expects, i.e. logits for
  ``bernoulli``, means for ``gaussian`` (zdim adds a learned per-feature noise scale), logits of the
  feature proportions for ``poisson``/``nb`` (zdim multiplies by each sample's total count).
- optional ``log_likelihood(x, params) -> (B,)``: ``log p(x|z)`` summed over features, with ``x``
  ``(B, n_features)`` and ``params`` as ``decode`` returns them, flattened; it replaces zdim's
  likelihood. Optional ``mean(params) -> (B, n_features)``: the mean of ``p(x|z)`` (pictures and
  generation metrics); without it zdim's (sigmoid for ``bernoulli``, identity for ``gaussian``...).

zdim wraps such a class in ``UserVAE``, a ``VAE`` whose ``encode``/``decode`` delegate to it (leading
sample dimensions are folded into the batch for you), so the prior, the ELBO, training, every metric
(IWAE NLL, active units, KL per unit, generation metrics), the report, ``tune``, resume and saving are
zdim's, unchanged. A subclass of ``zdim.VAE`` is also accepted; it is built as ``MyVAE(vae_config)``.
A user model cannot be trained in nested mode (``--nested`` needs zdim's own model).

Naming the class
----------------
``SweepConfig(model=...)`` and ``zdim sweep --model`` take a *spec*: ``"path/to/models.py:MyVAE"`` (a
file, imported under a private module name; recorded with its absolute path), ``"package.module:MyVAE"``
(imported), or, in Python, the class itself (recorded as ``module:qualname``; a class defined in a
script's or notebook's ``__main__`` is recorded as ``__main__:MyVAE`` and cannot be re-imported by
another process: ``register_model(MyVAE)`` there first). The spec is stored in ``run.json``; ``--resume``
must name the same one.

Saving and loading
------------------
``model_meta`` adds ``user_model`` to a saved ``model.json``: the spec, for a file its SHA-256, and the
``DataInfo``. ``build_from_meta`` rebuilds the module. It never imports user code unless
``trust_code=True`` (``zdim.load_model(path, trust_code=True)``); without it, a class this process
already holds (the sweep that made the run, or ``register_model``) is used, else a one-line
``ModelFileError`` says which code built the model. A file whose SHA-256 differs from the one recorded
is refused even with ``trust_code``. Classes in zdim's own modules (``zdim.models.pythae``) need no trust.
So the report drawn by the sweep itself has pictures of every model; ``zdim report RUN_DIR`` in another
process draws the tables and curves, and lists user models under "Models that could not be loaded
(pictures skipped)".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..data.dataset import Data
from ..errors import ConfigError, ModelFileError
from .nested import NestedVAE
from .specs import (
    class_for_load,
    file_sha,
    forget_models,
    needs_trust,
    normalize_spec,
    register_model,
    resolve_model,
    spec_of,
)
from .vae import VAE, VAEConfig

META_KEY = "user_model"  # the model.json key naming the user's class


@dataclass(frozen=True)
class DataInfo:
    """What a user's model is told about the data (the second argument of ``MyVAE(latent_dim, data_info)``).

    Attributes
    ----------
    n_features : int
        Features D of a flattened sample.
    sample_shape : tuple of int
        Shape of one sample: ``(C, H, W)`` for images, ``(D,)`` otherwise.
    likelihood : str
        ``bernoulli``, ``gaussian``, ``poisson`` or ``nb``: what ``decode`` must parametrize.
    is_image : bool
        Whether the data are images.
    feature_names : tuple of str or None
        Column names of tabular data.
    """

    n_features: int
    sample_shape: tuple[int, ...]
    likelihood: str
    is_image: bool = False
    feature_names: tuple[str, ...] | None = None

    @classmethod
    def from_data(cls, data: Data) -> DataInfo:
        names = tuple(str(n) for n in data.feature_names) if data.feature_names else None
        return cls(data.n_features, tuple(int(s) for s in data.sample_shape), data.likelihood, data.is_image, names)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_features": self.n_features,
            "sample_shape": list(self.sample_shape),
            "likelihood": self.likelihood,
            "is_image": self.is_image,
            "feature_names": list(self.feature_names) if self.feature_names is not None else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataInfo:
        names = d.get("feature_names")
        return cls(
            n_features=int(d["n_features"]),
            sample_shape=tuple(int(s) for s in d["sample_shape"]),
            likelihood=str(d["likelihood"]),
            is_image=bool(d.get("is_image", False)),
            feature_names=tuple(str(n) for n in names) if names is not None else None,
        )


# ------------------------------------------------------------------------------------------ the wrapper


class UserVAE(VAE):
    """A zdim ``VAE`` whose encoder and decoder are the user's module ``net`` (see the module docstring).

    Parameters
    ----------
    config : VAEConfig
        Input size, latent size and likelihood (``hidden`` and ``arch`` are not used).
    net_class : type
        The protocol class, built as ``net_class(config.latent_dim, data_info)``.
    data_info : DataInfo
        What the module is told about the data.
    spec : str
        Where the class comes from (recorded in ``model.json``).
    """

    def __init__(self, config: VAEConfig, net_class: type, data_info: DataInfo, spec: str) -> None:
        nn.Module.__init__(self)
        self.config = config
        self.data_info = data_info
        self.spec = spec
        self.net: Any = net_class(config.latent_dim, data_info)  # an nn.Module of the protocol
        self._init_likelihood(config)
        self._own_ll = callable(getattr(self.net, "log_likelihood", None))
        self.calibrates = not self._own_ll  # a likelihood of its own has no noise scale of zdim's to calibrate
        self._own_mean = callable(getattr(self.net, "mean", None))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (B, D) -> the user's ``encode`` of ``x`` in the data's shape -> ``mu``, ``logvar`` (B, K)."""
        mu, logvar = self.net.encode(x.reshape(x.shape[0], *self.data_info.sample_shape))
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` (..., K) -> (..., D): the user's ``decode`` on the leading dimensions folded into one."""
        lead = z.shape[:-1]
        out: torch.Tensor = self.net.decode(z.reshape(-1, z.shape[-1]))
        return out.reshape(*lead, self.config.input_dim)

    def log_likelihood(
        self,
        x: torch.Tensor,
        out: torch.Tensor,
        log_sigma: torch.Tensor | None = None,
        log_theta: torch.Tensor | None = None,
        *,
        params: Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The user's ``log_likelihood`` when it has one (``out`` (..., B, D) -> (..., B)), else zdim's."""
        if not self._own_ll:
            return super().log_likelihood(x, out, log_sigma, log_theta, params=params)
        d = out.shape[-1]
        lead = out.shape[:-1]
        ll: torch.Tensor = self.net.log_likelihood(x.expand_as(out).reshape(-1, d), out.reshape(-1, d))
        return ll.reshape(lead)

    def mean(self, out: torch.Tensor, library: torch.Tensor | float | None = None) -> torch.Tensor:
        """The user's ``mean`` when it has one, else zdim's."""
        if not self._own_mean:
            return super().mean(out, library)
        m: torch.Tensor = self.net.mean(out.reshape(-1, out.shape[-1]))
        return m.reshape(out.shape)


def build_model(vcfg: VAEConfig, info: DataInfo, model: str | type | None = None) -> VAE:
    """An untrained model of a sweep: zdim's ``VAE(vcfg)``, a ``VAE`` subclass ``cls(vcfg)`` or the
    user's protocol class wrapped in ``UserVAE``. Raises ``ConfigError`` when the class cannot be
    imported or built."""
    if model is None:
        return VAE(vcfg)
    cls = resolve_model(model)
    spec = spec_of(cls)
    try:
        if issubclass(cls, VAE):
            return cls(vcfg)
        return UserVAE(vcfg, cls, info, spec)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - any error of the user's constructor is one line
        call = (
            f"{cls.__name__}(vae_config)" if issubclass(cls, VAE) else f"{cls.__name__}({vcfg.latent_dim}, data_info)"
        )
        raise ConfigError(f"--model {spec}: {call} failed ({type(e).__name__}: {e})") from None


# ------------------------------------------------------------------------------------------ the check


def _shape(t: Any) -> str:
    return str(tuple(t.shape)) if isinstance(t, torch.Tensor) else type(t).__name__


def check_protocol(model: VAE, x: torch.Tensor) -> None:
    """Run a built user model on ``x`` (a few flattened samples, (B, D)) and raise ``ConfigError``
    naming what breaks the protocol: output types and shapes, a latent width other than the size
    asked for, non-finite values at initialization. zdim's own ``VAE`` is not checked here."""
    if type(model) is VAE:
        return
    spec = model.spec if isinstance(model, UserVAE) else spec_of(type(model))
    k, d, b = model.config.latent_dim, model.config.input_dim, x.shape[0]

    def fail(what: str) -> ConfigError:
        return ConfigError(f"--model {spec} at latent size {k}: {what}")

    if not any(True for _ in model.parameters()):
        raise fail("the model has no parameters to train")
    net: Any = model.net if isinstance(model, UserVAE) else model
    xin = x.reshape(b, *model.data_info.sample_shape) if isinstance(model, UserVAE) else x
    with torch.no_grad():
        try:
            enc = net.encode(xin)
        except Exception as e:  # noqa: BLE001 - the user's code, reported in one line
            hint = "; x comes in the data's shape, data_info.sample_shape" if xin.ndim > 2 else ""
            raise fail(
                f"encode failed on a batch of shape {tuple(xin.shape)} ({type(e).__name__}: {e}){hint}"
            ) from None
        if not (isinstance(enc, (tuple, list)) and len(enc) == 2 and all(isinstance(t, torch.Tensor) for t in enc)):
            raise fail(f"encode must return a pair of tensors (mu, logvar), got {type(enc).__name__}")
        for label, t in zip(("mu", "logvar"), enc):
            if tuple(t.shape) != (b, k):
                hint = " (a latent size the model ignores: build it from latent_dim)" if t.ndim == 2 else ""
                raise fail(f"encode gives {label} of shape {_shape(t)}, expected ({b}, {k}){hint}")
            if not torch.isfinite(t).all():
                raise fail(f"encode gives non-finite {label} at initialization (NaN or inf)")
        try:
            out = net.decode(enc[0])
        except Exception as e:  # noqa: BLE001
            raise fail(f"decode failed on z of shape ({b}, {k}) ({type(e).__name__}: {e})") from None
        shapes: set[tuple[int, ...]] = {(b, d)}
        if isinstance(model, UserVAE):
            shapes.add((b, *model.data_info.sample_shape))
        if not isinstance(out, torch.Tensor) or tuple(out.shape) not in shapes:
            want = " or ".join(str(s) for s in sorted(shapes))
            raise fail(f"decode gives {_shape(out)}, expected {want} (the decoder output for the {b} samples)")
        if not torch.isfinite(out).all():
            raise fail("decode gives non-finite values at initialization (NaN or inf)")
        flat = out.reshape(b, d)
        try:
            ll = model.log_likelihood(x, flat)
        except Exception as e:  # noqa: BLE001
            raise fail(f"log_likelihood failed ({type(e).__name__}: {e})") from None
        if not isinstance(ll, torch.Tensor) or tuple(ll.shape) != (b,):
            raise fail(f"log_likelihood gives {_shape(ll)}, expected ({b},): one value per sample")
        if model.decode(enc[0].expand(3, b, k)).shape != (3, b, d):
            raise fail(f"decode of z with a leading sample dimension (3, {b}, {k}) does not give (3, {b}, {d})")


def check_model_class(model: str | type | None, nested: bool) -> None:
    """``ConfigError`` when the model cannot serve the sweep's mode (nested needs zdim's own model)."""
    if model is not None and nested:
        raise ConfigError("--nested needs zdim's own model: drop --model or --nested")


# ------------------------------------------------------------------------------------------ saving


def model_meta(model: VAE) -> dict[str, Any]:
    """What ``model.json`` records beyond the config to rebuild ``model``: nothing for zdim's own
    models; ``user_model`` (spec, kind, a file's SHA-256, the ``DataInfo``) for a user's."""
    if type(model) in (VAE, NestedVAE):
        return {}
    if isinstance(model, UserVAE):
        spec, kind, info = model.spec, "protocol", model.data_info.to_dict()
    else:
        spec, kind, info = spec_of(type(model)), "vae", None
    entry: dict[str, Any] = {"spec": spec, "kind": kind, "file_sha256": file_sha(spec)}
    if info is not None:
        entry["data_info"] = info
    return {META_KEY: entry}


def build_from_meta(meta: dict[str, Any], *, trust_code: bool = False) -> VAE:
    """An untrained model of the architecture ``meta`` (a ``model.json``) describes.

    zdim's own ``VAE`` for a model.json without ``user_model``; otherwise the user's class, imported
    only with ``trust_code=True`` (or held by this process already). Raises ``ModelFileError``."""
    config = VAEConfig.from_dict(meta["config"])
    entry = meta.get(META_KEY)
    if not entry:
        return VAE(config)
    cls = class_for_load(dict(entry), trust_code)
    try:
        if entry.get("kind") == "vae" or issubclass(cls, VAE):
            return cls(config)  # type: ignore[no-any-return]
        return UserVAE(config, cls, DataInfo.from_dict(entry["data_info"]), str(entry["spec"]))
    except Exception as e:  # noqa: BLE001 - the user's constructor, reported in one line
        raise ModelFileError(f"cannot rebuild the model {entry['spec']} ({type(e).__name__}: {e})") from None


__all__ = [
    "DataInfo",
    "UserVAE",
    "build_model",
    "build_from_meta",
    "check_protocol",
    "check_model_class",
    "forget_models",
    "needs_trust",
    "model_meta",
    "normalize_spec",
    "register_model",
    "resolve_model",
    "spec_of",
]
