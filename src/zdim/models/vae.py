"""VAE models: ``VAEConfig`` and ``VAE`` (the nested model that serves a grid of sizes is ``zdim.models.nested``).

A VAE here is an encoder ``q(z|x) = N(mu, diag(exp(logvar)))``, a standard normal prior and a decoder
``p(x|z)`` that is Bernoulli (logits), Gaussian with a learned per-feature variance, or, for count data,
Poisson or negative binomial. The learned variance matters for bottleneck search: with a fixed unit
variance a Gaussian VAE pays almost nothing for extra latent units and none of them collapse; with a
learned one, units the data does not need fall back to the prior (KL ~ 0), so active units measure the
bottleneck.

Count likelihoods (``poisson``, ``nb``) follow scVI (Lopez et al. 2018): the encoder sees ``log1p(x)``,
the decoder outputs logits of feature proportions ``rho = softmax(out)`` and the mean is
``mu = library * rho`` with ``library = x.sum(-1)``, the sample's observed total count (so the latent
code need not encode sequencing depth). The negative binomial has a learned per-feature inverse
dispersion ``theta = exp(log_theta)``. Where no sample is at hand (``sample``, ``mean`` without a
library) the mean training library size is used: the buffer ``library_mean``, a running mean over the
training batches that ``elbo_terms`` updates in training mode (so ``zdim.training.trainer.fit`` sets it from the
training data) and that is saved with the weights.

Models do not train themselves (see ``zdim.training.trainer``) and know nothing of files (see
``zdim.sweeps.records.runs``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..formats import COUNT_LIKELIHOODS, LIKELIHOODS  # noqa: F401  (re-exported)
from ..likelihoods import (  # noqa: F401  (the arithmetic is re-exported from here, where it used to live)
    COUNT_EPS,
    LOG_2PI,
    LOG_THETA_RANGE,
    MIN_LOG_SIGMA,
    Bernoulli,
    Likelihood,
    LinearStart,
    count_log_mean,
    nb_log_prob,
    poisson_log_prob,
)
from ..likelihoods import get as get_likelihood

ARCHS = ("mlp", "conv")


@dataclass(frozen=True)
class VAEConfig:
    """Architecture of one VAE.

    Attributes
    ----------
    input_dim : int
        Number of features D of a flattened sample.
    latent_dim : int
        Number of latent units K (the bottleneck).
    likelihood : {"bernoulli", "gaussian", "poisson", "nb", "continuous-bernoulli"}
        Decoder likelihood, the name of a family of ``zdim.likelihoods`` (``family``). Bernoulli for data
        in [0, 1]; Gaussian (learned variance) for real values; Poisson or negative binomial (``nb``,
        learned per-feature dispersion) for raw counts, with the sample's total count as library size
        (MLP only); continuous Bernoulli for grey levels in [0, 1], a normalized density.
    hidden : tuple of int
        Widths of the MLP hidden layers of the encoder; the decoder mirrors them.
    arch : {"mlp", "conv"}
        ``conv`` uses two stride-2 convolutions before the MLP (image data only).
    image_shape : tuple of int or None
        ``(C, H, W)`` of one sample; required for ``arch="conv"``.
    linear : bool
        A linear path beside each MLP (``mlp`` only): the encoder outputs ``A x + a + mlp(x)``, the decoder
        ``W z + w + mlp(z)``, and the last layer of each MLP starts at zero. The trainer starts the linear
        path at probabilistic PCA of the data (``zdim.likelihoods.LinearStart``), so the model starts
        where the best linear model of its size ends and training only has to improve on it.
    """

    input_dim: int
    latent_dim: int
    likelihood: str = Bernoulli.name
    hidden: tuple[int, ...] = (512, 256)
    arch: str = "mlp"
    image_shape: tuple[int, ...] | None = None
    linear: bool = False

    def __post_init__(self) -> None:
        if self.input_dim < 1:
            raise ConfigError(f"input_dim must be >= 1, got {self.input_dim}")
        if not self.latent_dim >= 1:
            raise ConfigError(f"latent size must be >= 1, got {self.latent_dim}: pass sizes like --dims 2,4,8")
        get_likelihood(self.likelihood)  # ConfigError for a name no family has
        if self.arch not in ARCHS:
            raise ConfigError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise ConfigError(f"hidden widths must be positive integers, got {self.hidden!r}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if self.image_shape is not None:
            object.__setattr__(self, "image_shape", tuple(int(s) for s in self.image_shape))
        if self.linear and self.arch != "mlp":
            raise ConfigError(f"a linear path needs arch 'mlp', got {self.arch!r}: use --arch mlp")
        if self.arch == "conv":
            if self.family.counts:
                raise ConfigError(
                    f"arch 'conv' is for images, and likelihood {self.likelihood!r} is for count data: use --arch mlp"
                )
            shape = self.image_shape
            if shape is None:
                raise ConfigError(
                    f"--arch conv needs image data (C, H, W), and these data are a table of {self.input_dim} "
                    "features: use --arch mlp"
                )
            if len(shape) != 3 or math.prod(shape) != self.input_dim:
                raise ConfigError(f"--arch conv needs image data (C, H, W), got shape {shape}: use --arch mlp")
            if shape[1] % 4 or shape[2] % 4:
                raise ConfigError(
                    f"--arch conv needs height and width divisible by 4, got {shape[1]}x{shape[2]}: use --arch mlp"
                )

    @property
    def family(self) -> Likelihood:
        """The decoder likelihood's family (``zdim.likelihoods``)."""
        return get_likelihood(self.likelihood)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        d["image_shape"] = list(self.image_shape) if self.image_shape else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VAEConfig:
        d = dict(d)
        d["hidden"] = tuple(d.get("hidden", (512, 256)))
        if d.get("image_shape") is not None:
            d["image_shape"] = tuple(d["image_shape"])
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


