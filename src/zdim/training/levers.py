"""The wake-up levers' arithmetic on a Gaussian decoder's noise scale (issue 22).

``TrainConfig`` (``zdim.training.trainer``) says which levers act and when; this module computes what they set: the
decoder's noise-scale parameter (``noise_parameter``, the one its likelihood family names), its start
(``initial_log_sigma``: a number or the PCA residual, ``pca_log_sigma``) and its value at the release of
a hold (``residual_log_sigma``: the model's own reconstruction residual).
"""

from __future__ import annotations

import math

import torch

from ..likelihoods import find as find_likelihood
from ..models.nested import NestedVAE
from ..models.vae import VAE

SIGMA_FLOOR = 0.01  # the smallest noise scale sigma_init or the release of a held one sets
PCA_FLOOR = 0.1  # the smallest PCA start: at or above the linear rank the residual is 0, which an
# untrained decoder is far from (it would start with a huge reconstruction term)
SIGMA_MAX = 100.0


def noise_parameter(model: torch.nn.Module) -> torch.nn.Parameter | None:
    """The Gaussian decoder's ``log_sigma`` parameter of ``model`` (None for other likelihoods, or a model
    without one)."""
    family = find_likelihood(getattr(getattr(model, "config", None), "likelihood", None))
    if family is None or family.noise is None:
        return None
    p = getattr(model, family.noise, None)
    return p if isinstance(p, torch.nn.Parameter) else None


def _prefixes(model: VAE) -> list[int]:
    """The latent size of each row of the noise parameter: one row (the model's size) for a ``VAE``, one
    per prefix for a ``NestedVAE``."""
    return list(model.prefixes) if isinstance(model, NestedVAE) else [model.latent_dim]


@torch.no_grad()
def pca_log_sigma(x: torch.Tensor, k: int) -> torch.Tensor:
    """Per feature, the log root mean squared residual of ``x`` (N, D) reconstructed by its first ``k``
    principal components, at least ``log(PCA_FLOOR)``: (D,)."""
    x64 = x.double()
    xc = x64 - x64.mean(0)
    cov = xc.T @ xc / max(1, xc.shape[0])  # (D, D)
    evals, evecs = torch.linalg.eigh(cov)  # ascending
    kept = evals.shape[0] - min(k, evals.shape[0])  # the k largest are the last
    explained = (evecs[:, kept:].pow(2) * evals[kept:]).sum(1)  # (D,): variance the k components keep
    resid = (torch.diagonal(cov) - explained).clamp(min=PCA_FLOOR**2)
    out: torch.Tensor = (0.5 * resid.log()).to(x.dtype)
    return out


@torch.no_grad()
def residual_log_sigma(
    model: VAE, x: torch.Tensor, seed: int, chunk: int = 4096, floor: float = SIGMA_FLOOR
) -> torch.Tensor:
    """The log root mean squared residual per feature of ``x`` (N, D) reconstructed by ``model`` (one
    reparameterized sample of z per row, from a generator seeded with ``seed``: the global RNG is not
    touched), at least ``log(floor)``; shaped like the model's ``log_sigma`` (a ``NestedVAE`` gets
    one row per prefix). The noise scale that maximizes the expected Gaussian reconstruction term."""
    noise = noise_parameter(model)
    assert noise is not None
    sizes = _prefixes(model)
    gen = torch.Generator(device=x.device).manual_seed(seed)
    was_training = model.training
    model.eval()
    sq = torch.zeros(len(sizes), x.shape[1], dtype=torch.float64, device=x.device)
    units = torch.arange(model.latent_dim, device=x.device)
    for i in range(0, x.shape[0], chunk):
        xb = x[i : i + chunk]
        mu, logvar = model.encode(xb)
        z = model.reparameterize(mu, logvar, gen)
        for j, k in enumerate(sizes):
            zk = z * (units < k).to(z.dtype) if k < model.latent_dim else z
            sq[j] += (xb - model.mean(model.decode(zk))).double().pow(2).sum(0)
    model.train(was_training)
    resid = (sq / max(1, x.shape[0])).clamp(min=floor**2)
    return (0.5 * resid.log()).to(noise.dtype).reshape(noise.shape)


def initial_log_sigma(model: VAE, x: torch.Tensor, sigma_init: float | str) -> torch.Tensor:
    """The log noise scale ``sigma_init`` asks for, shaped like the model's ``log_sigma``."""
    noise = noise_parameter(model)
    assert noise is not None
    if sigma_init == "pca":
        rows = [pca_log_sigma(x, k) for k in _prefixes(model)]
        return torch.stack(rows).to(noise.dtype).reshape(noise.shape)
    return torch.full_like(noise, math.log(float(sigma_init)))


__all__ = [
    "SIGMA_FLOOR",
    "PCA_FLOOR",
    "SIGMA_MAX",
    "noise_parameter",
    "pca_log_sigma",
    "residual_log_sigma",
    "initial_log_sigma",
]
