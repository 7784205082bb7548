"""zdim tune, checked before it trains: a run made from data in memory, a size that is no size, and a
--epochs too short for what the sweep's own models needed."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import zdim
from zdim.cli import main
from zdim.testing import make_planted_data


@pytest.fixture
def frame_run(tmp_path):
    # a curved sheet: training improves on the linear start, so the sweep's models have a best epoch
    x = make_planted_data(2, 5, 150, seed=0).astype(np.float32)
    frame = pd.DataFrame(x, columns=list("abcde"))
    zdim.sweep(frame, dims=[1, 2], seeds=1, epochs=6, patience=0, hidden=(8,), k=3, out=tmp_path / "run", report=False)
    return tmp_path / "run", frame


def test_tune_of_a_run_made_from_a_dataframe_says_how(frame_run, capsys):
    run, frame = frame_run
    assert main(["tune", str(run), "--trials", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "was made from data given in memory (<dataframe>)" in err and "zdim.tune(" in err and err.count("\n") == 1
    res = zdim.tune(run, data=zdim.load_data(frame), n_trials=1, epochs=2)  # and from Python it works
    assert res.tuning["dim"] == json.loads((run / "recommendation.json").read_text())["dim"]  # the run's answer


def test_tune_refuses_a_size_that_is_no_size_before_anything(frame_run, capsys):
    run, _ = frame_run
    assert main(["tune", str(run), "--dim", "0", "--quiet"]) == 2
    assert "--dim 0 is not a latent size" in capsys.readouterr().err


def test_tune_warns_when_epochs_stop_trials_before_the_sweeps_models_were_best(frame_run):
    run, frame = frame_run
    with pytest.raises(zdim.ZdimError, match="was never tuned at size 2 .* drop resume=True to start one$"):
        zdim.tune(run, dim=2, data=zdim.load_data(frame), n_trials=1, epochs=1, resume=True)  # issue 37
    assert not (run / "tune").exists() and not (run / "tuning.json").exists()  # refused before anything
    res = zdim.tune(run, dim=2, data=zdim.load_data(frame), n_trials=1, epochs=1)
    assert res.warnings and "--epochs 1 stops every tuning trial before" in res.warnings[0]
    assert "warning: --epochs 1" in res.summary()
    # issue 37: one epoch leaves the tuned model worse on the test split than the sweep's 6: the sweep's is kept
    assert res.final_test["nll"] > res.sweep_test["nll"] and res.tuning["kept"] == "sweep"
    assert res.tuning["final_model"] == "trials/dim-002-seed-0" and res.tuning["tuned_model"] == "tune/final"
    assert (
        "the sweep's model is kept" in res.summary()
        and f"Final model: {run / 'trials/dim-002-seed-0'}" in res.summary()
    )
    again = zdim.tune(run, dim=2, data=zdim.load_data(frame), n_trials=2, epochs=1, resume=True)  # tuned: goes on
    assert again.tuning["n_trials"] == 2


def test_tune_summary_prints_parameters_to_four_significant_digits(frame_run):
    run, frame = frame_run
    res = zdim.tune(run, dim=2, data=zdim.load_data(frame), n_trials=2, epochs=2)
    res.tuning["best"]["params"] = dict(res.tuning["best"]["params"], warmup=240.91569012525733)
    text = res.summary()
    assert "warmup 240.9" in text and "240.91569" not in text and "{" not in text
    res.tuning["importances"] = {"beta": 0.7, "lr": 0.3}  # issue 37: importances from 2 trials are a hint
    assert "importances (from 2 complete trials, fewer than 10: a hint only): beta 0.70" in res.summary()


def test_tune_resume_of_a_run_never_tuned_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    """Issue 37: `zdim tune --resume` on a run never tuned (at that size) started afresh; it is refused,
    exit code 2, before anything is written; a tuning that began goes on."""
    monkeypatch.setattr("zdim.printing.write_report", lambda *a: None)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(150, 5)).astype(np.float32))
    out = tmp_path / "run"
    quick = ["--trials", "1", "--epochs", "1", "--quiet", "--no-report", "--out", str(out)]
    assert main(["tune", str(tmp_path / "x.npy"), "--dim", "1", *quick]) == 0
    capsys.readouterr()
    before = (out / "run.json").read_text()
    assert main(["tune", str(tmp_path / "x.npy"), "--dim", "2", *quick, "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "was never tuned at size 2 (no study 'zdim-tune-dim-2')" in err
    assert "drop --resume to start one" in err and (out / "run.json").read_text() == before
    assert main(["tune", str(out), "--dim", "2", "--trials", "1", "--resume", "--quiet"]) == 2
    assert main(["tune", str(out), "--dim", "1", "--trials", "2", "--epochs", "1", "--resume", "--quiet"]) == 0
