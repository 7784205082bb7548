"""The Python API: an explicit, typed ``zdim.sweep``; DataFrames, labels, .npz splits and a given test split."""

import inspect
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import zdim
from zdim.cli import main
from zdim.data.dataset import load_data
from zdim.errors import ConfigError, DataError, RunDirError
from zdim.files import read_json
from zdim.messages import python_message
from zdim.testing import make_planted_data

QUICK = dict(epochs=2, hidden=(16,), k=3, report=False)
CLI_QUICK = ["--epochs", "2", "--hidden", "16", "--k", "3", "--quiet"]


def planted(n=200, D=6, seed=0):
    return make_planted_data(2, D, n, seed=seed, noise=0.05) * 4.0 + 1.0


@pytest.fixture
def npz_pair(tmp_path):
    x = planted(260)
    y = (x[:, 0] > x[:, 0].mean()).astype(np.int64)
    path = tmp_path / "split.npz"
    np.savez(path, X_train=x[:200], X_test=x[200:], y_train=y[:200], y_test=y[200:])
    return path, x, y


# ----------------------------------------------------------------------------- the signature


def test_sweep_has_an_explicit_signature():
    params = inspect.signature(zdim.sweep).parameters
    assert not any(p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) for p in params.values())
    for name in ("dims", "seeds", "epochs", "batch_size", "k", "tolerance", "y", "test", "array", "device", "model"):
        assert name in params
    assert params["device"].default == "auto" and params["hidden"].default is None  # (512, 256) unless a model
    assert "default ``(512, 256)``" in zdim.sweep.__doc__
    assert params["k"].default == 100 and zdim.sweep.__doc__ and "batch_size" in zdim.sweep.__doc__


def test_unknown_keyword_is_pythons_type_error():
    with pytest.raises(TypeError, match="unexpected keyword argument 'kay'"):
        zdim.sweep(planted(), dims=[2], kay=20)


def test_a_bad_value_names_the_keyword_not_the_flag():
    with pytest.raises(ConfigError) as err:
        zdim.sweep(planted(), dims=[2], epochs=1, batch_size=0, report=False)
    assert "batch_size=" in str(err.value) and "--" not in str(err.value)
    with pytest.raises(ConfigError, match=r"dims=") as err:
        zdim.sweep(planted(), dims=[0], report=False)
    assert "--dims" not in str(err.value)
    with pytest.raises(DataError, match=r"max_samples=") as err:
        zdim.sweep(planted(), dims=[2], max_samples=-1, report=False)
    assert "--max-samples" not in str(err.value)


def test_python_message_rewrites_every_flag():
    assert python_message("batch_size must be >= 1: fix --batch-size") == "batch_size must be >= 1: fix batch_size="
    assert python_message("pass e.g. --dims 2,4,8 or --dims 1-16") == "pass e.g. dims=[2, 4, 8] or dims=range(1, 17)"
    assert python_message("pass --likelihood auto to infer") == "pass likelihood='auto' to infer"
    assert python_message("pass --resume to finish it, or choose another --out") == (
        "pass resume=True to finish it, or choose another out="
    )
    assert python_message("--workers > 1 needs --storage") == "workers > 1 needs storage="


def test_run_dir_errors_name_keywords(tmp_path):
    x = planted()
    zdim.sweep(x, dims=[2], out=tmp_path / "run", **QUICK)
    with pytest.raises(RunDirError, match="resume=True") as err:
        zdim.sweep(x, dims=[2], out=tmp_path / "run", **QUICK)
    assert "--" not in str(err.value)


# ----------------------------------------------------------------------------- DataFrames and labels


def test_dataframe_and_y(tmp_path):
    x = planted()
    frame = pd.DataFrame(x, columns=[f"g{i}" for i in range(6)])
    y = np.arange(len(x)) % 3
    data = load_data(frame, y=y)
    assert data.feature_names == list(frame.columns) and data.y_train is not None
    assert len(data.y_train) + len(data.y_val) + len(data.y_test) == len(x)
    result = zdim.sweep(frame, dims=[2], y=y, out=tmp_path / "run", **QUICK)
    assert result.data["has_labels"] and result.trials[0].complete
    model = zdim.load_model(tmp_path / "run" / "trials" / "dim-002-seed-0")
    assert model.transform(frame).shape == (len(x), 2)
    assert "y" not in read_json(tmp_path / "run" / "run.json")["loader"]  # arrays are not recorded
    with pytest.raises(DataError, match="3 labels for 200 samples"):
        load_data(frame, y=[0, 1, 2])


def test_dataframe_with_a_text_column_is_a_mixed_table_or_gives_labels():
    frame = pd.DataFrame(planted(), columns=list("abcdef")).assign(kind="x")
    assert load_data(frame, keep_columns="kind").likelihood == "mixed:g6,b0,c2"  # one category, and the unknown
    with pytest.warns(zdim.DataNoteWarning, match="column 'kind' holds one value .'x'. in every row: dropped"):
        assert load_data(frame).likelihood == "gaussian"  # issue 37: a column of one value says nothing
    with pytest.raises(DataError, match=r"text column\(s\) 'kind' cannot have likelihood 'gaussian'.*label_column="):
        load_data(frame, likelihood="gaussian", keep_columns=["kind"])
    data = load_data(frame, label_column="kind")
    assert data.n_features == 6 and data.y_train is not None


# ----------------------------------------------------------------------------- .npz splits and --test


