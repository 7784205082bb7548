"""Saved models carry their preprocessing: ``zdim.load_model`` takes raw data in its own units."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_digits

import zdim
from zdim.data.dataset import load_data
from zdim.data.preprocessing import Preprocessing
from zdim.errors import ConfigError, DataError
from zdim.evaluation.metrics import neg_elbo
from zdim.files import read_json, write_json
from zdim.models.checkpoints import load_vae
from zdim.saved import SavedModel, load_model
from zdim.testing import make_planted_data

QUICK = dict(epochs=2, seeds=1, hidden=(16,), k=3, report=False)
COLUMNS = ["a", "b", "c", "d", "e", "f"]


def raw_rows_of(data, raw, atol=1e-3):
    """The raw rows behind ``data.test`` (model units), found by undoing scale and standardization."""
    pre = data.preprocessing
    back = pre.invert(data.test.numpy())
    dist = np.abs(back[:, None, :] - raw[None, :, :].astype(np.float32)).max(-1)
    idx = dist.argmin(1)
    assert (dist[np.arange(len(idx)), idx] < atol * max(1.0, np.abs(raw).max())).all()
    return raw[idx]


@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    """A sweep on a CSV of raw values far from unit scale (standardized inside the pipeline)."""
    tmp = tmp_path_factory.mktemp("table")
    raw = make_planted_data(2, 6, 300, seed=3, noise=0.05).astype(np.float64) * 10.0 + 100.0
    path = tmp / "raw.csv"
    pd.DataFrame(raw, columns=COLUMNS).to_csv(path, index=False)
    zdim.sweep(str(path), dims=[2], out=tmp / "run", **QUICK)
    return raw, load_data(str(path)), tmp / "run" / "trials" / "dim-002-seed-0"


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("digits")
    zdim.sweep("digits", dims=[2], out=tmp / "run", max_samples=300, **QUICK)
    raw = load_digits().data
    return raw, load_data("digits", max_samples=300), tmp / "run" / "trials" / "dim-002-seed-0"


def test_raw_csv_rows_give_the_pipelines_latents(table_run):
    raw, data, folder = table_run
    model = load_model(folder)
    assert isinstance(model, SavedModel) and model.preprocessing_known
    assert model.preprocessing.mean is not None and model.preprocessing.scale == 1.0
    assert model.preprocessing.feature_names == COLUMNS
    rows = raw_rows_of(data, raw)
    z = model.transform(rows)
    assert isinstance(z, np.ndarray) and z.shape == (len(rows), 2) and z.dtype == np.float32
    np.testing.assert_allclose(z, model.module.transform(data.test).numpy(), atol=1e-5)
    # reconstructions come back in the data's own units (around 100, not around 0)
    rec = model.reconstruct(rows)
    np.testing.assert_allclose(rec, data.preprocessing.invert(model.module.reconstruct(data.test).numpy()), atol=1e-3)
    assert abs(rec.mean() - raw.mean()) < 0.2 * raw.std()
    # the score is a density of raw rows: the pipeline's ELBO plus the standardization's log-Jacobian
    expected = -neg_elbo(model.module, data.test) - float(np.log(data.std.astype(np.float64)).sum())
    assert model.score(rows) == pytest.approx(expected, rel=1e-5)
    sample = model.sample(50, seed=0)
    assert sample.shape == (50, 6) and np.array_equal(sample, model.sample(50, seed=0))
    assert abs(sample.mean() - raw.mean()) < 0.5 * raw.std()


def test_dataframes_lists_and_tensors(table_run):
    raw, data, folder = table_run
    model = load_model(folder)
    rows = raw_rows_of(data, raw)
    z = model.transform(rows)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    np.testing.assert_array_equal(model.transform(frame), z)
    np.testing.assert_array_equal(model.transform(frame[COLUMNS[::-1]]), z)  # columns matched by name
    np.testing.assert_array_equal(model.transform(rows.tolist()), z)
    zt = model.transform(torch.from_numpy(rows))
    assert isinstance(zt, torch.Tensor) and torch.equal(zt, torch.from_numpy(z))
    back = model.inverse_transform(zt)
    assert isinstance(back, torch.Tensor) and back.shape == (len(rows), 6)
    np.testing.assert_allclose(model.inverse_transform(z), back.numpy(), rtol=1e-6)
    with pytest.raises(DataError, match=r"lacks column\(s\) 'f'"):
        model.transform(frame.drop(columns="f").assign(g=1.0))


def test_digits_model_takes_raw_pixel_values(digits_run):
    raw, data, folder = digits_run
    model = load_model(folder)
    assert read_json(folder / "model.json")["preprocessing"]["scale"] == 16.0
    assert model.preprocessing.scale == 16.0 and model.preprocessing.mean is None
    rows = raw_rows_of(data, raw)
    np.testing.assert_allclose(model.transform(rows), model.module.transform(data.test).numpy(), atol=1e-5)
    images = rows.reshape(-1, 8, 8)  # (n, 8, 8) samples are flattened
    np.testing.assert_allclose(model.transform(images), model.transform(rows), atol=0)
    rec = model.reconstruct(rows)
    assert rec.shape == rows.shape and rec.min() >= 0 and rec.max() <= 16.0 and rec.max() > 1.0
    assert "divide by 16" in repr(model) and "'digits'" in repr(model)


def test_wrong_shape_and_dtype_are_one_line_errors(digits_run):
    raw, _, folder = digits_run
    model = load_model(folder)
    with pytest.raises(
        DataError,
        match=r"^X has 63 features per sample; this model was trained on 64 \(digits\): pass an array \(n, 64\)$",
    ):
        model.transform(raw[:5, :63])
    with pytest.raises(DataError, match=r"X holds strings, not numbers.*pass an array \(n, 64\)"):
        model.transform(np.full((3, 64), "x"))
    with pytest.raises(DataError, match=r"shape \(64,\).*reshape\(1, -1\)"):
        model.score(raw[0])
    with pytest.raises(DataError, match="non-numeric column"):
        model.transform(pd.DataFrame(np.full((2, 64), "a")))
    with pytest.raises(ConfigError, match=r"Z has shape \(4, 3\); this model has 2 latent units"):
        model.inverse_transform(np.zeros((4, 3)))
    with pytest.raises(ConfigError, match="positive integer"):
        model.sample(0)
    for err in (DataError, ConfigError):
        assert issubclass(err, zdim.ZdimError) and issubclass(err, ValueError)


def test_nan_rows_and_negative_counts_are_one_line_errors(digits_run):
    raw, _, folder = digits_run
    model = load_model(folder)
    bad = raw[:4].astype(np.float64)
    bad[2, 5] = np.nan
    with pytest.raises(DataError, match=r"^X holds NaN or infinite values \(first at row 2, feature 5: nan\)"):
        model.transform(bad)
    counts = SavedModel(
        zdim.VAE(zdim.VAEConfig(input_dim=6, latent_dim=2, likelihood="poisson", hidden=(8,))).eval(),
        zdim.Preprocessing.identity(6, "poisson"),
    )
    assert counts.transform(np.ones((3, 6))).shape == (3, 2)
    with pytest.raises(DataError, match=r"negative values \(first at row 1, feature 0: -2\); this poisson model"):
        counts.transform(np.array([[1.0] * 6, [-2.0] + [1.0] * 5]))


def test_internal_loader_gives_the_torch_module(table_run):
    _, _, folder = table_run
    vae = load_vae(folder)
    assert isinstance(vae, zdim.VAE) and not vae.training
    assert load_model(folder / "model.safetensors").module.config == vae.config
    assert zdim.load_model is load_model and zdim.SavedModel is SavedModel


def test_model_json_without_preprocessing_loads_as_identity(table_run, tmp_path):
    _, data, folder = table_run
    for name in ("model.safetensors", "model.json"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    meta = read_json(tmp_path / "model.json")
    meta.pop("preprocessing")
    write_json(tmp_path / "model.json", meta)
    model = load_model(tmp_path)
    assert not model.preprocessing_known and model.preprocessing.is_identity
    assert "preprocessing unknown" in repr(model)
    x = data.test.numpy()  # already in model units: used as given
    np.testing.assert_array_equal(model.transform(x), model.module.transform(data.test).numpy())


def test_preprocessing_json_round_trip():
    data = load_data(np.random.default_rng(0).normal(5.0, 3.0, size=(50, 4)))
    pre = data.preprocessing
    back = Preprocessing.from_dict(read_back(pre.to_dict()))
    assert back.scale == pre.scale and back.likelihood == "gaussian" and back.n_features == 4
    np.testing.assert_array_equal(back.mean, pre.mean)
    np.testing.assert_array_equal(back.std, pre.std)
    x = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    np.testing.assert_allclose(back.invert(back.apply(x)), x, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        Preprocessing.from_dict({**pre.to_dict(), "mean": [0.0]})
    assert pickle.loads(pickle.dumps(pre)).to_dict() == pre.to_dict()


def read_back(d):
    import json

    return json.loads(json.dumps(d))