def kl_per_unit(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per latent unit: (B, K) -> (B, K)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class _ConvTrunk(nn.Module):
    """(B, C*H*W) -> (B, 64*H/4*W/4): two stride-2 convolutions."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = shape
        c = shape[0]
        self.net = nn.Sequential(
            nn.Conv2d(c, 32, 4, 2, 1), nn.SiLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.SiLU(), nn.Flatten()
        )
        self.out_dim = 64 * (shape[1] // 4) * (shape[2] // 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x.view(-1, *self.shape))  # (B, 64*H/4*W/4)
        return out


class _DeconvHead(nn.Module):
    """(B, 64*H/4*W/4) -> (B, C*H*W): two stride-2 transposed convolutions."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        c, h, w = shape
        self.grid = (64, h // 4, w // 4)
        self.in_dim = 64 * (h // 4) * (w // 4)
        self.net = nn.Sequential(
            nn.SiLU(), nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.SiLU(), nn.ConvTranspose2d(32, c, 4, 2, 1)
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(h.view(-1, *self.grid)).flatten(1)  # (B, C*H*W)
        return out


class VAE(nn.Module):
    """A VAE with a diagonal Gaussian posterior and a standard normal prior.

    Parameters
    ----------
    config : VAEConfig
        The architecture.

    Attributes
    ----------
    log_sigma : torch.nn.Parameter
        ``(D,)`` log std of the Gaussian decoder (``gaussian`` only).
    log_theta : torch.nn.Parameter
        ``(D,)`` log inverse dispersion of the negative binomial decoder (``nb`` only).
    library_mean, library_seen : torch.Tensor
        Scalar buffers (count likelihoods only): the mean total count of the training samples seen in
        training mode, and how many were seen. ``library_mean`` is the library size of ``sample`` and
        of ``mean`` without one; set it directly to use another depth.
    """

    library_mean: torch.Tensor
    library_seen: torch.Tensor

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        d, k, hidden = config.input_dim, config.latent_dim, list(config.hidden)
        if config.arch == "conv":
            assert config.image_shape is not None
            trunk = _ConvTrunk(config.image_shape)
            head = _DeconvHead(config.image_shape)
            self.encoder = nn.Sequential(trunk, nn.SiLU(), _mlp([trunk.out_dim, *hidden, 2 * k]))
            self.decoder = nn.Sequential(_mlp([k, *hidden[::-1], head.in_dim]), head)
        else:
            self.encoder = _mlp([d, *hidden, 2 * k])
            self.decoder = _mlp([k, *hidden[::-1], d])
        if config.linear:  # the linear paths, and MLPs whose output starts at zero beside them
            self.enc_lin = nn.Linear(d, 2 * k)
            self.dec_lin = nn.Linear(k, d)
            for layer in (_last_linear(self.encoder), _last_linear(self.decoder), self.enc_lin, self.dec_lin):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)
        self._init_likelihood(config)

    def _init_likelihood(self, config: VAEConfig) -> None:
        """The decoder's own parameters (the family's ``params``: Gaussian noise scale, NB dispersion;
        each (D,), started at 0) and the library-size buffers of a count family (a model with its own
        encoder and decoder, ``zdim.models.custom.UserVAE``, calls it too)."""
        family = config.family
        for name in family.params:
            setattr(self, name, nn.Parameter(torch.zeros(config.input_dim)))  # (D,) learned per feature
        if family.counts:
            self.register_buffer("library_mean", torch.tensor(1.0))  # mean training library size
            self.register_buffer("library_seen", torch.tensor(0.0))  # training samples it averages

    @property
    def family(self) -> Likelihood:
        """The decoder likelihood's family (``zdim.likelihoods``)."""
        return self.config.family

    @property
    def is_count(self) -> bool:
        """Whether the decoder is a count likelihood (``poisson`` or ``nb``)."""
        return self.config.family.counts

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior parameters: ``x`` (B, D) -> ``mu`` (B, K), ``logvar`` (B, K).

        Counts enter the encoder as ``log1p(x)`` (raw counts span orders of magnitude)."""
        xin = self.family.encoder_input(x)
        h = self.encoder(xin)
        if self.config.linear:
            h = h + self.enc_lin(xin)
        mu, logvar = h.chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder output for ``z`` (..., K), (..., D): logits (Bernoulli), means (Gaussian) or logits
        of the feature proportions ``rho = softmax(out)`` (count likelihoods)."""
        lead = z.shape[:-1]
        flat = z.reshape(-1, z.shape[-1])
        out: torch.Tensor = self.decoder(flat)
        if self.config.linear:
            out = out + self.dec_lin(flat)
        return out.reshape(*lead, out.shape[-1])

    @torch.no_grad()
    def set_linear_start(self, start: LinearStart) -> None:
        """Set the linear paths to ``start`` (probabilistic PCA of the data, ``Likelihood.linear_start``):
        the model then computes the linear model's posterior and decoder exactly (its MLPs still output
        zero), and its noise scale is the linear model's. Units beyond the start's components decode
        nothing and keep the prior as posterior. ``ConfigError`` for a model without linear paths."""
        if not self.config.linear:
            raise ConfigError("this model has no linear path (VAEConfig.linear): nothing to start")
        k, r = self.latent_dim, min(start.components, self.latent_dim)
        like = self.enc_lin.weight

        def t(a: Any) -> torch.Tensor:
            return torch.as_tensor(a, dtype=like.dtype, device=like.device)

        for layer in (self.enc_lin, self.dec_lin):
            layer.weight.zero_()
            layer.bias.zero_()
        self.enc_lin.weight[:r] = t(start.encoder[:r])
        self.enc_lin.bias[:r] = -(t(start.encoder[:r]) @ t(start.centre))
        self.enc_lin.bias[k : k + r] = t(start.logvar[:r])
        self.dec_lin.weight[:, :r] = t(start.decoder[:, :r])
        self.dec_lin.bias.copy_(t(start.bias))
        noise = self.family.noise
        if noise is not None and isinstance(getattr(self, noise, None), nn.Parameter):
            param: torch.Tensor = getattr(self, noise)
            param.copy_(t(start.log_sigma).expand_as(param))

    def mean(self, out: torch.Tensor, library: torch.Tensor | float | None = None) -> torch.Tensor:
        """Mean of p(x|z) from decoder output, (..., D): probabilities, Gaussian means, or expected
        counts ``library * softmax(out)``.

        ``library`` (a number, or (..., 1) such as ``x.sum(-1, keepdim=True)``) is the total count of
        each sample (count likelihoods only); default the mean training library size ``library_mean``.
        """
        if library is None and self.is_count:
            library = self.library_mean
        return self.family.mean(out, library)

    def log_likelihood(
        self,
        x: torch.Tensor,
        out: torch.Tensor,
        log_sigma: torch.Tensor | None = None,
        log_theta: torch.Tensor | None = None,
        *,
        params: Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """``log p(x|z)`` summed over features: ``x`` (B, D), ``out`` (..., B, D) -> (..., B), by the
        family of ``config.likelihood`` (``zdim.likelihoods``).

        ``params`` overrides the decoder's own parameters by name ((D,) or (B, D)): nested models keep
        one per latent prefix, a stack one per member. ``log_sigma`` (the Gaussian noise scale) and
        ``log_theta`` (the NB inverse dispersion) are the same for those two names. Count likelihoods
        take each sample's library size from ``x`` itself (``x.sum(-1)``).
        """
        given = dict(params or {})
        for name, value in (("log_sigma", log_sigma), ("log_theta", log_theta)):
            if value is not None:
                given[name] = value
        own = {name: given[name] if name in given else self.decoder_param(name) for name in self.family.params}
        return self.family.log_prob(x, out, own)

    def decoder_param(self, name: str) -> torch.Tensor:
        """The decoder's own parameter ``name`` (of its family's ``params``), (D,)."""
        p: torch.Tensor = getattr(self, name)
        return p

    def noise_log_sigma(self) -> torch.Tensor:
        """The Gaussian decoder's log std per feature, (D,)."""
        return self.decoder_param("log_sigma")

    def noise_log_theta(self) -> torch.Tensor:
        """The NB decoder's log inverse dispersion per feature, (D,)."""
        return self.decoder_param("log_theta")

    @torch.no_grad()
    def track_library(self, x: torch.Tensor) -> None:
        """Fold the total counts of ``x`` (B, D) into ``library_mean`` (count likelihoods; else a no-op).

        ``elbo_terms`` calls it on every training batch, so after one epoch of ``fit`` the buffer holds
        the mean library size of the training rows it was fed (the training split, less a last partial
        batch that ``fit`` drops; later epochs average more draws of the same rows)."""
        if not self.is_count or x.shape[0] == 0:
            return
        n = float(x.shape[0])
        seen = self.library_seen + n
        self.library_mean += (x.sum(-1).mean().to(self.library_mean.dtype) - self.library_mean) * (n / seen)
        self.library_seen.copy_(seen)

    calibrates: bool = True  # whether ``elbo_terms(calibrate=True)`` calibrates the noise scale (a nested
    # model keeps one per prefix, learned; a user's model its own likelihood)

    def elbo_terms(
        self, x: torch.Tensor, generator: torch.Generator | None = None, offset: int = 0, *, calibrate: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Single-sample terms of the -ELBO of ``x`` (B, D): ``-log p(x|z)`` (B,) and KL per unit (B, K).

        ``offset`` is the index of ``x``'s first row in its data set (a nested model uses it to give
        every held-out row a fixed latent prefix). With ``calibrate`` the decoder's noise scale is the one
        that maximizes the likelihood of this batch given its decoded means (``Likelihood.calibrate``),
        not the model's parameter.
        """
        if self.training and getattr(self, "is_count", False):  # (benchmark adapters borrow this method)
            self.track_library(x)
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, generator)
        out = self.decode(z)
        if calibrate:
            ll = self.log_likelihood(x, out, params=self.family.calibrate(x, out))
        else:  # (the benchmark adapters' log_likelihood takes no params)
            ll = self.log_likelihood(x, out)
        return -ll, kl_per_unit(mu, logvar)

    def reparameterize(
        self, mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """One sample ``z = mu + sigma * eps`` with ``eps ~ N(0, I)``, shape of ``mu``."""
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder mean at the posterior mean: (B, D) -> (B, D); counts at each sample's own library."""
        mu, _ = self.encode(x)
        return self.mean(self.decode(mu), x.sum(-1, keepdim=True) if self.is_count else None)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Means of p(x|z) for ``n`` draws of ``z`` from the prior: (n, D); counts at ``library_mean``."""
        p = next(self.parameters())
        z = torch.randn((n, self.latent_dim), generator=generator, device=p.device, dtype=p.dtype)
        return self.mean(self.decode(z))

    @torch.no_grad()
    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior means (the latent representation): (B, D) -> (B, K)."""
        return self.encode(x)[0]


def _last_linear(seq: nn.Module) -> nn.Linear:
    """The last ``nn.Linear`` of an MLP (its output layer)."""
    return [m for m in seq.modules() if isinstance(m, nn.Linear)][-1]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def __getattr__(name: str) -> Any:
    """``zdim.models.vae.NestedVAE``, where it lived before ``zdim.models.nested`` (imported on first use:
    ``nested`` imports this module)."""
    if name == "NestedVAE":
        from .nested import NestedVAE

        return NestedVAE
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "VAE",
    "VAEConfig",
    "count_parameters",
    "kl_per_unit",
    "count_log_mean",
    "poisson_log_prob",
    "nb_log_prob",
    "LIKELIHOODS",
    "COUNT_LIKELIHOODS",
    "ARCHS",
]
