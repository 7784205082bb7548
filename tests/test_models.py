import math

import pytest
import torch

from zdim.errors import ConfigError
from zdim.models.vae import VAE, VAEConfig


@pytest.mark.parametrize("arch,shape", [("mlp", None), ("conv", (1, 8, 8)), ("conv", (3, 4, 8))])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_shapes(arch, shape, likelihood):
    d = math.prod(shape) if shape else 20
    m = VAE(VAEConfig(d, 3, likelihood=likelihood, hidden=(16,), arch=arch, image_shape=shape))
    x = torch.rand(5, d)
    mu, logvar = m.encode(x)
    assert mu.shape == logvar.shape == (5, 3)
    out = m.decode(torch.randn(7, 5, 3))
    assert out.shape == (7, 5, d)
    assert m.log_likelihood(x, out).shape == (7, 5)
    assert m.sample(4).shape == (4, d)
    assert m.reconstruct(x).shape == (5, d)


def test_bernoulli_log_likelihood_matches_torch():
    m = VAE(VAEConfig(6, 2, likelihood="bernoulli", hidden=(8,)))
    x = (torch.rand(4, 6) > 0.5).float()
    logits = torch.randn(4, 6)
    ref = torch.distributions.Bernoulli(logits=logits).log_prob(x).sum(-1)
    assert torch.allclose(m.log_likelihood(x, logits), ref, atol=1e-5)


def test_gaussian_log_likelihood_matches_torch():
    m = VAE(VAEConfig(6, 2, likelihood="gaussian", hidden=(8,)))
    with torch.no_grad():
        m.log_sigma.copy_(torch.linspace(-1, 1, 6))
    x, mean = torch.randn(4, 6), torch.randn(4, 6)
    ref = torch.distributions.Normal(mean, m.log_sigma.exp()).log_prob(x).sum(-1)
    assert torch.allclose(m.log_likelihood(x, mean), ref, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(input_dim=10, latent_dim=0), "latent size must be >= 1"),
        (dict(input_dim=10, latent_dim=2, likelihood="gamma"), "likelihood"),
        (dict(input_dim=10, latent_dim=2, arch="conv"), "needs image data"),
        (dict(input_dim=75, latent_dim=2, arch="conv", image_shape=(3, 5, 5)), "divisible by 4"),
        (dict(input_dim=10, latent_dim=2, hidden=(0,)), "hidden"),
    ],
)
def test_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        VAEConfig(**kwargs)


def test_config_round_trip():
    c = VAEConfig(64, 5, likelihood="gaussian", hidden=(32, 16), arch="conv", image_shape=(1, 8, 8))
    assert VAEConfig.from_dict(c.to_dict()) == c
