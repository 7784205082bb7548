"""Pythae models swept by zdim through the protocol of ``zdim.models.custom`` (``pip install 'zdim[pythae]'``).

``PythaeModel`` is a protocol class (``PythaeModel(latent_dim, data_info)``, ``encode``, ``decode``)
that builds a Pythae model (https://github.com/clementchadebec/benchmark_VAE) for each latent size:
the class named by ``pythae_class`` (``"VAE"``, ``"BetaVAE"``, ``"IWAE"``, ``"VAMP"``... any class of
``pythae.models`` with a ``<Name>Config``), configured with ``pythae_config``, with the encoder and
decoder that ``make_encoder`` / ``make_decoder`` return (Pythae's default MLPs when they return None).
``encode`` is the encoder's ``(embedding, log_covariance)``, ``decode`` the decoder's
``reconstruction``, flattened.

Sweep one from the command line (these classes are zdim's own code: no ``trust_code`` is needed to load
them back)::

    zdim sweep DATA --model zdim.models.pythae:PythaeVAE

or subclass ``PythaeModel`` in your own file for another class, configuration or networks::

    class MyBeta(PythaeModel):
        pythae_class = "BetaVAE"
        pythae_config = {"beta": 4.0}

        def make_decoder(self, config, data_info):
            return MyDecoder(config)  # a pythae.models.nn.BaseDecoder giving logits / means

What zdim takes from Pythae is the networks, not the objective: zdim trains every model with its own
ELBO (standard normal prior, ``--beta``, warm-up, free bits) and measures it with its own metrics, so a
VAMP prior, an IWAE training bound or a beta of ``pythae_config`` do not change the training. Pythae's
default decoder ends in a sigmoid (probabilities, for Pythae's BCE and MSE losses); zdim's likelihoods
take logits (Bernoulli), means (Gaussian) or proportion logits (counts), so that final sigmoid is
replaced by an identity. A decoder of your own must give what zdim's likelihood expects (see
``zdim.models.custom``).
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import ConfigError
from ..likelihoods import get as get_likelihood
from .custom import DataInfo

INSTALL = "pip install 'zdim[pythae]'"


def pythae_models() -> Any:
    """The ``pythae.models`` module; ``ConfigError`` (one line) when Pythae is not installed."""
    try:
        return importlib.import_module("pythae.models")
    except Exception as e:  # noqa: BLE001 - ImportError, or an incompatibility with this torch
        raise ConfigError(f"Pythae cannot be imported ({type(e).__name__}: {e}): {INSTALL}") from None


def _strip_sigmoid(decoder: nn.Module) -> None:
    """Replace every ``nn.Sigmoid`` of ``decoder`` by an identity (Pythae's default MLP ends in one)."""
    for module in list(decoder.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Sigmoid):
                setattr(module, name, nn.Identity())


class PythaeModel(nn.Module):
    """A Pythae model of one latent size, seen through zdim's protocol (see the module docstring).

    Attributes
    ----------
    pythae_class : str
        The class of ``pythae.models`` to build (its config class is ``pythae_class + "Config"``).
    pythae_config : dict
        Extra arguments of that config (``input_dim``, ``latent_dim`` and ``reconstruction_loss``
        are set by zdim).
    model : pythae.models.BaseAE
        The Pythae model; its ``encoder`` and ``decoder`` are trained by zdim.
    """

    pythae_class: ClassVar[str] = "VAE"
    pythae_config: ClassVar[dict[str, Any]] = {}

    def __init__(self, latent_dim: int, data_info: DataInfo) -> None:
        super().__init__()
        models = pythae_models()
        name = self.pythae_class
        cls, config_cls = getattr(models, name, None), getattr(models, f"{name}Config", None)
        if cls is None or config_cls is None:
            raise ConfigError(f"pythae.models has no model {name!r} with a {name}Config: fix pythae_class")
        loss = "bce" if get_likelihood(data_info.likelihood).unit_interval else "mse"
        config = config_cls(
            input_dim=tuple(data_info.sample_shape),
            latent_dim=int(latent_dim),
            reconstruction_loss=loss,
            **dict(self.pythae_config),
        )
        encoder = self.make_encoder(config, data_info)
        decoder = self.make_decoder(config, data_info)
        self.model: Any = cls(model_config=config, encoder=encoder, decoder=decoder)  # a Pythae BaseAE
        if decoder is None:
            _strip_sigmoid(self.model.decoder)

    def make_encoder(self, config: Any, data_info: DataInfo) -> Any:
        """A ``pythae.models.nn.BaseEncoder`` giving ``embedding`` and ``log_covariance``; None for
        Pythae's default MLP."""
        return None

    def make_decoder(self, config: Any, data_info: DataInfo) -> Any:
        """A ``pythae.models.nn.BaseDecoder`` giving ``reconstruction`` as zdim's likelihood expects it
        (logits, means or proportion logits); None for Pythae's default MLP (its sigmoid removed)."""
        return None

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model.encoder(x)
        return out.embedding, out.log_covariance

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        rec: torch.Tensor = self.model.decoder(z).reconstruction
        return rec.reshape(z.shape[0], -1)


class PythaeVAE(PythaeModel):
    """Pythae's ``VAE`` (default MLP: D-512-K, decoder K-512-D)."""

    pythae_class = "VAE"


class PythaeBetaVAE(PythaeModel):
    """Pythae's ``BetaVAE`` networks (zdim's ``--beta`` weighs the KL)."""

    pythae_class = "BetaVAE"


class PythaeIWAE(PythaeModel):
    """Pythae's ``IWAE`` networks (trained on zdim's single-sample ELBO; zdim's NLL is an IWAE bound)."""

    pythae_class = "IWAE"


class PythaeVAMP(PythaeModel):
    """Pythae's ``VAMP`` networks (its learned mixture prior is not used: zdim's prior is N(0, I))."""

    pythae_class = "VAMP"


__all__ = ["PythaeModel", "PythaeVAE", "PythaeBetaVAE", "PythaeIWAE", "PythaeVAMP", "pythae_models"]
