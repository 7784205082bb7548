from dataclasses import replace

import numpy as np
import pytest
import torch

from zdim.errors import ConfigError, RunDirError
from zdim.files import read_json
from zdim.grid import default_dims
from zdim.saved import load_model
from zdim.sweeps.execute import sweep
from zdim.sweeps.planning.config import SweepConfig
from zdim.testing import make_planted_data
from zdim.training.config import TrainConfig

from .conftest import make_data

FAST = TrainConfig(epochs=4, batch_size=64, patience=0)
FIXED = dict(extend=False, refine=False)  # the grid as given


def cfg(dims, **kw):  # used with FIXED: these tests are about the run directory, not the grid
    return SweepConfig(dims=dims, hidden=(16,), train=FAST, k=10, **kw)


def test_sweep_writes_run_directory(tmp_path, tiny_binary):
    out = tmp_path / "run"
    r = sweep(tiny_binary, config=cfg((1, 3), seeds=2), out=out, **FIXED)
    assert sorted(p.name for p in (out / "trials").iterdir()) == [
        "dim-001-seed-0",
        "dim-001-seed-1",
        "dim-003-seed-0",
        "dim-003-seed-1",
    ]
    for f in ("run.json", "results.csv", "recommendation.json"):
        assert (out / f).is_file(), f
    assert not list(out.glob("study.journal*"))  # the run directory is the record: no Optuna study beside it
    for t in (out / "trials").iterdir():
        names = {p.name for p in t.iterdir()}
        assert names == {"model.safetensors", "model.json", "metrics.json", "history.csv", "heldout.safetensors"}
    table = r.table
    assert list(table["dim"]) == [1, 1, 3, 3] and (table["status"] == "complete").all()
    assert r.recommended_dim in (1, 3)
    assert read_json(out / "recommendation.json")["dim"] == r.recommended_dim
    assert read_json(out / "run.json")["data"]["fingerprint"] == tiny_binary.fingerprint
    m = load_model(out / "trials" / "dim-003-seed-1")
    assert m.latent_dim == 3


def test_sweep_in_memory_writes_nothing(tmp_path, tiny_binary, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = sweep(tiny_binary, config=cfg((2,)), **FIXED)
    assert r.run_dir is None and len(r.trials) == 1 and list(tmp_path.iterdir()) == []


def test_resume_reuses_finished_trials_and_redoes_corrupt_ones(tmp_path, tiny_binary):
    out = tmp_path / "run"
    sweep(tiny_binary, config=cfg((1, 2, 3)), **FIXED, out=out)
    kept = out / "trials" / "dim-001-seed-0" / "model.safetensors"
    stamp = kept.stat().st_mtime_ns
    corrupt = out / "trials" / "dim-002-seed-0" / "model.safetensors"
    corrupt.write_bytes(corrupt.read_bytes()[:100])
    before = read_json(out / "trials" / "dim-003-seed-0" / "metrics.json")
    r = sweep(tiny_binary, config=cfg((1, 2, 3, 4)), **FIXED, out=out, resume=True, extend_grid=True)
    assert kept.stat().st_mtime_ns == stamp  # never retrained
    assert load_model(corrupt.parent).latent_dim == 2  # redone, loads again
    assert read_json(out / "trials" / "dim-003-seed-0" / "metrics.json") == before
    assert sorted(t.dim for t in r.trials) == [1, 2, 3, 4]
    # the redone trial equals a fresh run with the same seed (reproducible on CPU)
    fresh = sweep(tiny_binary, config=cfg((2,)), **FIXED, out=tmp_path / "fresh")
    assert fresh.trials[0].nll == pytest.approx(read_json(corrupt.parent / "metrics.json")["nll"])


def test_existing_run_directory_is_not_touched(tmp_path, tiny_binary):
    out = tmp_path / "run"
    sweep(tiny_binary, config=cfg((1,)), **FIXED, out=out)
    listing = sorted(p.name for p in out.rglob("*"))
    with pytest.raises(RunDirError, match="already exists.*--resume.*--overwrite"):
        sweep(tiny_binary, config=cfg((1,)), **FIXED, out=out)
    assert sorted(p.name for p in out.rglob("*")) == listing
    r = sweep(tiny_binary, config=cfg((2,)), **FIXED, out=out, overwrite=True)
    assert [t.dim for t in r.trials] == [2]


def test_resume_refuses_other_data(tmp_path, tiny_binary, tiny_gaussian):
    out = tmp_path / "run"
    sweep(tiny_binary, config=cfg((1,)), **FIXED, out=out)
    with pytest.raises(RunDirError, match="other data"):
        sweep(tiny_gaussian, config=cfg((1,)), **FIXED, out=out, resume=True)


def test_size_above_features_fails_before_writing(tmp_path, tiny_binary):
    with pytest.raises(ConfigError, match="latent size 17 exceeds the 16 features"):
        sweep(tiny_binary, config=cfg((2, 17)), **FIXED, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_diverging_trial_is_recorded_as_failed(tmp_path, tiny_gaussian):
    bad = make_data(tiny_gaussian.train.numpy().copy())
    bad.train[5, 0] = float("nan")
    out = tmp_path / "run"
    r = sweep(bad, config=cfg((1, 2)), **FIXED, out=out)
    assert [t.status.value for t in r.trials] == ["failed", "failed"]
    assert "diverged" in r.trials[0].reason and r.recommendation is None
    assert "failed" in (out / "results.csv").read_text()


def test_default_dims():
    assert default_dims(64) == (1, 2, 4, 8, 16, 32, 64)
    assert default_dims(10) == (1, 2, 4, 8, 10)
    assert default_dims(784) == (1, 2, 4, 8, 16, 32, 64)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(dims=()), "no latent sizes"),
        (dict(dims=(0, 2)), "not a positive"),
        (dict(dims=(2,), seeds=0), "seeds"),
        (dict(dims=(2,), k=0), "importance"),
    ],
)
def test_sweep_config_errors(kw, match):
    with pytest.raises(ConfigError, match=match):
        SweepConfig(**kw)


