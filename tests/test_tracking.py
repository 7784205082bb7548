"""--mlflow: each trial's parameters, metrics and weights land in a local MLflow file store."""

import sys

import numpy as np
import pytest

from zdim.cli import main
from zdim.errors import ConfigError
from zdim.files import read_json
from zdim.saved import load_model
from zdim.testing import make_planted_data
from zdim.tracking import require_mlflow


def test_missing_mlflow_fails_before_the_sweep(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'zdim\[mlflow\]'"):
        require_mlflow()
    np.save(tmp_path / "x.npy", make_planted_data(2, 6, 100, seed=0))
    code = main(
        [
            "sweep",
            str(tmp_path / "x.npy"),
            "--dims",
            "1",
            "--epochs",
            "1",
            "--mlflow",
            "--quiet",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "zdim[mlflow]" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing trained, nothing written


def test_sweep_logs_each_trial_to_a_file_store(tmp_path, capsys):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    np.save(tmp_path / "x.npy", make_planted_data(2, 6, 200, seed=0))
    out = tmp_path / "run"
    code = main(
        [
            "sweep",
            str(tmp_path / "x.npy"),
            "--dims",
            "1,2",
            "--epochs",
            "3",
            "--hidden",
            "8",
            "--k",
            "5",
            "--quiet",
            "--no-refine",
            "--no-extend",
            "--mlflow",
            "--seeds",
            "1",
            "--out",
            str(out),
        ]
    )
    assert code == 0 and "MLflow: logged 2 trial(s)" in capsys.readouterr().out
    client = MlflowClient(tracking_uri=(out / "mlruns").resolve().as_uri())
    exp = client.get_experiment_by_name("zdim-x")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    assert set(runs) == {"sweep zdim-x", "dim-001-seed-0", "dim-002-seed-0"}
    parent = runs["sweep zdim-x"]
    assert parent.data.metrics["recommended_dim"] == read_json(out / "recommendation.json")["dim"]
    for name in ("dim-001-seed-0", "dim-002-seed-0"):
        run, record = runs[name], read_json(out / "trials" / name / "metrics.json")
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id and run.info.status == "FINISHED"
        assert run.data.params["dim"] == str(record["dim"]) and run.data.params["train.epochs"] == "3"
        assert run.data.metrics["nll"] == pytest.approx(record["nll"])
        assert run.data.metrics["active_units"] == record["active_units"]
        curve = client.get_metric_history(run.info.run_id, "val_neg_elbo")
        assert sorted(m.step for m in curve) == [1, 2, 3]
        kl = client.get_metric_history(run.info.run_id, "kl_per_unit")
        assert len(kl) == record["dim"]
        # the logged model is the trial folder: it loads with zdim.load_model, no pickle involved
        local = client.download_artifacts(run.info.run_id, "model", str(tmp_path / name))
        assert load_model(local).latent_dim == record["dim"]
