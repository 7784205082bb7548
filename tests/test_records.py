"""TrialRecord: the typed trial record and its flat JSON form (metrics.json, results.csv, the study)."""

import json

import pytest

from zdim.files import dumps_json
from zdim.records import TrialRecord, TrialStatus, trial_name


def test_a_stored_record_reads_back_unchanged():
    d = {
        "trial": "dim-002-seed-1",
        "dim": 2,
        "seed": 1,
        "status": "complete",
        "nll": 98.5,
        "kl_per_unit": [0.1, 2.0],
        "active_units": 1,
        "gen_fd": 3.25,
        "gen_features": "pca-train-16",
        "from_a_newer_version": {"x": 1},
    }
    r = TrialRecord.from_dict(d)
    assert r.status is TrialStatus.COMPLETE and r.complete and r.key == (2, 1) and r.trial == trial_name(2, 1)
    assert r.nll == 98.5 and r.generation["gen_fd"] == 3.25 and r.extra == {"from_a_newer_version": {"x": 1}}
    assert r.to_dict() == d
    assert TrialRecord.from_dict(json.loads(dumps_json(r.to_dict()))) == r


def test_metric_reads_any_scalar_by_name_and_refuses_what_is_not_one():
    r = TrialRecord(dim=3, seed=0, status="complete", nll=float("nan"), active_units=2, generation={"gen_fd": 1.5})
    assert r.metric("nll") is None  # not finite
    assert r.metric("active_units") == 2.0 and r.metric("gen_fd") == 1.5 and r.metric("dim") == 3.0
    assert r.metric("kl_per_unit") is None and r.metric("unknown") is None


def test_a_failed_record_is_short_and_flat_has_no_lists():
    r = TrialRecord(dim=1, seed=0, status=TrialStatus.FAILED, reason="diverged")
    assert r.to_dict() == {"trial": "dim-001-seed-0", "dim": 1, "seed": 0, "status": "failed", "reason": "diverged"}
    full = TrialRecord(dim=1, seed=0, status="complete", kl_per_unit=[1.0], unit_variance=[0.5], nll=1.0)
    assert "kl_per_unit" not in full.flat() and full.flat()["nll"] == 1.0


@pytest.mark.parametrize("bad", [{}, {"dim": 1, "seed": 0}, {"dim": 1, "seed": 0, "status": "done"}, {"dim": "x"}])
def test_what_is_not_a_record_is_a_value_error(bad):
    with pytest.raises(ValueError, match="not a trial record"):
        TrialRecord.from_dict(bad)
