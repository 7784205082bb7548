"""Count data: Poisson and negative-binomial decoders, count inference in load_data, the AnnData reader."""

import sys

import numpy as np
import pytest
import torch
from scipy import stats

from zdim.data.dataset import load_data, supported_formats
from zdim.errors import ConfigError, DataError
from zdim.evaluation.metrics import evaluate, neg_elbo
from zdim.models.nested import NestedVAE
from zdim.models.vae import VAE, VAEConfig
from zdim.sweeps.execute import sweep
from zdim.sweeps.planning.config import SweepConfig
from zdim.training.config import TrainConfig
from zdim.training.trainer import fit


def simulate_counts(n: int = 300, d: int = 30, k: int = 2, seed: int = 0) -> np.ndarray:
    """NB counts from a k-factor model: rho = softmax(W z), library ~ lognormal, theta = 2."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k))
    logits = z @ rng.normal(size=(k, d)) * 1.5
    rho = np.exp(logits - logits.max(1, keepdims=True))
    rho /= rho.sum(1, keepdims=True)
    library = rng.lognormal(np.log(2000), 0.3, size=(n, 1))
    mu, theta = library * rho, 2.0
    return rng.negative_binomial(theta, theta / (theta + mu)).astype(np.float64)


def reference(x: torch.Tensor, out: torch.Tensor) -> np.ndarray:
    """The decoder mean mu = library * softmax(out), as numpy float64."""
    lib = x.double().sum(-1, keepdim=True)
    return (lib * torch.softmax(out.double(), -1)).numpy()


# ----------------------------------------------------------------------------- likelihood values


def test_nb_log_likelihood_matches_scipy():
    torch.manual_seed(0)
    m = VAE(VAEConfig(6, 2, likelihood="nb", hidden=(8,)))
    with torch.no_grad():
        m.log_theta.copy_(torch.tensor([-2.0, -0.5, 0.0, 1.0, 3.0, 6.0]))
    x = torch.tensor([[0, 3, 10, 1, 0, 7], [5, 0, 0, 200, 1, 0], [0, 0, 1, 0, 0, 0], [40, 900, 3, 0, 12, 2]]).float()
    out = torch.randn(4, 6) * 2
    mu, theta = reference(x, out), m.log_theta.detach().double().exp().numpy()
    ref = stats.nbinom(n=theta, p=theta / (theta + mu)).logpmf(x.numpy()).sum(-1)
    got = m.log_likelihood(x, out).detach().double().numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-3)
    # (k, B, D) decoder outputs broadcast against (B, D) inputs, as the IWAE bound calls it
    assert m.log_likelihood(x, out.expand(3, 4, 6)).shape == (3, 4)
    np.testing.assert_allclose(m.log_likelihood(x, out.expand(3, 4, 6))[1].detach().numpy(), got, rtol=1e-5)


def test_poisson_log_likelihood_matches_scipy():
    torch.manual_seed(1)
    m = VAE(VAEConfig(5, 2, likelihood="poisson", hidden=(8,)))
    x = torch.tensor([[0, 3, 10, 1, 0], [5, 0, 0, 200, 1], [1, 0, 0, 0, 0]]).float()
    out = torch.randn(3, 5) * 2
    ref = stats.poisson(reference(x, out)).logpmf(x.numpy()).sum(-1)
    np.testing.assert_allclose(m.log_likelihood(x, out).double().numpy(), ref, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("likelihood", ["poisson", "nb"])
def test_count_likelihood_is_finite_at_extremes(likelihood):
    m = VAE(VAEConfig(4, 2, likelihood=likelihood, hidden=(8,)))
    x = torch.tensor([[0.0, 0, 0, 0], [1e5, 0, 0, 3]])  # an empty sample, a huge count
    out = torch.tensor([[0.0, 0, 0, 0], [0.0, -80, 80, 0]], requires_grad=True)  # softmax underflows
    ll = m.log_likelihood(x, out)
    assert torch.isfinite(ll).all()
    assert float(ll[0].detach()) == pytest.approx(0.0, abs=1e-5)  # P(all zeros | mu ~ 0) = 1
    ll.sum().backward()
    assert out.grad is not None and torch.isfinite(out.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


# ----------------------------------------------------------------------------- models


@pytest.mark.parametrize("likelihood", ["poisson", "nb"])
def test_count_model_means_and_library(likelihood):
    torch.manual_seed(0)
    m = VAE(VAEConfig(8, 2, likelihood=likelihood, hidden=(8,)))
    x = torch.from_numpy(simulate_counts(20, 8)).float()
    rec = m.reconstruct(x)
    torch.testing.assert_close(rec.sum(-1), x.sum(-1))  # each sample's own library size
    m.train()
    m.elbo_terms(x[:12])
    m.elbo_terms(x[12:])
    assert float(m.library_seen) == 20 and float(m.library_mean) == pytest.approx(float(x.sum(-1).mean()), rel=1e-5)
    m.eval()
    m.elbo_terms(x[:3])  # evaluation leaves the training statistics alone
    assert float(m.library_seen) == 20
    torch.testing.assert_close(m.sample(5).sum(-1), m.library_mean.expand(5))  # prior draws at the mean library
    copy = VAE(m.config)
    copy.load_state_dict(m.state_dict())  # the library size is saved with the weights
    assert float(copy.library_mean) == float(m.library_mean)


def test_conv_refuses_count_data():
    for likelihood in ("poisson", "nb"):
        with pytest.raises(ConfigError, match=f"arch 'conv'.*'{likelihood}'.*count data.*--arch mlp"):
            VAEConfig(64, 2, likelihood=likelihood, arch="conv", image_shape=(1, 8, 8))
    assert VAEConfig.from_dict(VAEConfig(10, 2, likelihood="nb").to_dict()).likelihood == "nb"


def test_nested_nb_prefix_model_matches():
    torch.manual_seed(0)
    big = NestedVAE(VAEConfig(input_dim=12, latent_dim=4, likelihood="nb", hidden=(16,)), (1, 2, 4)).eval()
    with torch.no_grad():
        big.log_theta.copy_(torch.randn_like(big.log_theta))  # a distinct dispersion per prefix
        big.library_mean.fill_(123.0)
    x = torch.from_numpy(simulate_counts(6, 12)).float()
    for p, k in enumerate((1, 2, 4)):
        small = big.prefix_model(k)
        torch.testing.assert_close(small.noise_log_theta(), big.log_theta[p])
        assert float(small.library_mean) == 123.0
        z = torch.randn(6, k)
        padded = torch.cat([z, torch.zeros(6, 4 - k)], dim=1)
        rows = torch.full((6,), p)
        ll_big = big.log_likelihood(x, big.decode(padded), None, big.log_theta[rows])
        torch.testing.assert_close(small.log_likelihood(x, small.decode(z)), ll_big)
    assert np.isfinite(neg_elbo(big, x))


@pytest.mark.parametrize("likelihood", ["poisson", "nb"])
def test_tiny_vae_trains_on_counts(likelihood):
    torch.manual_seed(0)
    x = torch.from_numpy(simulate_counts(300, 30)).float()
    train, val, test = x[:240], x[240:270], x[270:]
    model = VAE(VAEConfig(30, 3, likelihood=likelihood, hidden=(32,)))
    result = fit(model, train, val, TrainConfig(epochs=2, batch_size=64, patience=0))
    assert len(result.history) == 2 and all(np.isfinite(h["val_neg_elbo"]) for h in result.history)
    # the rows fit fed (it drops a last partial batch): close to the training split's mean library
    assert float(model.library_mean) == pytest.approx(float(train.sum(-1).mean()), rel=0.05)
    metrics = evaluate(model, test, k=8)
    for key in ("nll", "neg_elbo", "rec", "kl", "mse"):
        assert np.isfinite(metrics[key]), key
    assert metrics["nll"] <= metrics["neg_elbo"] + 1e-3  # the IWAE bound is the tighter one


@pytest.mark.parametrize("nested", [False, True])
def test_sweep_over_counts(nested):
    """A whole sweep (training, IWAE evaluation, generation metrics, recommendation) on count data."""
    x = simulate_counts(200, 20)
    train = TrainConfig(epochs=2, batch_size=64, patience=0)
    config = SweepConfig(dims=(1, 2), hidden=(16,), train=train, k=5)
    r = sweep(x, config=config, mode="nested" if nested else "per-size")
    table = r.table  # one row per trial
    assert r.data["likelihood"] == "nb" and sorted(table["dim"]) == [1, 2]
    assert np.isfinite(table["nll"].to_numpy(dtype=float)).all(), table
    assert r.recommended_dim in (1, 2)


# ----------------------------------------------------------------------------- load_data


def test_auto_picks_nb_for_counts_and_keeps_them_raw():
    x = simulate_counts(60, 10)
    d = load_data(x)
    assert d.likelihood == "nb" and d.mean is None and d.std is None
    got = np.sort(np.concatenate([d.train, d.val, d.test]).astype(np.float64), axis=0)
    assert np.array_equal(got, np.sort(x, axis=0))  # neither scaled nor standardized
    assert load_data(x, likelihood="poisson").likelihood == "poisson"


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda r: (r.random((30, 4)) > 0.5).astype(np.float32), "bernoulli"),
        (lambda r: r.integers(0, 2, (30, 4)), "bernoulli"),
        (lambda r: r.normal(size=(30, 4)), "gaussian"),
        (lambda r: r.integers(-5, 500, (30, 4)), "gaussian"),  # negative integers are not counts
        (lambda r: r.integers(0, 256, (30, 4)), "gaussian"),  # within 0..255: maybe 8-bit pixels
        (lambda r: r.integers(0, 1000, (30, 4, 4)), "gaussian"),  # an image array is not count data
        (lambda r: r.integers(0, 1000, (30, 4)) + 0.5, "gaussian"),  # not integers
        (lambda r: r.integers(0, 1000, (30, 4)), "nb"),
    ],
)
def test_count_inference_keeps_other_cases(make, expected):
    assert load_data(make(np.random.default_rng(0))).likelihood == expected


def test_images_stay_bernoulli_and_forced_counts_are_unscaled():
    assert load_data("digits").likelihood == "bernoulli"
    d = load_data("digits", likelihood="poisson")  # counts are the raw 0..16 values, not divided by 16
    assert d.likelihood == "poisson" and float(d.train.max()) == 16.0 and d.mean is None


@pytest.mark.parametrize("likelihood", ["poisson", "nb"])
def test_bad_count_values(likelihood):
    x = simulate_counts(30, 5)
    x[7, 2] = 2.5
    with pytest.raises(DataError, match=rf"'{likelihood}' needs raw counts.*1 other.*2\.5 at row 7, column 2") as e:
        load_data(x, likelihood=likelihood)
    assert "\n" not in str(e.value) and "gaussian" in str(e.value)
    x[7, 2], x[3, 1] = -1.0, -4.0
    with pytest.raises(DataError, match=r"2 other value\(s\), the first -4 at row 3, column 1"):
        load_data(x, likelihood=likelihood)


# ----------------------------------------------------------------------------- AnnData


def test_h5ad_listed_and_options_refused_elsewhere():
    assert any(".h5ad" in fmt for fmt, _ in supported_formats())
    x = simulate_counts(20, 4)
    with pytest.raises(DataError, match="layer='counts' applies to AnnData"):
        load_data(x, layer="counts")
    with pytest.raises(DataError, match="label_key='cell_type' applies to AnnData"):
        load_data("digits", label_key="cell_type")


def test_h5ad_without_anndata(tmp_path, monkeypatch):
    (tmp_path / "a.h5ad").write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, "anndata", None)  # `import anndata` now raises ImportError
    with pytest.raises(DataError, match=r"reading \.h5ad needs anndata: pip install 'zdim\[anndata\]'"):
        load_data(tmp_path / "a.h5ad")


def test_h5ad_sparse_with_layer_and_labels(tmp_path, monkeypatch):
    anndata = pytest.importorskip("anndata")
    import pandas as pd
    import scipy.sparse as sp

    import zdim.data.readers

    rng = np.random.default_rng(0)
    counts = simulate_counts(40, 12)
    counts[:, 0] = np.arange(40) * 30  # column 0 names the row (and puts counts above 255)
    kinds = np.array(["T", "B", "NK"])[rng.integers(0, 3, 40)]
    obs = pd.DataFrame({"cell_type": pd.Categorical(kinds)}, index=[f"cell{i}" for i in range(40)])
    var = pd.DataFrame(index=[f"gene{j}" for j in range(12)])
    normalized = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4)
    adata = anndata.AnnData(X=sp.csr_matrix(normalized.astype(np.float32)), obs=obs, var=var)
    adata.layers["counts"] = sp.csr_matrix(counts.astype(np.float32))
    adata.write_h5ad(tmp_path / "cells.h5ad")
    monkeypatch.setattr(zdim.data.readers, "_H5AD_CHUNK_BYTES", 7 * 12 * 4)  # 7 rows per chunk

    d = load_data(tmp_path / "cells.h5ad", layer="counts", label_key="cell_type")
    assert d.name == "cells" and d.likelihood == "nb" and d.n_features == 12
    assert d.feature_names == [f"gene{j}" for j in range(12)] and d.extra["label_names"] == ["B", "NK", "T"]
    rows = np.concatenate([d.train, d.val, d.test]).astype(np.float64)
    ids = np.rint(rows[:, 0] / 30).astype(int)
    assert sorted(ids) == list(range(40)) and np.array_equal(rows, counts[ids])
    names = np.array(d.extra["label_names"])[np.concatenate([d.y_train, d.y_val, d.y_test])]
    assert np.array_equal(names, kinds[ids])  # labels follow their rows

    x = load_data(tmp_path / "cells.h5ad")  # .X: normalized values, Gaussian
    assert x.likelihood == "gaussian" and x.y_train is None
    with pytest.raises(DataError, match=r"likelihood 'nb' needs raw counts.*layer='counts'"):
        load_data(tmp_path / "cells.h5ad", likelihood="nb")
    with pytest.raises(DataError, match=r"layer 'raw' not found; layers are 'counts'"):
        load_data(tmp_path / "cells.h5ad", layer="raw")
    with pytest.raises(DataError, match=r"label column 'kind' not found in \.obs; columns are 'cell_type'"):
        load_data(tmp_path / "cells.h5ad", label_key="kind")
