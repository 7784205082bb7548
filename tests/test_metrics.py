import math

import numpy as np
import pytest
import torch

from zdim.evaluation.metrics import (
    active_units,
    evaluate,
    iwae_bound,
    kl_per_unit,
    log_normal_diag,
    log_normal_std,
    log_weights,
    reconstruction_mse,
)
from zdim.models.vae import VAE, VAEConfig
from zdim.training.config import TrainConfig
from zdim.training.trainer import fit


def test_kl_of_known_gaussians():
    mu = torch.tensor([[0.0, 1.0, 0.0, 2.0]])
    logvar = torch.tensor([[0.0, 0.0, math.log(2.0), math.log(0.5)]])
    expected = [0.0, 0.5, 0.5 * (2 - 1 - math.log(2)), 0.5 * (4 + 0.5 - 1 - math.log(0.5))]
    assert torch.allclose(kl_per_unit(mu, logvar)[0], torch.tensor(expected), atol=1e-6)


def test_kl_matches_torch_distributions():
    mu, logvar = torch.randn(10, 3), torch.randn(10, 3)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros(3), torch.ones(3))
    assert torch.allclose(kl_per_unit(mu, logvar), torch.distributions.kl_divergence(q, p), atol=1e-5)


def test_log_normals_match_torch():
    z, mu, logvar = torch.randn(5, 3), torch.randn(5, 3), torch.randn(5, 3)
    ref = torch.distributions.Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    assert torch.allclose(log_normal_diag(z, mu, logvar), ref, atol=1e-5)
    ref0 = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    assert torch.allclose(log_normal_std(z), ref0, atol=1e-5)


def test_active_units_counts_varying_means():
    g = torch.Generator().manual_seed(0)
    mu = torch.cat([torch.randn(500, 3, generator=g), 0.01 * torch.randn(500, 2, generator=g)], 1)
    assert active_units(mu) == 3
    assert active_units(mu, threshold=1e-6) == 5
    assert active_units(mu[:1]) == 0


def test_iwae_bound_of_equal_weights_is_the_weight():
    log_w = torch.full((7, 3), -2.5)
    assert torch.allclose(iwae_bound(log_w), torch.full((3,), -2.5))


@pytest.fixture(scope="module")
def trained():
    # four binary prototypes with 10% flipped bits: the posterior carries information about x
    g = torch.Generator().manual_seed(0)
    proto = (torch.rand(4, 12, generator=g) > 0.5).float()
    x = proto[torch.randint(0, 4, (600,), generator=g)]
    x = (x + (torch.rand(600, 12, generator=g) < 0.1).float()) % 2
    torch.manual_seed(0)
    m = VAE(VAEConfig(12, 3, hidden=(32,)))
    fit(m, x[:400], x[400:], TrainConfig(epochs=15, batch_size=50, patience=0))
    return m, x[400:]


def test_iwae_with_one_sample_equals_elbo(trained):
    model, x = trained
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    with torch.no_grad():
        log_w, log_px_z, mu, logvar = log_weights(model, x, 1, g1)
        # the single-sample ELBO with the same noise: log p(x|z) + log p(z) - log q(z|x)
        z = model.reparameterize(mu, logvar, g2)
        elbo = model.log_likelihood(x, model.decode(z)) + log_normal_std(z) - log_normal_diag(z, mu, logvar)
    assert torch.allclose(iwae_bound(log_w), elbo, atol=1e-5)


def test_nll_bound_tightens_as_k_grows(trained):
    model, x = trained
    nll = [evaluate(model, x, k=k, seed=0)["nll"] for k in (1, 10, 200)]
    assert nll[0] > nll[1] > nll[2]
    elbo = evaluate(model, x, k=200, seed=0)["neg_elbo"]
    assert nll[2] <= elbo + 1e-6


def test_evaluate_is_consistent(trained):
    model, x = trained
    ev = evaluate(model, x, k=20, batch_size=7)
    assert ev["neg_elbo"] == pytest.approx(ev["rec"] + ev["kl"])
    assert ev["kl"] == pytest.approx(sum(ev["kl_per_unit"]), rel=1e-5)
    assert len(ev["kl_per_unit"]) == len(ev["unit_variance"]) == 3
    assert 0 <= ev["active_units"] <= 3 and ev["n"] == len(x)
    assert ev["mse"] == pytest.approx(reconstruction_mse(x, model.reconstruct(x)), rel=1e-5)
    # batching does not change the result beyond Monte Carlo noise of a different batch split
    ev2 = evaluate(model, x, k=20, batch_size=1000)
    assert ev2["kl"] == pytest.approx(ev["kl"], rel=1e-5)


def test_the_linear_reference_is_probabilistic_pca_and_the_baseline_the_feature_means():
    from sklearn.decomposition import PCA

    from zdim.evaluation.metrics import reference

    rng = np.random.default_rng(0)
    mix = rng.normal(size=(6, 6))
    x, t = rng.normal(size=(500, 6)) @ mix, rng.normal(size=(50, 6)) @ mix
    ref = reference(torch.tensor(x), torch.tensor(t), "gaussian")
    for k in (1, 2, 4):  # scikit-learn's PCA.score_samples is the same model's log-likelihood
        np.testing.assert_allclose(ref.linear(k), -PCA(n_components=k).fit(x).score_samples(t), rtol=1e-10)
    var = x.var(0, ddof=1)
    expected = 0.5 * (np.log(2 * np.pi * var) + (t - x.mean(0)) ** 2 / var).sum(1)
    np.testing.assert_allclose(ref.baseline, expected, rtol=1e-12)
    assert ref.linear(0) is None
    # from D - 1 components on, the best linear model is the full-covariance Gaussian of the training split
    from scipy.stats import multivariate_normal

    full = -multivariate_normal(x.mean(0), np.cov(x, rowvar=False)).logpdf(t)
    np.testing.assert_allclose(ref.full(), full, rtol=1e-8)
    np.testing.assert_allclose(ref.linear(6), full, rtol=1e-8)
    np.testing.assert_allclose(ref.linear(9), full, rtol=1e-8)
    b = reference(torch.tensor((x > 0).astype(float)), torch.tensor((t > 0).astype(float)), "bernoulli")
    assert b.baseline.shape == (50,) and b.linear(2) is None