def test_npz_with_train_and_test_arrays(npz_pair):
    path, x, y = npz_pair
    data = load_data(path)
    assert data.extra["test_split"] == "given" and data.test.shape == (60, 6)
    assert data.train.shape[0] + data.val.shape[0] == 200
    np.testing.assert_array_equal(data.y_test, y[200:])
    # the test split gets the training split's standardization
    np.testing.assert_allclose(data.test.numpy(), (x[200:] - data.mean) / data.std, atol=1e-5)
    only = load_data(path, array="X_train")  # one array, split at random, labels from y_train
    assert only.extra["test_split"] == "random" and only.n_features == 6
    assert sum(len(v) for v in (only.y_train, only.y_val, only.y_test)) == 200
    with pytest.raises(DataError, match="array 'X_val' not found.*'X_train'"):
        load_data(path, array="X_val")
    with pytest.raises(DataError, match="array='X'.*npz"):
        load_data(x, array="X")


def test_given_test_split_and_its_feature_count(tmp_path):
    x, other = planted(200), planted(40, seed=9)
    data = load_data(x, test=other)
    assert data.extra["test_split"] == "given" and data.test.shape == (40, 6)
    np.testing.assert_allclose(data.test.numpy(), (other - data.mean) / data.std, atol=1e-5)
    assert load_data(x, test=other * 2).fingerprint != data.fingerprint  # the test split is fingerprinted
    with pytest.raises(DataError, match=r"^test split <array>: 5 features per sample, but the training data"):
        load_data(x, test=other[:, :5])
    with pytest.raises(DataError, match="test split has no labels"):
        load_data(x, y=np.zeros(200, dtype=int), test=other)


def test_cli_array_and_test_options(tmp_path, npz_pair, capsys):
    path, x, _ = npz_pair
    out = tmp_path / "run"
    assert main(["sweep", str(path), "--array", "X_train", "--dims", "2", "--out", str(out), *CLI_QUICK]) == 0
    info = read_json(out / "run.json")
    assert info["loader"]["array"] == "X_train" and info["data"]["n_test"] == 20
    test_file = tmp_path / "test.npy"
    np.save(test_file, planted(30, seed=5))
    out2 = tmp_path / "run2"
    args = ["sweep", str(path), "--array", "X_train", "--test", str(test_file), "--dims", "2", "--out", str(out2)]
    assert main([*args, *CLI_QUICK]) == 0
    assert read_json(out2 / "run.json")["data"]["n_test"] == 30
    # resume notices a changed test split
    np.save(test_file, planted(30, seed=6))
    capsys.readouterr()
    assert main([*args, "--resume", *CLI_QUICK]) == 2
    assert "other data" in capsys.readouterr().err
    np.save(test_file, planted(30, seed=6)[:, :4])
    assert main(["estimate-id", str(path), "--test", str(test_file)]) == 2
    assert "4 features per sample" in capsys.readouterr().err


def test_an_unsettled_answer_warns_the_python_caller_in_keywords(tmp_path):
    """Models that learned nothing (one epoch on noise) cannot support an answer: zdim.sweep and
    VAETransformer(latent_dim="auto") say so with a warning (the command line prints its warnings)."""
    import warnings

    x = np.random.default_rng(0).normal(size=(150, 6)).astype(np.float32)
    quick = dict(dims=(1, 2), epochs=1, hidden=(8,), k=2, extend=False, refine=False, report=False)
    with pytest.warns(zdim.UnsettledAnswerWarning, match="latent size [12] is not a settled answer") as got:
        res = zdim.sweep(x, **quick)
    assert res.recommendation is not None and not res.recommendation.settled
    text = str(got[0].message)
    assert "--" not in text and got[0].filename == __file__  # keywords; the warning points at the caller
    est = zdim.VAETransformer(latent_dim="auto", dims=(1, 2), epochs=1, hidden=(8,), k=2)
    with pytest.warns(zdim.UnsettledAnswerWarning) as got:
        est.fit(x)
    assert not est.sweep_result_.recommendation.settled
    assert issubclass(zdim.UnsettledAnswerWarning, UserWarning) and "UnsettledAnswerWarning" in zdim.__all__
    with warnings.catch_warnings():  # a settled answer: no warning
        warnings.simplefilter("error", zdim.UnsettledAnswerWarning)
        from zdim.messages import warn_unsettled

        warn_unsettled(SimpleNamespace(dim=2, settled=True, warnings=[]))


def test_a_run_made_before_the_issue_36_settings_resumes_and_trains_as_it_did(tmp_path):
    """A run.json without epoch_steps, lr_patience, noise or linear (made before they existed) resumes: its
    added sizes train one pass per epoch, without a plateau, with a learned noise scale, no linear path."""
    x = make_planted_data(2, 6, 200, seed=0)
    out = tmp_path / "run"
    zdim.sweep(x, dims=[1, 2], seeds=1, out=out, **QUICK)
    info = json.loads((out / "run.json").read_text())
    for key in ("epoch_steps", "lr_patience", "noise"):
        info["sweep"]["train"].pop(key)
    info["sweep"].pop("linear")
    (out / "run.json").write_text(json.dumps(info))
    again = zdim.sweep(x, dims=[1, 2, 3], seeds=1, out=out, resume=True, extend_grid=True, **QUICK)
    assert {t.dim for t in again.trials} >= {1, 2, 3}
    train = json.loads((out / "run.json").read_text())["sweep"]["train"]
    assert (train["epoch_steps"], train["lr_patience"], train["noise"]) == (1, 0, "learned")
