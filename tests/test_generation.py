"""Generation metrics on tiny cases with known answers."""

import numpy as np
import pytest
import torch

from zdim.data.dataset import load_data
from zdim.evaluation.generation import frechet_distance, generation_metrics, linear_probe_accuracy, mmd_rbf, prdc
from zdim.models.vae import VAE, VAEConfig


def test_prdc_identical_sets_are_perfect():
    x = np.random.default_rng(0).normal(size=(200, 3))
    m = prdc(x, x, k=5)
    assert m["precision"] == 1.0 and m["recall"] == 1.0 and m["coverage"] == 1.0
    assert m["density"] >= 1.0  # each point lies in its own ball and in those of its neighbours


def test_prdc_far_away_fakes_score_zero():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(100, 2))
    fake = rng.normal(size=(100, 2)) + 50.0
    m = prdc(real, fake, k=3)
    assert m == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_prdc_collapsed_fakes_have_precision_but_no_recall():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(300, 2))
    fake = rng.normal(size=(300, 2)) * 0.05  # all samples at the mode: faithful, not diverse
    m = prdc(real, fake, k=5)
    assert m["precision"] > 0.9 and m["recall"] < 0.2 and m["coverage"] < 0.3


def test_frechet_distance_zero_for_identical_and_grows_with_shift():
    x = np.random.default_rng(3).normal(size=(500, 4))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    shifts = [frechet_distance(x, x + s) for s in (0.5, 1.0, 2.0)]
    # a shift s of every coordinate of 4-d data moves the mean by 4 s^2 in squared distance
    assert shifts == pytest.approx([4 * 0.25, 4 * 1.0, 4 * 4.0], rel=1e-6)


def test_mmd_near_zero_for_same_distribution_and_large_otherwise():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(300, 3)), rng.normal(size=(300, 3))
    same = mmd_rbf(a, b)
    assert abs(same) < 0.01
    assert mmd_rbf(a, b + 2.0) > 20 * max(abs(same), 1e-3)


def test_linear_probe_high_on_separable_latents_and_chance_on_noise():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, size=400)
    z = rng.normal(size=(400, 2)) + 4.0 * y[:, None]
    assert linear_probe_accuracy(z[:300], y[:300], z[300:], y[300:]) > 0.95
    noise = rng.normal(size=(400, 2))
    assert linear_probe_accuracy(noise[:300], y[:300], noise[300:], y[300:]) < 0.75


def test_generation_metrics_of_a_model_state_the_feature_space(tmp_path):
    x = np.random.default_rng(6).normal(size=(120, 6)).astype(np.float32)
    np.savez(tmp_path / "d.npz", X=x, y=(x[:, 0] > 0).astype(np.int64))
    data = load_data(tmp_path / "d.npz")
    torch.manual_seed(0)
    model = VAE(VAEConfig(input_dim=6, latent_dim=2, likelihood=data.likelihood, hidden=(8,)))
    out = generation_metrics(model, data, n=50, components=3, features="pca")
    assert out["gen_features"] == "pca-train-3" and "gen_feature_acc" not in out
    assert {"gen_fd", "gen_precision", "gen_recall", "gen_density", "gen_coverage", "gen_mmd", "gen_probe_acc"} <= set(
        out
    )
    assert 0.0 <= out["gen_precision"] <= 1.0 and out["gen_fd"] >= 0.0 and out["gen_mmd"] >= 0.0  # never shown below 0


def test_frechet_distance_of_collapsed_samples_is_finite():
    real = np.random.default_rng(7).normal(size=(200, 16))
    fake = np.zeros((200, 16))  # every sample the same point: a singular covariance
    assert frechet_distance(real, fake) == pytest.approx(
        np.trace(np.cov(real, rowvar=False)) + (real.mean(0) ** 2).sum(), rel=1e-9
    )


def test_labelled_data_get_a_classifier_feature_space_fitted_once(tmp_path):
    from zdim.evaluation.generation import feature_space

    data = load_data("digits")
    space, name, acc = feature_space(data)
    assert name == "classifier-train-64"
    assert acc > 0.85  # the classifier separates the digits: its features see what a sample depicts
    assert feature_space(data)[0] is space  # one space per data set, shared by every trial
    assert space.transform(data.test.numpy()[:7]).shape == (7, 64)
    torch.manual_seed(0)
    model = VAE(VAEConfig(input_dim=data.n_features, latent_dim=2, likelihood=data.likelihood, hidden=(8,)))
    out = generation_metrics(model, data, n=100)
    assert out["gen_features"] == name and out["gen_feature_acc"] == acc
    # held-out data against itself is a perfect match in this space; an untrained model's samples are not
    real = space.transform(data.test.numpy())
    assert frechet_distance(real, real) == pytest.approx(0.0, abs=1e-6) and out["gen_fd"] > 1.0
    with pytest.raises(ValueError, match="needs class labels"):
        feature_space(load_data(np.random.default_rng(0).normal(size=(100, 5))), "classifier")


def test_pca_features_draw_rows_before_converting_a_large_split(monkeypatch):
    """The PCA's rows are drawn from the split itself: np.asarray(..., float64) sees 5000 rows, not all."""
    from zdim.evaluation import generation

    big = np.random.default_rng(0).random((12000, 6)).astype(np.float32)
    shapes = []
    real = np.asarray
    monkeypatch.setattr(
        generation.np, "asarray", lambda a, *args, **k: shapes.append(getattr(a, "shape", None)) or real(a, *args, **k)
    )
    pca, name = generation.pca_features(big, 4, seed=0)
    assert (5000, 6) in shapes and (12000, 6) not in shapes and name == "pca-train-4"
