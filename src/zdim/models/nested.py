"""``NestedVAE``: one VAE that serves every latent size of a grid (nested mode, ``zdim.sweeps.executors.nested``),
each size cut out of it as a plain ``zdim.models.vae.VAE`` (``prefix_model``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn

from ..errors import ConfigError
from .vae import VAE, VAEConfig, kl_per_unit


class NestedVAE(VAE):
    """One VAE that serves every latent size of a grid (nested dropout / Matryoshka style).

    The latent size is the largest of ``prefixes``. Each training sample draws one prefix length k
    from ``prefixes`` (uniformly): units beyond k are zeroed before the decoder and their KL is not
    charged, so the first k units learn to work as a size-k model for every k of the grid. A Gaussian
    decoder keeps one noise scale per prefix (a shared one biases the curve: small prefixes want a
    larger noise than large ones; an NB decoder likewise keeps one dispersion per prefix).
    ``prefix_model(k)`` cuts out the size-k model as a plain ``VAE``
    that computes exactly what this model computes with prefix k.

    Parameters
    ----------
    config : VAEConfig
        The architecture; its ``latent_dim`` must equal ``max(prefixes)``.
    prefixes : sequence of int
        The latent sizes served, each in ``[1, config.latent_dim]``.
    """

    _sizes: torch.Tensor
    _units: torch.Tensor
    calibrates = False  # one noise scale per prefix, learned

    def __init__(self, config: VAEConfig, prefixes: Sequence[int]) -> None:
        sizes = sorted({int(k) for k in prefixes})
        if not sizes or sizes[-1] != config.latent_dim or sizes[0] < 1:
            raise ConfigError(
                f"nested prefixes {list(prefixes)} must be positive sizes whose largest is the latent size "
                f"{config.latent_dim}"
            )
        super().__init__(config)
        self.prefixes = tuple(sizes)
        # per-step constants kept on the model's device (not rebuilt from Python each step; not saved)
        self.register_buffer("_sizes", torch.tensor(sizes), persistent=False)  # (P,)
        self.register_buffer("_units", torch.arange(config.latent_dim), persistent=False)  # (K,)
        for name in config.family.params:  # one row per prefix: (P, D)
            setattr(self, name, nn.Parameter(torch.zeros(len(sizes), config.input_dim)))

    def decoder_param(self, name: str) -> torch.Tensor:
        """The decoder's parameter ``name`` of the full-size prefix, (D,)."""
        p: torch.Tensor = getattr(self, name)[-1]
        return p

    def elbo_terms(
        self, x: torch.Tensor, generator: torch.Generator | None = None, offset: int = 0, *, calibrate: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """As ``VAE.elbo_terms`` (the noise scales are learned: ``calibrate`` is not used), each row with its own
        prefix: drawn at random while training, row ``i`` of a data set gets prefix ``i mod P`` in eval mode
        (a fixed, balanced validation)."""
        b, p = x.shape[0], len(self.prefixes)
        if self.training:
            idx = torch.randint(p, (b,), generator=generator, device=x.device)
        else:
            idx = (torch.arange(b, device=x.device) + offset) % p
        mask = (self._units < self._sizes[idx][:, None]).to(x.dtype)  # (B, K): unit j kept when j < k
        if self.training:
            self.track_library(x)
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, generator) * mask
        params = {name: getattr(self, name)[idx] for name in self.family.params}  # each row its prefix's
        rec = -self.log_likelihood(x, self.decode(z), params=params)
        return rec, kl_per_unit(mu, logvar) * mask

    def prefix_model(self, k: int) -> VAE:
        """The size-``k`` model: first ``k`` latent units, their decoder weights, prefix ``k``'s noise
        (or NB dispersion); the library-size buffers are shared."""
        if k not in self.prefixes:
            raise ConfigError(f"latent size {k} is not one of the nested sizes {list(self.prefixes)}")
        big = self.latent_dim
        enc = [n for n, m in self.encoder.named_modules() if isinstance(m, nn.Linear)][-1]
        dec = [n for n, m in self.decoder.named_modules() if isinstance(m, nn.Linear)][0]
        rows = (f"encoder.{enc}.", "enc_lin.")  # the layers that output the K means, then the K log-variances
        columns = (f"decoder.{dec}.weight", "dec_lin.weight")  # the layers that read z
        state = {}
        for name, t in self.state_dict().items():
            if name.startswith(rows):
                t = torch.cat([t[:k], t[big : big + k]])
            elif name in columns:
                t = t[:, :k]
            elif name in self.family.params:
                t = t[self.prefixes.index(k)]
            state[name] = t.detach().clone()
        small = VAE(replace(self.config, latent_dim=k))
        small.load_state_dict(state)
        p = next(self.parameters())
        return small.to(device=p.device, dtype=p.dtype).eval()


__all__ = ["NestedVAE"]