def test_recommends_the_planted_dimension():
    """Known answer: data on a 2-D nonlinear manifold in 10-D."""
    data = make_data(make_planted_data(2, 10, 1500, seed=2, noise=0.05))
    config = SweepConfig(dims=(1, 2, 4, 8), hidden=(64, 64), train=TrainConfig(epochs=60, batch_size=128, patience=10))
    r = sweep(data, config=config)
    assert abs(r.recommended_dim - 2) <= 1
    nll = {row["dim"]: row["nll_mean"] for row in r.recommendation.per_dim}
    assert nll[1] > nll[2] + 0.5  # one unit is clearly not enough
    assert np.isfinite(list(nll.values())).all()
    # the over-sized model's active units are within 1 of d with the Gaussian noise-scale hold off; the
    # hold (the default) opens more of them on this set (4 to 5 of 8 in runs of this test)
    # (without the linear start, whose PCA directions keep more units open in 60 epochs on this set)
    off = replace(config, linear=False, train=replace(config.train, sigma_init=1.0, sigma_warmup_epochs=0.0))
    assert abs(sweep(data, config=off).recommendation.largest_active_units - 2) <= 1


def test_trials_record_generation_metrics(tmp_path, tiny_binary):
    import pandas as pd

    out = tmp_path / "run"
    sweep(tiny_binary, config=cfg((2,)), **FIXED, out=out)
    m = read_json(out / "trials" / "dim-002-seed-0" / "metrics.json")
    assert m["gen_features"].startswith("pca-train-")
    assert 0.0 <= m["gen_precision"] <= 1.0 and m["gen_fd"] >= 0.0 and np.isfinite(m["gen_mmd"])
    row = pd.read_csv(out / "results.csv").iloc[0]
    assert row["gen_fd"] == pytest.approx(m["gen_fd"]) and row["gen_features"] == m["gen_features"]


def test_refine_bisects_down_to_adjacent_sizes(tmp_path):
    # enough data and training that size 1 is clearly worse than 8 (beyond its paired standard error)
    data = make_data(make_planted_data(3, 8, 1000, seed=1))
    train = TrainConfig(epochs=40, batch_size=64, lr=1e-2, patience=0)
    config = SweepConfig(dims=(1, 8), hidden=(16,), train=train, k=10)
    out = tmp_path / "run"
    r = sweep(data, config=config, out=out, refine=True, rule="nll-knee", mode="per-size")
    tried = sorted({t.dim for t in r.trials if t.complete})
    chosen = r.recommended_dim
    assert set(tried) >= {1, 8} and len(tried) > 2  # extra sizes were trained in the same study
    lower = max(d for d in tried if d < chosen) if chosen > 1 else 0
    assert chosen - lower == 1  # exact: the size below the recommendation was tried and rejected
    assert set(read_json(out / "run.json")["sweep"]["dims"]) == set(tried)


