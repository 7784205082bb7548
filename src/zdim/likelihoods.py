"""Decoder likelihoods: one class per family, and the registry of the names users type.

A family owns everything zdim does differently for it: the decoder's own parameters (``params``, each
``(D,)`` and started at 0: the Gaussian noise scale, the negative binomial dispersion), the
log-probability of a sample given the decoder output (``log_prob``), the mean of ``p(x|z)`` (``mean``),
what the encoder sees (``encoder_input``), the check of the data's values (``check_range``, ``counts``),
how the data are prepared (``counts``: raw, never scaled; ``standardized``: training-split statistics),
the reference model a VAE must beat (``reference``) and the defaults of the wake-up levers
(``wakeup``, ``noise``). Nothing else in zdim compares a likelihood's name: it asks the family.

Adding a family is one class here (its name in ``REGISTRY``; ``--likelihood`` and ``likelihood=``
accept it at once) and its test; ``ContinuousBernoulli`` is the example.

This module imports torch only inside the methods that compute, so the names (``NAMES``, read by the
command line's option parser through ``zdim.formats``) cost no torch import.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from .errors import ConfigError, DataError
from .references import LOG_2PI as LOG_2PI  # re-exported: the references lived here
from .references import LinearStart as LinearStart
from .references import Reference as Reference
from .references import _moments, _rows
from .references import ppca as ppca

if TYPE_CHECKING:
    import torch

MIN_LOG_SIGMA = -6.0  # floor on the Gaussian decoder's log std: stops the likelihood running to +inf
LOG_THETA_RANGE = (-10.0, 10.0)  # bounds on the NB log inverse dispersion: lgamma stays accurate in float32
COUNT_EPS = 1e-8  # inside log(library): an all-zero sample keeps a finite log-mean
NOISE_MODES = ("calibrated", "learned")  # how a Gaussian decoder's noise scale is set (TrainConfig.noise)
LINEAR_MAX_FEATURES = 4096  # wider Gaussian data get no probabilistic-PCA reference (a D x D eigenproblem)
CB_LAMBDA_MIN = 1e-6  # the continuous Bernoulli's parameter is kept in [CB_LAMBDA_MIN, 1 - CB_LAMBDA_MIN]
CB_LOGIT_MAX = math.log((1.0 - CB_LAMBDA_MIN) / CB_LAMBDA_MIN)  # the same bound on its logit (13.8)
CB_TAYLOR = 0.1  # |logit| below which the continuous Bernoulli's normalizer and mean use their series


# ----------------------------------------------------------------------------------- the families


class Likelihood:
    """A decoder likelihood ``p(x|z)``: the base of every family (see the module docstring).

    ``out`` is the decoder's output, (..., B, D); its meaning is the family's (logits, means, or logits
    of feature proportions). Instances hold no state: ``REGISTRY`` keeps one of each.
    """

    name: ClassVar[str]  # what --likelihood and likelihood= take, and what records and model.json keep
    params: ClassVar[tuple[str, ...]] = ()  # the decoder's own per-feature parameters, each (D,), start 0
    counts: ClassVar[bool] = False  # raw non-negative integer counts: never scaled, library size per sample
    unit_interval: ClassVar[bool] = False  # values in [0, 1] only
    binary: ClassVar[bool] = False  # a likelihood of 0/1 values: grey levels may be binarized for it
    standardized: ClassVar[bool] = False  # features standardized with the training split's statistics
    density: ClassVar[bool] = False  # a density of real values (not a probability of discrete ones)
    # whether a share of the best NLL is a tolerance a user can read (zdim.answer.rules.tolerance): true where the
    # NLL is a code length (discrete values) or is measured on standardized features; false for a density
    # whose NLL runs to large negative values with no natural scale (there: the share of the NLL range only)
    relative_tolerance: ClassVar[bool] = True
    noise: ClassVar[str | None] = None  # the parameter the noise-scale levers set (``--sigma-init``)
    wakeup: ClassVar[Mapping[str, float | str]] = {}  # the wake-up levers' values when left at "auto"

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the encoder sees of ``x`` (B, D)."""
        return x

    def mean(self, out: torch.Tensor, library: torch.Tensor | float | None = None) -> torch.Tensor:
        """Mean of ``p(x|z)`` from the decoder output, (..., D); ``library`` is each sample's total count
        (count families only)."""
        return out

    def log_prob(self, x: torch.Tensor, out: torch.Tensor, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``log p(x|z)`` summed over features: ``x`` (B, D), ``out`` (..., B, D) -> (..., B). ``params``
        holds one tensor per name of ``params`` (broadcast with ``out``)."""
        raise NotImplementedError

    def check_range(self, low: float, high: float, where: str) -> None:
        """A ``DataError`` when data whose values span ``[low, high]`` cannot have this likelihood."""
        if self.unit_interval and not (low >= 0.0 and high <= 1.0):
            raise DataError(
                f"{where}: likelihood '{self.name}' needs values in [0, 1], found [{low:g}, "
                f"{high:g}]: pass --likelihood gaussian (or auto), or rescale the data to [0, 1]"
            )

    def reference(self, train: torch.Tensor, test: torch.Tensor, chunk: int = 4096) -> Reference | None:
        """The ``Reference`` models of a data set (``train`` (M, D), ``test`` (N, D), read in chunks of
        ``chunk`` rows), or None where this family has none."""
        return None

    def numbers(self, width: int) -> int:
        """How many of the ``width`` encoded features, from the first, are real values under a Gaussian
        (the columns a linear start and a calibrated noise scale act on): none by default."""
        return 0

    def linear_start(self, train: torch.Tensor, k: int, chunk: int = 4096) -> LinearStart | None:
        """The ``LinearStart`` of a size-``k`` VAE on ``train`` (M, D): probabilistic PCA of the numeric
        columns (``numbers``), fitted by maximum likelihood on the training split; None where this family
        has no numeric columns, or more than ``LINEAR_MAX_FEATURES`` of them (a g x g eigenproblem)."""
        m, d = int(train.shape[0]), int(train.shape[1])
        g = self.numbers(d)
        if g == 0 or g > LINEAR_MAX_FEATURES or m < 2:
            return None
        s1, _, xx = _moments(train[:, :g], chunk, True)
        assert xx is not None
        if not (np.isfinite(s1).all() and np.isfinite(xx).all()):
            return None
        mean = s1 / m
        cov = (xx - m * np.outer(mean, mean)) / (m - 1)
        w, a, post_var, s2 = ppca(mean, cov, k, math.exp(2.0 * MIN_LOG_SIGMA))
        r = w.shape[1]
        decoder, encoder = np.zeros((d, r)), np.zeros((r, d))
        decoder[:g], encoder[:, :g] = w, a
        centre, log_sigma = np.zeros(d), np.zeros(d)
        centre[:g], log_sigma[:g] = mean, 0.5 * math.log(s2)
        bias = centre.copy()
        self._start_bias(bias, train, chunk)
        return LinearStart(bias, decoder, encoder, centre, np.log(post_var), log_sigma)

    def _start_bias(self, bias: np.ndarray, train: torch.Tensor, chunk: int) -> None:
        """Set the decoder bias of the columns that are not numbers (a mixed table's), in place."""

    def calibrate(self, x: torch.Tensor, out: torch.Tensor) -> dict[str, torch.Tensor] | None:
        """The decoder's noise scale that maximizes the likelihood of ``x`` (B, D) given the decoder output
        ``out`` (..., B, D), in closed form (Rybkin, Daniilidis & Levine 2021, "calibrated decoders"): per
        numeric column the log root mean squared residual over every leading axis, at least
        ``MIN_LOG_SIGMA``; (D,) as ``params`` takes it, not a parameter of the graph (detached). None where
        the family has no noise scale to calibrate."""
        import torch

        g = self.numbers(int(x.shape[-1]))
        if g == 0 or self.noise is None:
            return None
        with torch.no_grad():
            sq = (x[..., :g] - out[..., :g]).pow(2).reshape(-1, g).mean(0)
            log_sigma = torch.zeros(x.shape[-1], dtype=out.dtype, device=out.device)
            log_sigma[:g] = 0.5 * sq.clamp(min=math.exp(2.0 * MIN_LOG_SIGMA)).log()
        return {self.noise: log_sigma}


class Bernoulli(Likelihood):
    """Binary values (or grey levels in [0, 1] read as probabilities): ``out`` are logits."""

    name = "bernoulli"
    unit_interval = True
    binary = True

    def mean(self, out: torch.Tensor, library: torch.Tensor | float | None = None) -> torch.Tensor:
        import torch

        return torch.sigmoid(out)

    def log_prob(self, x: torch.Tensor, out: torch.Tensor, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        import torch.nn.functional as F

        x = x.expand_as(out)
        return -F.binary_cross_entropy_with_logits(out, x, reduction="none").sum(-1)

    def reference(self, train: torch.Tensor, test: torch.Tensor, chunk: int = 4096) -> Reference | None:
        s1, _, _ = _moments(train, chunk, False)
        p = np.clip(s1 / int(train.shape[0]), 1e-6, 1 - 1e-6)
        lp, lq = np.log(p), np.log1p(-p)
        return Reference(self.name, np.concatenate([-(t @ lp + (1 - t) @ lq) for t in _rows(test, chunk)]))


class Gaussian(Likelihood):
    """Real values, standardized: ``out`` are means, with a learned per-feature noise scale
    ``log_sigma`` (floored at ``MIN_LOG_SIGMA``), calibrated from the residuals by default
    (``calibrate``). A model with the linear start has its noise scale held at 0.1 for its first epoch
    (issues 22 and 36, ``benchmarks/validate/reach.py``)."""

    name = "gaussian"
    params = ("log_sigma",)
    standardized = True
    density = True
    noise = "log_sigma"
    wakeup = {"sigma_init": 0.1, "sigma_warmup_epochs": 1.0, "sigma_after": 0}

    def numbers(self, width: int) -> int:
        return width

    def log_prob(self, x: torch.Tensor, out: torch.Tensor, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        import torch

        log_sigma = params["log_sigma"].clamp(min=MIN_LOG_SIGMA)
        z2 = ((x - out) * torch.exp(-log_sigma)) ** 2
        return -(0.5 * z2 + log_sigma + 0.5 * LOG_2PI).sum(-1)

    def reference(self, train: torch.Tensor, test: torch.Tensor, chunk: int = 4096) -> Reference | None:
        m = int(train.shape[0])
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
            return Reference(self.name, baseline)
        cov = (xx - m * np.outer(mean, mean)) / (m - 1)
        evals, evecs = np.linalg.eigh(cov)  # ascending
        order = np.argsort(evals)[::-1]
        projected = np.concatenate([(t - mean) @ evecs[:, order] for t in _rows(test, chunk)])
        return Reference(self.name, baseline, projected, evals[order])


class _Counts(Likelihood):
    """Raw counts, as scVI (Lopez et al. 2018): the encoder sees ``log1p(x)``, ``out`` are logits of the
    feature proportions ``rho = softmax(out)`` and the mean is ``library * rho``, ``library = x.sum(-1)``."""

    counts = True

    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        import torch

        return torch.log1p(x)

    def mean(self, out: torch.Tensor, library: torch.Tensor | float | None = None) -> torch.Tensor:
        import torch

        return torch.softmax(out, dim=-1) * (1.0 if library is None else library)


class Poisson(_Counts):
    """Counts with variance equal to their mean."""

    name = "poisson"

    def log_prob(self, x: torch.Tensor, out: torch.Tensor, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return poisson_log_prob(x, count_log_mean(x, out)).sum(-1)

    def reference(self, train: torch.Tensor, test: torch.Tensor, chunk: int = 4096) -> Reference | None:
        """The library size of each sample given, the feature proportions learned."""
        import torch

        s1, _, _ = _moments(train, chunk, False)
        log_rho = np.log(np.maximum(s1, 1e-12) / max(float(s1.sum()), 1e-12))
        parts = []
        for t in _rows(test, chunk):
            log_mu = np.log(np.maximum(t.sum(1, keepdims=True), 1e-8)) + log_rho
            lgamma = torch.lgamma(torch.from_numpy(t + 1.0)).numpy()
            parts.append(-(t * log_mu - np.exp(log_mu) - lgamma).sum(1))
        return Reference(self.name, np.concatenate(parts))


class NegativeBinomial(_Counts):
    """Overdispersed counts, with a learned per-feature inverse dispersion ``theta = exp(log_theta)``
    (kept in ``LOG_THETA_RANGE``). No reference model: its dispersion would need fitting."""

    name = "nb"
    params = ("log_theta",)

    def log_prob(self, x: torch.Tensor, out: torch.Tensor, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return nb_log_prob(x, count_log_mean(x, out), params["log_theta"].clamp(*LOG_THETA_RANGE)).sum(-1)


class ContinuousBernoulli(Likelihood):
    """Grey levels in [0, 1], normalized (Loaiza-Ganem & Cunningham 2019): ``out`` are logits ``eta`` of
    ``lambda = sigmoid(eta)`` and ``p(x) = C(lambda) lambda^x (1 - lambda)^(1 - x)`` on [0, 1], with
    ``C(lambda) = 2 atanh(1 - 2 lambda) / (1 - 2 lambda)`` (2 at lambda = 1/2). The Bernoulli likelihood
    of grey levels is not a density; this one is, so its NLL is a proper one.

    ``lambda`` is kept in ``[CB_LAMBDA_MIN, 1 - CB_LAMBDA_MIN]`` (the logit clamped at ``CB_LOGIT_MAX``):
    at exact 0 or 1 the density grows without bound as lambda runs to 0 or 1. The mean of ``p(x|z)`` is
    not ``lambda`` but ``1 / (1 - exp(-eta)) - 1 / eta``."""

    name = "continuous-bernoulli"
    unit_interval = True
    density = True
    relative_tolerance = False  # MNIST: NLL near -1700 nats, so 1% of it would be 17 nats

    def mean(self, out: torch.Tensor, library: torch.Tensor | float | None = None) -> torch.Tensor:
        return cb_mean(out.clamp(-CB_LOGIT_MAX, CB_LOGIT_MAX))

    def log_prob(self, x: torch.Tensor, out: torch.Tensor, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        import torch.nn.functional as F

        eta = out.clamp(-CB_LOGIT_MAX, CB_LOGIT_MAX)
        x = x.expand_as(eta)
        return (cb_log_norm(eta) - F.binary_cross_entropy_with_logits(eta, x, reduction="none")).sum(-1)

    def reference(self, train: torch.Tensor, test: torch.Tensor, chunk: int = 4096) -> Reference | None:
        """One ``lambda`` per feature, fitted by maximum likelihood (the model's mean equals the feature's
        training mean, within the clamp: an exponential family in ``eta``)."""
        import torch

        s1, _, _ = _moments(train, chunk, False)
        target = s1 / int(train.shape[0])
        lo, hi = np.full_like(target, -CB_LOGIT_MAX), np.full_like(target, CB_LOGIT_MAX)
        for _ in range(60):  # bisection: the mean increases with eta
            mid = 0.5 * (lo + hi)
            below = cb_mean(torch.from_numpy(mid)).numpy() < target
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        eta = torch.from_numpy(0.5 * (lo + hi))
        parts = [-self.log_prob(torch.from_numpy(t), eta.expand(len(t), -1), {}).numpy() for t in _rows(test, chunk)]
        return Reference(self.name, np.concatenate(parts))


# ----------------------------------------------------------------------------------- the arithmetic


def count_log_mean(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``log mu = log(library + eps) + log_softmax(out)`` with ``library = x.sum(-1)``: ``x`` (B, D),
    ``out`` (..., B, D) -> (..., B, D). Exact in the log domain: a proportion that underflows in
    ``softmax`` keeps a finite log."""
    import torch

    library = x.sum(-1, keepdim=True)  # (B, 1)
    return torch.log(library + COUNT_EPS) + torch.log_softmax(out, dim=-1)


def poisson_log_prob(x: torch.Tensor, log_mu: torch.Tensor) -> torch.Tensor:
    """Elementwise ``log Poisson(x; mu) = x log(mu) - mu - lgamma(x + 1)`` from ``log_mu``."""
    import torch

    return x * log_mu - torch.exp(log_mu) - torch.lgamma(x + 1.0)


def nb_log_prob(x: torch.Tensor, log_mu: torch.Tensor, log_theta: torch.Tensor) -> torch.Tensor:
    """Elementwise negative binomial log-probability with mean ``mu`` and inverse dispersion ``theta``
    (variance ``mu + mu^2 / theta``), from ``log_mu`` and ``log_theta`` (broadcast together):

    ``lgamma(x + theta) - lgamma(theta) - lgamma(x + 1) + theta log(theta / (theta + mu))
    + x log(mu / (theta + mu))``, the two logs computed as ``-softplus(log mu - log theta)`` and
    ``-softplus(log theta - log mu)`` (no cancellation for any ratio of mu to theta). The same as
    ``scipy.stats.nbinom(n=theta, p=theta / (theta + mu)).logpmf(x)``.
    """
    import torch
    import torch.nn.functional as F

    theta = torch.exp(log_theta)
    return (
        torch.lgamma(x + theta)
        - torch.lgamma(theta)
        - torch.lgamma(x + 1.0)
        - theta * F.softplus(log_mu - log_theta)
        - x * F.softplus(log_theta - log_mu)
    )


def cb_log_norm(eta: torch.Tensor) -> torch.Tensor:
    """Elementwise ``log C(lambda)`` of the continuous Bernoulli from the logit ``eta`` of ``lambda``.

    With ``1 - 2 lambda = -tanh(eta / 2)`` and ``2 atanh(1 - 2 lambda) = -eta``,
    ``C = 2 atanh(1 - 2 lambda) / (1 - 2 lambda) = eta / tanh(eta / 2)``, positive and finite for every
    ``eta != 0`` (no division of two small numbers in lambda). Near ``eta = 0`` (lambda = 1/2) it is the
    series ``log 2 + log(1 + eta^2 / 12 - eta^4 / 720)``, the brief's ``(1 - 2 lambda)^2 / 3 + ...``."""
    import torch

    small = eta.abs() < CB_TAYLOR
    safe = torch.where(small, torch.ones_like(eta), eta)  # no 0/0 even in the branch not taken (gradients)
    exact = torch.log(safe / torch.tanh(0.5 * safe))
    eta2 = eta * eta
    series = math.log(2.0) + torch.log1p(eta2 / 12.0 - eta2 * eta2 / 720.0)
    return torch.where(small, series, exact)


def cb_mean(eta: torch.Tensor) -> torch.Tensor:
    """Elementwise mean of the continuous Bernoulli from the logit ``eta``:
    ``lambda / (2 lambda - 1) + 1 / (2 atanh(1 - 2 lambda)) = 1 / (1 - exp(-eta)) - 1 / eta``, the series
    ``1/2 + eta / 12 - eta^3 / 720`` near ``eta = 0``."""
    import torch

    small = eta.abs() < CB_TAYLOR
    safe = torch.where(small, torch.ones_like(eta), eta)
    exact = -1.0 / torch.expm1(-safe) - 1.0 / safe
    series = 0.5 + eta / 12.0 - eta * eta * eta / 720.0
    return torch.where(small, series, exact)


# ----------------------------------------------------------------------------------- the registry

REGISTRY: dict[str, Likelihood] = {
    f.name: f for f in (Bernoulli(), Gaussian(), Poisson(), NegativeBinomial(), ContinuousBernoulli())
}
# The mixed likelihood of tables (``zdim.mixed``) is the one family whose instance depends on the data:
# its name carries the table's column layout (``mixed:g3,b1,c4.7``), so ``get`` builds it from the name.
# ``mixed`` alone is what a user types (the reader adds the layout).
MIXED = "mixed"
NAMES = (*REGISTRY, MIXED)  # the decoder likelihoods, in the order the command line lists them


def get(name: str) -> Likelihood:
    """The family a user's name stands for; ``ConfigError`` for a name no family has."""
    family = find(name)
    if family is None:
        raise ConfigError(f"likelihood must be one of {NAMES}, got {name!r}")
    return family


def find(name: str | None) -> Likelihood | None:
    """The family of ``name``, or None (no name, ``auto``, or a name no family has); a mixed layout
    name that is malformed is a ``ConfigError``."""
    if name is None:
        return None
    if name == MIXED or name.startswith(MIXED + ":"):
        from .mixed import Mixed, family

        return Mixed() if name == MIXED else family(name)
    return REGISTRY.get(name)


def infer(in_unit: bool, counts: bool) -> Likelihood:
    """What ``--likelihood auto`` picks: Bernoulli for data in [0, 1], the negative binomial for counts,
    else Gaussian."""
    if in_unit:
        return REGISTRY[Bernoulli.name]
    return REGISTRY[NegativeBinomial.name] if counts else REGISTRY[Gaussian.name]


__all__ = [
    "Likelihood",
    "Bernoulli",
    "Gaussian",
    "Poisson",
    "NegativeBinomial",
    "ContinuousBernoulli",
    "Reference",
    "LinearStart",
    "NOISE_MODES",
    "ppca",
    "REGISTRY",
    "NAMES",
    "MIXED",
    "get",
    "find",
    "infer",
    "count_log_mean",
    "poisson_log_prob",
    "nb_log_prob",
    "cb_log_norm",
    "cb_mean",
]
