"""Evaluation metrics: pure functions of tensors (and of a model, for the likelihood bounds).

Conventions: every quantity is in nats per sample, summed over features and latent units and averaged
over samples. ``-ELBO = rec + KL`` where ``rec = -E_q[log p(x|z)]``. For Gaussian data the likelihood is
that of the standardized features.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..likelihoods import LINEAR_MAX_FEATURES as LINEAR_MAX_FEATURES  # re-exported, where they used to live
from ..likelihoods import Reference as Reference
from ..likelihoods import get as get_likelihood
from ..models.vae import VAE, kl_per_unit

ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. 2016: Cov_x(E_q[u]) > 0.01
# importance samples of settle mode's per-epoch validation NLL (zdim.sweeps.executors.settle and .engines)
EVAL_K = 10
LOG_2PI = math.log(2.0 * math.pi)


def active_units(mu: torch.Tensor, threshold: float = ACTIVE_UNIT_THRESHOLD) -> int:
    """Number of units whose posterior mean varies over inputs: ``Var_x(mu_u) > threshold``.

    ``mu`` is (N, K), the posterior means of N inputs (Burda, Grosse & Salakhutdinov 2016).
    """
    if mu.shape[0] < 2:
        return 0
    return int((mu.double().var(dim=0, unbiased=False) > threshold).sum())


def unit_variances(mu: torch.Tensor) -> torch.Tensor:
    """Variance over inputs of each unit's posterior mean: (N, K) -> (K,)."""
    return mu.double().var(dim=0, unbiased=False).float()


def log_normal_std(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last axis: (..., K) -> (...)."""
    return -0.5 * (z.pow(2) + LOG_2PI).sum(-1)


def log_normal_diag(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last axis: (..., K) -> (...)."""
    return -0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + LOG_2PI).sum(-1)


def log_weights(
    model: VAE, x: torch.Tensor, k: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Importance weights of ``k`` posterior samples per input.

    Returns ``(log_w, log_px_z, mu, logvar)`` with ``log_w`` and ``log_px_z`` of shape (k, B) and
    ``log_w = log p(x|z) + log p(z) - log q(z|x)``.
    """
    mu, logvar = model.encode(x)  # (B, K)
    eps = torch.randn((k, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype)
    z = mu + torch.exp(0.5 * logvar) * eps  # (k, B, K)
    log_px_z = model.log_likelihood(x, model.decode(z))  # (k, B)
    log_w = log_px_z + log_normal_std(z) - log_normal_diag(z, mu, logvar)
    return log_w, log_px_z, mu, logvar


def iwae_bound(log_w: torch.Tensor) -> torch.Tensor:
    """Importance-weighted bound ``log (1/k) sum_i w_i`` from log weights (k, B) -> (B,)."""
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


def reconstruction_mse(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """Mean squared error per element between inputs and reconstructions, both (N, D)."""
    return float((x - x_hat).pow(2).mean())


@torch.no_grad()
def evaluate(
    model: VAE,
    x: torch.Tensor,
    *,
    k: int = 100,
    batch_size: int | None = None,
    seed: int = 0,
    threshold: float = ACTIVE_UNIT_THRESHOLD,
    per_sample: bool = False,
) -> dict[str, Any]:
    """Held-out metrics of ``model`` on ``x`` (N, D).

    Returns a dict with ``nll`` (IWAE bound with ``k`` samples, negated), ``neg_elbo``, ``rec``
    (``-E_q log p(x|z)``, estimated with the same ``k`` samples), ``kl`` (analytic), ``kl_per_unit``
    (list of K floats), ``active_units``, ``unit_variance`` (list of K), ``mse`` (decoder mean at
    the posterior mean) and ``n``. Batches hold at most ``batch_size`` inputs (default: about
    20k samples of z at once). With ``per_sample``, also ``nll_per_sample``: the (N,) float64 tensor
    whose mean is ``nll`` (paired across models evaluated on the same ``x``).
    """
    model.eval()
    dev = next(model.parameters()).device
    n = x.shape[0]
    bs = batch_size or max(1, 20000 // max(k, 1))
    gen = torch.Generator(device=dev).manual_seed(seed)
    nll_sum = rec_sum = se_sum = 0.0
    kl_units = torch.zeros(model.latent_dim, dtype=torch.float64, device=dev)
    mus, nlls = [], []
    for start in range(0, n, bs):
        xb = x[start : start + bs].to(dev, non_blocking=True).float()
        log_w, log_px_z, mu, logvar = log_weights(model, xb, k, gen)
        bound = iwae_bound(log_w).double()  # (B,)
        nll_sum -= float(bound.sum())
        if per_sample:
            nlls.append(-bound.cpu())
        rec_sum -= float(log_px_z.double().mean(0).sum())
        kl_units += kl_per_unit(mu, logvar).double().sum(0)
        se_sum += float((xb - model.mean(model.decode(mu))).double().pow(2).sum())
        mus.append(mu.float().cpu())
    mu_all = torch.cat(mus)
    klu = (kl_units / n).cpu()
    kl = float(klu.sum())
    rec = rec_sum / n
    extra = {"nll_per_sample": torch.cat(nlls)} if per_sample else {}
    return {
        "nll": nll_sum / n,
        "neg_elbo": rec + kl,
        "rec": rec,
        "kl": kl,
        "kl_per_unit": [float(v) for v in klu],
        "active_units": active_units(mu_all, threshold),
        "unit_variance": [float(v) for v in unit_variances(mu_all)],
        "mse": se_sum / (n * x.shape[1]),
        "n": n,
        "k": k,
        **extra,
    }


@torch.no_grad()
def neg_elbo(model: VAE, x: torch.Tensor, batch_size: int = 4096, seed: int = 0) -> float:
    """Single-sample -ELBO with analytic KL, mean over ``x`` (N, D): the validation loss."""
    model.eval()
    dev = next(model.parameters()).device
    gen = torch.Generator(device=dev).manual_seed(seed)
    total = 0.0
    for start in range(0, x.shape[0], batch_size):
        xb = x[start : start + batch_size].to(dev, non_blocking=True).float()
        rec, kl_units = model.elbo_terms(xb, gen, offset=start)
        total += float((rec + kl_units.sum(-1)).double().sum())
    return total / x.shape[0]


def reference(train: torch.Tensor, test: torch.Tensor, likelihood: str, chunk: int = 4096) -> Reference | None:
    """The ``Reference`` models of a data set (``train`` (M, D), ``test`` (N, D)) under ``likelihood``
    (its family's ``reference``), or None for a family without one. Both splits are read in chunks of
    ``chunk`` rows (no float64 copy of either)."""
    return get_likelihood(likelihood).reference(train, test, chunk)