def test_progress_shows_each_finished_trial_and_the_evaluation(tiny_binary, capsys):
    cfg = SweepConfig(dims=(1, 2), hidden=(8,), k=3, train=TrainConfig(epochs=2, patience=0))
    sweep(tiny_binary, config=cfg, progress=True, **FIXED)
    err = capsys.readouterr().err
    assert "dim 1 seed 0: NLL" in err and "dim 2 seed 0: NLL" in err
    assert "evaluating 2 members (IWAE k=3" in err and "2/2" in err


def test_trials_record_whether_they_converged(tiny_binary):
    short = sweep(tiny_binary, config=SweepConfig(dims=(1,), hidden=(8,), k=3, train=TrainConfig(epochs=2)), **FIXED)
    assert short.trials[0].converged is False and short.trials[0].window_improvement is None
    assert any("not converged" in w or "had not converged" in w for w in short.recommendation.warnings)
    assert not short.recommendation.settled


def test_the_grid_grows_at_its_edge_until_a_unit_collapses(tmp_path):
    x = make_planted_data(4, 12, 600, seed=0)  # four latent factors: sizes 1 and 2 cannot hold them
    data = make_data(x)
    # (trained from scratch: 15 short epochs from a linear start read the linear model's reach, which on
    # this curved set keeps growing past 4)
    cfg = SweepConfig(
        dims=(1, 2), hidden=(32,), k=5, linear=False, train=TrainConfig(epochs=15, batch_size=32, patience=0)
    )
    r = sweep(data, config=cfg, out=tmp_path / "run", refine=False)
    tried = sorted({t.dim for t in r.trials})
    assert tried[:2] == [1, 2] and len(tried) > 2 and tried[2] == 4  # doubled at the edge
    assert "The grid grew at its edge: size 4 was added" in r.recommendation.rationale
    assert read_json(tmp_path / "run" / "run.json")["sweep"]["dims"] == tried
    fixed = sweep(data, config=cfg, extend=False, refine=False)
    assert sorted({t.dim for t in fixed.trials}) == [1, 2]


@pytest.mark.parametrize("mode", ["per-size", "settle"])
def test_eval_samples_scores_every_trial_on_one_subset_and_the_answer_on_all(tmp_path, mode):
    from zdim.sweeps.planning.config import eval_data
    from zdim.sweeps.records.runs import RunDir

    data = make_data(make_planted_data(2, 8, 1000, seed=1))
    n = data.test.shape[0]
    train = TrainConfig(epochs=3, batch_size=64, patience=0)
    config = SweepConfig(dims=(1, 2), seeds=2, hidden=(16,), train=train, k=5, eval_samples=60)
    r = sweep(data, config=config, out=tmp_path / "run", mode=mode, **FIXED)
    assert n > 60 and all(t.n == 60 for t in r.trials)
    sub = eval_data(data, config).test
    assert sub.shape[0] == 60 and torch.equal(sub, eval_data(data, config).test)  # one fixed subset
    run = RunDir(tmp_path / "run")
    assert {len(run.read_per_sample(t.dim, t.seed)) for t in r.trials} == {60}
    rec = r.recommendation
    assert rec.full_test["n"] == n and set(rec.full_test["nll_per_seed"]) == {"0", "1"}
    assert f"whole test split ({n} samples) size {rec.dim}" in rec.rationale and "use 60 of them" in rec.rationale
    assert read_json(tmp_path / "run" / "recommendation.json")["full_test"] == rec.full_test
    assert eval_data(data, SweepConfig(dims=(1,), eval_samples=10**6)) is data  # more than there are: all


def test_eval_samples_must_be_positive():
    with pytest.raises(ConfigError, match="--eval-samples"):
        SweepConfig(dims=(1,), eval_samples=0)


def test_eval_samples_must_be_an_integer():
    with pytest.raises(ConfigError, match="--eval-samples"):
        SweepConfig(dims=(1,), eval_samples=1.5)
