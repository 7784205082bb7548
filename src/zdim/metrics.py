"""Evaluation metrics: pure functions of tensors (and of a model, for the likelihood bounds).

Conventions: every quantity is in nats per sample, summed over features and latent units and averaged
over samples. ``-ELBO = rec + KL`` where ``rec = -E_q[log p(x|z)]``. For Gaussian data the likelihood is
that of the standardized features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .models import VAE, kl_per_unit

ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. 2016: Cov_x(E_q[u]) > 0.01
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


LINEAR_MAX_FEATURES = 4096  # above this many features the linear reference (an eigendecomposition) is skipped


@dataclass(frozen=True)
class Reference:
    """What a VAE of a data set must beat, per test sample (nats): the model that ignores its latents
    and decodes the feature means (``baseline``), and, for Gaussian data, probabilistic PCA with ``k``
    components (``linear(k)``), the best linear-Gaussian model of that size (Tipping & Bishop 1999). Both
    are fitted by maximum likelihood on the training split and evaluated on the test split.

    A VAE that does not beat ``baseline`` learned nothing its latents carry; one that stays above
    ``linear(k)`` at size ``k`` has not found even the linear structure of its data.
    """

    likelihood: str
    baseline: np.ndarray  # (N,) float64
    projected: np.ndarray | None = None  # (N, D) test samples in the training split's principal axes
    eigenvalues: np.ndarray | None = None  # (D,) descending

    def linear(self, k: int) -> np.ndarray | None:
        """(N,) test NLL of probabilistic PCA with ``k`` components (None: not Gaussian, or too wide)."""
        if self.projected is None or self.eigenvalues is None or not 0 < k < len(self.eigenvalues):
            return None
        lam = np.maximum(self.eigenvalues, 1e-12)
        sigma2 = max(float(lam[k:].mean()), 1e-12)  # the ML noise variance: the discarded directions' mean
        d = len(lam)
        quad = (self.projected[:, :k] ** 2 / lam[:k]).sum(1) + (self.projected[:, k:] ** 2).sum(1) / sigma2
        logdet = float(np.log(lam[:k]).sum()) + (d - k) * math.log(sigma2)
        out: np.ndarray = 0.5 * (d * LOG_2PI + logdet + quad)
        return out


def _moments(train: torch.Tensor, chunk: int, cross: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Column sums of ``train`` (M, D), of its squares, and (``cross``) its cross products, in float64 over
    row chunks: no float64 copy of the whole split."""
    d = train.shape[1]
    s1 = torch.zeros(d, dtype=torch.float64)
    s2 = torch.zeros(d, dtype=torch.float64)
    xx = torch.zeros((d, d), dtype=torch.float64) if cross else None
    for start in range(0, train.shape[0], chunk):
        xb = train[start : start + chunk].to("cpu", torch.float64)
        s1 += xb.sum(0)
        s2 += (xb * xb).sum(0)
        if xx is not None:
            xx += xb.T @ xb
    return s1.numpy(), s2.numpy(), xx.numpy() if xx is not None else None


def _rows(test: torch.Tensor, chunk: int) -> Any:
    """``test`` (N, D) in float64 NumPy chunks of ``chunk`` rows."""
    for start in range(0, test.shape[0], chunk):
        yield test[start : start + chunk].to("cpu", torch.float64).numpy()


def reference(train: torch.Tensor, test: torch.Tensor, likelihood: str, chunk: int = 4096) -> Reference | None:
    """The ``Reference`` models of a data set (``train`` (M, D), ``test`` (N, D)), or None for a likelihood
    without one here (the negative binomial's dispersion would need fitting). Both splits are read in
    chunks of ``chunk`` rows (no float64 copy of either)."""
    m = int(train.shape[0])
    if likelihood == "gaussian":
        cross = train.shape[1] <= LINEAR_MAX_FEATURES and m >= 2
        s1, s2, xx = _moments(train, chunk, cross)
        if not (np.isfinite(s2).all() and (xx is None or np.isfinite(xx).all())):
            return None  # data zdim refuses to train on anyway (a NaN): nothing to compare with
        mean = s1 / m
        # the unbiased variance and covariance, as scikit-learn's PCA
        var = np.maximum((s2 - m * mean**2) / max(m - 1, 1), 1e-12)
        baseline = np.concatenate(
            [0.5 * (LOG_2PI + np.log(var) + (t - mean) ** 2 / var).sum(1) for t in _rows(test, chunk)]
        )
        if xx is None:
            return Reference(likelihood, baseline)
        cov = (xx - m * np.outer(mean, mean)) / (m - 1)
        evals, evecs = np.linalg.eigh(cov)  # ascending
        order = np.argsort(evals)[::-1]
        projected = np.concatenate([(t - mean) @ evecs[:, order] for t in _rows(test, chunk)])
        return Reference(likelihood, baseline, projected, evals[order])
    if likelihood == "bernoulli":
        s1, _, _ = _moments(train, chunk, False)
        p = np.clip(s1 / m, 1e-6, 1 - 1e-6)
        lp, lq = np.log(p), np.log1p(-p)
        return Reference(likelihood, np.concatenate([-(t @ lp + (1 - t) @ lq) for t in _rows(test, chunk)]))
    if likelihood == "poisson":  # the library size of each sample given, the feature proportions learned
        s1, _, _ = _moments(train, chunk, False)
        log_rho = np.log(np.maximum(s1, 1e-12) / max(float(s1.sum()), 1e-12))
        parts = []
        for t in _rows(test, chunk):
            log_mu = np.log(np.maximum(t.sum(1, keepdims=True), 1e-8)) + log_rho
            lgamma = torch.lgamma(torch.from_numpy(t + 1.0)).numpy()
            parts.append(-(t * log_mu - np.exp(log_mu) - lgamma).sum(1))
        return Reference(likelihood, np.concatenate(parts))
    return None
