"""Likelihood families (zdim.likelihoods): the registry, and the continuous Bernoulli end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import zdim
from zdim import likelihoods
from zdim.cli import main
from zdim.data.dataset import load_data
from zdim.errors import ConfigError, DataError
from zdim.formats import LIKELIHOOD_CHOICES, LIKELIHOODS
from zdim.likelihoods import CB_LOGIT_MAX, REGISTRY, ContinuousBernoulli, cb_log_norm, cb_mean
from zdim.models.vae import VAE, VAEConfig
from zdim.saved import load_model

CB = ContinuousBernoulli()
LAMBDAS = [1e-6, 1e-3, 0.05, 0.3, 0.5 - 1e-4, 0.5, 0.5 + 1e-4, 0.7, 0.99, 1 - 1e-6]


def test_the_registry_is_the_option_parsers_list():
    assert LIKELIHOODS == (*REGISTRY, "mixed") == likelihoods.NAMES  # mixed: its layout comes with the data
    assert "continuous-bernoulli" in LIKELIHOOD_CHOICES
    for name, family in REGISTRY.items():
        assert family.name == name and likelihoods.get(name) is family
    assert likelihoods.find("auto") is None and likelihoods.find(None) is None
    with pytest.raises(ConfigError, match="continuous-bernoulli"):
        likelihoods.get("beta")


@pytest.mark.parametrize("name", list(REGISTRY))
def test_a_model_has_its_familys_parameters(name):
    family = REGISTRY[name]
    model = VAE(VAEConfig(6, 2, likelihood=name, hidden=(8,)))
    assert model.family is family
    own = {n for n, _ in model.named_parameters() if "." not in n}
    assert own == set(family.params)
    x = torch.rand(5, 6)
    if family.counts:
        x = torch.poisson(torch.full((5, 6), 3.0))
    ll = model.log_likelihood(x, model.decode(torch.randn(3, 5, 2)))
    assert ll.shape == (3, 5) and torch.isfinite(ll).all()


def density(lam: float, x: torch.Tensor) -> torch.Tensor:
    """The continuous Bernoulli's density at ``x`` (N,) for one ``lambda``, in float64."""
    eta = torch.full((len(x), 1), math.log(lam) - math.log1p(-lam), dtype=torch.float64)
    return CB.log_prob(x[:, None], eta, {}).exp()


@pytest.mark.parametrize("lam", LAMBDAS)
def test_continuous_bernoulli_density_integrates_to_one(lam):
    x = torch.linspace(0.0, 1.0, 400_001, dtype=torch.float64)
    p = density(lam, x)
    assert float(torch.trapezoid(p, x)) == pytest.approx(1.0, abs=1e-6)
    mean = float(torch.trapezoid(p * x, x))  # and its mean is cb_mean, not lambda
    eta = torch.tensor([math.log(lam) - math.log1p(-lam)], dtype=torch.float64)
    assert float(CB.mean(eta)) == pytest.approx(mean, abs=1e-6)


def test_continuous_bernoulli_agrees_with_torch_distributions():
    eta = torch.linspace(-10.0, 10.0, 401, dtype=torch.float64)
    eta = torch.cat([eta, torch.tensor([0.0, 1e-5, -1e-3, 0.0999, 0.1001])]).double()
    x = torch.rand(len(eta), dtype=torch.float64)
    ref = torch.distributions.ContinuousBernoulli(logits=eta)
    ours = CB.log_prob(x[:, None], eta[:, None], {})
    torch.testing.assert_close(ours, ref.log_prob(x), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(cb_mean(eta), ref.mean, rtol=1e-6, atol=1e-6)


def test_continuous_bernoulli_is_smooth_and_finite_at_one_half_and_clamped_at_the_ends():
    eta = torch.tensor([0.0, 1e-7, -0.05, 0.05, 50.0, -50.0], requires_grad=True)
    x = torch.tensor([0.0, 0.5, 1.0, 0.2, 1.0, 0.0])
    ll = CB.log_prob(x[:, None], eta[:, None], {})
    ll.sum().backward()
    ll = ll.detach()
    assert torch.isfinite(ll).all() and eta.grad is not None and torch.isfinite(eta.grad).all()
    assert float(cb_log_norm(torch.tensor(0.0))) == pytest.approx(math.log(2.0))
    # at 1 - 1e-6 the density is bounded: a logit beyond the clamp buys nothing more
    top = CB.log_prob(torch.ones(1, 1), torch.tensor([[CB_LOGIT_MAX]]), {})
    assert float(ll[4]) == pytest.approx(float(top), rel=1e-6) and float(top) < math.log(CB_LOGIT_MAX) + 1e-3


def test_continuous_bernoulli_reference_is_the_maximum_likelihood_lambda():
    gen = torch.Generator().manual_seed(0)
    train = torch.rand(500, 4, generator=gen) ** torch.tensor([0.3, 1.0, 3.0, 1.0])
    train[:, 3] = 0.0  # a feature that is always 0: lambda at its clamp
    ref = CB.reference(train, train)
    assert ref is not None and ref.baseline.shape == (500,) and np.isfinite(ref.baseline).all()
    # the mean NLL of the fitted lambdas is not improved by moving any of them
    s1 = train.double().mean(0)
    fit = float(ref.baseline.mean())
    for shift in (-0.05, 0.05):
        eta = torch.logit(s1.clamp(0.01, 0.99)) + shift
        worse = -CB.log_prob(train.double(), eta.expand(500, -1), {}).mean()
        assert float(worse) > fit


def test_continuous_bernoulli_needs_values_in_the_unit_interval():
    with pytest.raises(DataError, match="continuous-bernoulli' needs values in \\[0, 1\\]"):
        load_data(np.linspace(-1, 2, 300 * 4).reshape(300, 4), likelihood="continuous-bernoulli")
    data = load_data("digits", max_samples=300, likelihood="continuous-bernoulli")
    assert data.likelihood == "continuous-bernoulli" and data.mean is None
    assert float(data.train.min()) >= 0.0 and float(data.train.max()) <= 1.0


@pytest.mark.filterwarnings("ignore::zdim.errors.UnsettledAnswerWarning")  # 2 epochs: not an answer
def test_continuous_bernoulli_sweep_on_digits_and_its_saved_model(tmp_path, capsys):
    out = tmp_path / "run"
    quick = ["--epochs", "2", "--hidden", "16", "--k", "3", "--quiet", "--max-samples", "300"]
    assert (
        main(["sweep", "digits", "--likelihood", "continuous-bernoulli", "--dims", "2,4", "--out", str(out), *quick])
        == 0
    )
    result = zdim.sweep(
        "digits",
        dims=[2],
        seeds=1,
        epochs=2,
        hidden=(16,),
        k=3,
        max_samples=300,
        likelihood="continuous-bernoulli",
        out=tmp_path / "api",
        report=False,
    )
    assert result.data["likelihood"] == "continuous-bernoulli"
    trial = result.trials[0]
    assert trial.complete and math.isfinite(trial.metric("nll") or math.nan)
    assert trial.metric("baseline_nll") is not None  # the reference model of the family
    model = load_model(tmp_path / "api" / "trials" / "dim-002-seed-0")
    assert model.config.likelihood == "continuous-bernoulli"
    raw = load_data("digits").train[:5].numpy() * 16.0  # digits in their own units, 0..16
    assert model.transform(raw).shape == (5, 2)
    rec = model.reconstruct(raw)
    assert rec.shape == (5, 64) and rec.min() >= 0.0 and rec.max() <= 16.0
    assert math.isfinite(model.score(raw))
