"""zdim tune, checked before it trains: a run made from data in memory, a size that is no size, and a
--epochs too short for what the sweep's own models needed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import zdim
from zdim.cli import main


@pytest.fixture
def frame_run(tmp_path):
    x = np.random.default_rng(0).normal(size=(150, 5)).astype(np.float32)
    frame = pd.DataFrame(x, columns=list("abcde"))
    zdim.sweep(frame, dims=[1, 2], seeds=1, epochs=6, patience=0, hidden=(8,), k=3, out=tmp_path / "run", report=False)
    return tmp_path / "run", frame


def test_tune_of_a_run_made_from_a_dataframe_says_how(frame_run, capsys):
    run, frame = frame_run
    assert main(["tune", str(run), "--trials", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "was made from data given in memory (<dataframe>)" in err and "zdim.tune(" in err and err.count("\n") == 1
    res = zdim.tune(run, data=zdim.load_data(frame), n_trials=1, epochs=2)  # and from Python it works
    assert res.tuning["dim"] in (1, 2)


def test_tune_refuses_a_size_that_is_no_size_before_anything(frame_run, capsys):
    run, _ = frame_run
    assert main(["tune", str(run), "--dim", "0", "--quiet"]) == 2
    assert "--dim 0 is not a latent size" in capsys.readouterr().err


def test_tune_warns_when_epochs_stop_trials_before_the_sweeps_models_were_best(frame_run):
    run, frame = frame_run
    res = zdim.tune(run, dim=2, data=zdim.load_data(frame), n_trials=1, epochs=1)
    assert res.warnings and "--epochs 1 stops every tuning trial before" in res.warnings[0]
    assert "warning: --epochs 1" in res.summary()


def test_tune_summary_prints_parameters_to_four_significant_digits(frame_run):
    run, frame = frame_run
    res = zdim.tune(run, dim=2, data=zdim.load_data(frame), n_trials=2, epochs=2)
    res.tuning["best"]["params"] = dict(res.tuning["best"]["params"], warmup=240.91569012525733)
    text = res.summary()
    assert "warmup 240.9" in text and "240.91569" not in text and "{" not in text
