"""SweepResult.to_json / from_json: a lossless round trip, and clear errors for what is not a result."""

import json
import math

import pandas as pd
import pytest

from zdim.errors import ResultFileError
from zdim.records import TrialRecord
from zdim.sweeps.execute import sweep
from zdim.sweeps.planning.config import SweepConfig
from zdim.sweeps.records.result import SweepResult
from zdim.training.config import TrainConfig

from .conftest import make_data


def test_round_trip_keeps_trials_recommendation_and_table(tmp_path, tiny_binary):
    config = SweepConfig(
        dims=(1, 3), seeds=2, hidden=(16,), k=5, train=TrainConfig(epochs=2, batch_size=64, patience=0)
    )
    r = sweep(tiny_binary, config=config, out=tmp_path / "run")
    path = tmp_path / "result.json"
    text = r.to_json(path)
    assert path.read_text() == text and json.loads(text)["format"] == "zdim-sweep-result"
    for back in (SweepResult.from_json(text), SweepResult.from_json(path), SweepResult.from_json(str(path))):
        assert back.trials == r.trials  # list-valued metrics (kl_per_unit) included
        assert back.recommendation == r.recommendation and back.recommended_dim == r.recommended_dim
        assert back.data == r.data and back.config == r.config and back.run_dir == r.run_dir
        pd.testing.assert_frame_equal(back.table, r.table)
    assert len(r.table) == 4


def test_failed_trials_and_no_recommendation_round_trip(tiny_gaussian):
    bad = make_data(tiny_gaussian.train.numpy().copy())
    bad.train[5, 0] = float("nan")
    r = sweep(bad, config=SweepConfig(dims=(1,), hidden=(16,), k=5, train=TrainConfig(epochs=1)))
    back = SweepResult.from_json(r.to_json())
    assert back.recommendation is None and back.run_dir is None
    assert back.trials == r.trials and back.trials[0].status.value == "failed"


def test_non_finite_values_become_null():
    r = SweepResult(
        trials=[TrialRecord(dim=1, seed=0, status="complete", nll=math.inf)], recommendation=None, data={}, config={}
    )
    assert json.loads(r.to_json())["trials"][0]["nll"] is None  # strict JSON, no Infinity token


@pytest.mark.parametrize(
    "bad,match",
    [
        ("{not json", "not a zdim sweep result"),
        ('{"format": "other"}', "format"),
        ("no/such/file.json", "cannot read sweep result"),
    ],
)
def test_bad_input_is_one_clear_error(bad, match):
    with pytest.raises(ResultFileError, match=match):
        SweepResult.from_json(bad)
