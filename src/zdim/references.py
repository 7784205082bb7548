"""The reference models a VAE of a data set is read against: the model that decodes the feature means
(``Reference.baseline``) and probabilistic PCA of each size (``Reference.linear``, Tipping & Bishop 1999),
and the PPCA solution a member's linear path starts at (``LinearStart``, ``ppca``).

The likelihood families (``zdim.likelihoods``) fit these on the training split; this module holds the
linear algebra only. It imports torch only inside the functions that read tensors.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

LOG_2PI = math.log(2.0 * math.pi)


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
        """(N,) test NLL of probabilistic PCA with ``k`` components (None: not Gaussian, or too wide). From
        ``D - 1`` components on it is the full-covariance Gaussian (``full``): the best linear model of
        every size at least that."""
        if self.projected is None or self.eigenvalues is None or k < 1 or len(self.eigenvalues) < 2:
            return None
        k = min(k, len(self.eigenvalues) - 1)
        lam = np.maximum(self.eigenvalues, 1e-12)
        sigma2 = max(float(lam[k:].mean()), 1e-12)  # the ML noise variance: the discarded directions' mean
        d = len(lam)
        quad = (self.projected[:, :k] ** 2 / lam[:k]).sum(1) + (self.projected[:, k:] ** 2).sum(1) / sigma2
        logdet = float(np.log(lam[:k]).sum()) + (d - k) * math.log(sigma2)
        out: np.ndarray = 0.5 * (d * LOG_2PI + logdet + quad)
        return out

    def full(self) -> np.ndarray | None:
        """(N,) test NLL of the full-covariance Gaussian of the training split (None: not Gaussian, or too
        wide): the best of every linear model."""
        return None if self.eigenvalues is None else self.linear(len(self.eigenvalues))


@dataclass(frozen=True)
class LinearStart:
    """Probabilistic PCA of a data set's numeric columns, as the linear path of a VAE of size ``k``
    (Tipping & Bishop 1999; Lucas et al. 2019, "Don't blame the ELBO!": PPCA is the optimum of a VAE with
    a linear decoder). With loadings ``W = U (L - s2)^1/2`` the posterior of PPCA is exact and diagonal:
    ``q(z|x) = N(L^-1 (L - s2)^1/2 U^T (x - mean), s2 L^-1)``, so a VAE whose encoder and decoder are these
    maps has an ELBO equal to the PPCA likelihood: it starts where the linear model ends.

    Arrays are float64 over the ``D`` encoded features; the ``r = min(k, g - 1)`` components come from
    the ``g`` leading numeric columns (``Likelihood.numbers``), the rest of the rows are zero (and a mixed
    table's other columns start at their marginal logits, ``bias``).
    """

    bias: np.ndarray  # (D,) the decoder's bias: the numeric columns' means (and the other columns' logits)
    decoder: np.ndarray  # (D, r) loadings W
    encoder: np.ndarray  # (r, D) the posterior mean is encoder @ (x - centre)
    centre: np.ndarray  # (D,) the numeric columns' means (0 elsewhere)
    logvar: np.ndarray  # (r,) the posterior log-variance, log(s2 / L)
    log_sigma: np.ndarray  # (D,) log sqrt(s2) on the numeric columns (0 elsewhere)

    @property
    def components(self) -> int:
        return int(self.decoder.shape[1])


def ppca(mean: np.ndarray, cov: np.ndarray, k: int, floor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Probabilistic PCA of a Gaussian (``mean`` (g,), ``cov`` (g, g)) with ``r = min(k, g - 1)``
    components: loadings ``W`` (g, r), the posterior map ``A`` (r, g), the posterior variances (r,) and the
    noise variance ``s2`` (the mean of the discarded eigenvalues, at least ``floor``)."""
    g = len(mean)
    evals, evecs = np.linalg.eigh(cov)  # ascending
    order = np.argsort(evals)[::-1]
    lam, u = np.maximum(evals[order], 0.0), evecs[:, order]
    r = max(0, min(k, g - 1))
    s2 = max(float(lam[r:].mean()) if r < g else floor, floor)
    top = np.maximum(lam[:r], s2 * (1.0 + 1e-6))  # a component no larger than the noise is (nearly) unused
    scale = np.sqrt(top - s2)
    w = u[:, :r] * scale
    a = (u[:, :r] * (scale / top)).T
    return w, a, s2 / top, s2


def _moments(train: torch.Tensor, chunk: int, cross: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Column sums of ``train`` (M, D), of its squares, and (``cross``) its cross products, in float64 over
    row chunks: no float64 copy of the whole split."""
    import torch

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


def _rows(test: torch.Tensor, chunk: int) -> Iterator[np.ndarray]:
    """``test`` (N, D) in float64 NumPy chunks of ``chunk`` rows."""
    import torch

    for start in range(0, test.shape[0], chunk):
        yield test[start : start + chunk].to("cpu", torch.float64).numpy()


__all__ = ["LOG_2PI", "Reference", "LinearStart", "ppca"]
