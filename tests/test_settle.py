"""Settle mode: every (size, seed) member trains together, epoch by epoch, until the answer settles."""

from __future__ import annotations

import pytest
import torch

from zdim.errors import ConfigError
from zdim.models import VAE, VAEConfig
from zdim.plan import SweepConfig
from zdim.report import build_report
from zdim.runs import RunDir, load_model
from zdim.search import sweep
from zdim.testing import make_planted_data
from zdim.train import TrainConfig, Trainer, fit

from .conftest import make_data


def test_interleaved_trainers_give_the_models_trained_alone(tiny_gaussian):
    """Each trainer keeps its own optimizer, shuffling and noise stream: round robin changes nothing."""
    cfgs = [TrainConfig(epochs=4, batch_size=32, patience=0, seed=s) for s in (0, 1)]

    def build(seed: int) -> VAE:
        torch.manual_seed(seed)
        return VAE(VAEConfig(8, 2, likelihood="gaussian", hidden=(16,)))

    alone = []
    for c in cfgs:
        m = build(c.seed)
        fit(m, tiny_gaussian.train, tiny_gaussian.val, c)
        alone.append(m)
    together = [build(c.seed) for c in cfgs]
    trainers = [Trainer(m, tiny_gaussian.train, tiny_gaussian.val, c) for m, c in zip(together, cfgs)]
    while not all(t.done for t in trainers):
        for t in trainers:
            if not t.done:
                t.run_epoch()
                torch.randn(7)  # someone else drawing from the global RNG in between changes nothing
    for t in trainers:
        t.finish()
    for a, b in zip(alone, together):
        for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(va, vb), k


def test_settle_stops_once_the_answer_is_stable_and_its_members_converged(tmp_path):
    data = make_data(make_planted_data(2, 10, 600, seed=3))
    cap = 150  # patience off: only settle mode can stop the members before the cap
    train = TrainConfig(epochs=cap, batch_size=64, lr=1e-2, patience=0)
    cfg = SweepConfig(dims=(1, 2, 4), hidden=(64,), k=5, train=train)
    r = sweep(data, config=cfg, out=tmp_path / "run", mode="settle", extend=False)
    settle = RunDir(tmp_path / "run").read_settle()
    assert settle is not None
    trace = settle["trace"]
    last = trace[-1]["epoch"]
    assert last < cap  # it stopped by itself, before the epoch cap
    window = settle["window"]
    answer = trace[-1]["dim"]
    assert all(t["dim"] == answer for t in trace[-window:])  # the answer held for the window
    chosen = [t for t in r.trials if t.dim == answer]
    assert chosen and all(t.converged for t in chosen)  # and its members had converged
    assert answer == r.recommended_dim == 2  # the planted dimension, on the test split too
    assert all(t.epochs_run == last and "settled" in t.extra["settle"] for t in r.trials)
    # every member is an ordinary trial
    for t in r.trials:
        assert load_model(tmp_path / "run" / "trials" / t.trial).latent_dim == t.dim
    assert r.recommendation is not None
    assert settle["how"] == f"the answer settled at epoch {last}"
    since = min(t["epoch"] for t in trace if all(u["dim"] == answer for u in trace if u["epoch"] >= t["epoch"]))
    assert (
        f"on the validation subset the answer was {answer} from epoch {since} on; training ended: {settle['how']}."
        in r.recommendation.rationale
    )
    html = build_report(tmp_path / "run").read_text()
    assert 'id="fig-settle"' in html and "When the answer settled" in html and settle["how"] in html


@pytest.mark.parametrize("kw,flag", [({"workers": 2}, "--workers"), ({"prune": True}, "--prune")])
def test_settle_refuses_what_it_cannot_do(tiny_binary, tmp_path, kw, flag):
    cfg = SweepConfig(dims=(1, 2), hidden=(8,), k=3, train=TrainConfig(epochs=2))
    with pytest.raises(ConfigError, match=flag):
        sweep(tiny_binary, config=cfg, out=tmp_path / "run", mode="settle", **kw)
    assert not (tmp_path / "run").exists()


def test_an_unknown_mode_is_a_config_error(tiny_binary):
    with pytest.raises(ConfigError, match="--mode"):
        sweep(tiny_binary, config=SweepConfig(dims=(1,), hidden=(8,), train=TrainConfig(epochs=1)), mode="fast")


def test_a_resumed_settle_run_equals_the_uninterrupted_run(tmp_path, monkeypatch, tiny_gaussian):
    import zdim.settle as settle

    monkeypatch.setattr(settle, "CHECKPOINT_SECONDS", 0.0)  # a checkpoint after every round
    train = TrainConfig(epochs=12, batch_size=64, lr=1e-2, patience=0)
    cfg = SweepConfig(dims=(1, 2, 4), hidden=(16,), k=5, train=train)
    whole = sweep(tiny_gaussian, config=cfg, out=tmp_path / "whole", mode="settle", extend=False)

    real = settle.SettleExecutor._epoch
    rounds = []

    def interrupted(self, m, progress, subset):
        if m.trainer.epoch == 6 and not rounds:
            rounds.append(m.trainer.epoch)
            raise KeyboardInterrupt  # as a Ctrl-C in the middle of round 7
        real(self, m, progress, subset)

    monkeypatch.setattr(settle.SettleExecutor, "_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sweep(tiny_gaussian, config=cfg, out=tmp_path / "cut", mode="settle", extend=False)
    assert (tmp_path / "cut" / "settle" / "current.json").is_file() and not (tmp_path / "cut" / "trials").exists()
    monkeypatch.setattr(settle.SettleExecutor, "_epoch", real)
    resumed = sweep(tiny_gaussian, config=cfg, out=tmp_path / "cut", mode="settle", extend=False, resume=True)
    assert [(t.dim, t.nll, t.epochs_run, t.best_epoch) for t in resumed.trials] == [
        (t.dim, t.nll, t.epochs_run, t.best_epoch) for t in whole.trials
    ]
    assert RunDir(tmp_path / "cut").read_settle()["trace"] == RunDir(tmp_path / "whole").read_settle()["trace"]
    assert not (tmp_path / "cut" / "settle").exists()  # the checkpoint is gone once the members are trials


def test_a_time_budget_stops_every_member_and_the_answer_says_they_had_not_converged(tiny_gaussian):
    cfg = SweepConfig(dims=(1, 2), hidden=(16,), k=3, train=TrainConfig(epochs=500, patience=0))
    r = sweep(tiny_gaussian, config=cfg, mode="settle", extend=False, time_budget=1.0)
    assert all(t.epochs_run < 500 and "time budget" in t.extra["settle"] for t in r.trials)
    with pytest.raises(ConfigError, match="--mode settle"):
        sweep(tiny_gaussian, config=cfg, time_budget=1.0, mode="per-size")
    with pytest.raises(ConfigError, match="--time-budget"):
        sweep(tiny_gaussian, config=cfg, mode="settle", time_budget=0)


def test_settle_is_the_default_of_a_single_process_sweep_with_three_seeds(tiny_binary, tmp_path):
    from zdim.plan import resolve_mode

    assert resolve_mode(None) == "settle" and resolve_mode(None, workers=2) == "per-size"
    assert resolve_mode(None, storage="sqlite://") == resolve_mode(None, prune=True) == "per-size"
    assert resolve_mode(None, nested=True) == "nested" and resolve_mode("per-size", workers=1) == "per-size"
    assert resolve_mode(None, workers=2, time_budget=5.0) == "settle"  # then refused: --workers with settle
    r = sweep(tiny_binary, dims=(1, 2), epochs=2, out=tmp_path / "run", extend=False)
    assert sorted(t.key for t in r.trials) == [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)]
    assert RunDir(tmp_path / "run").read_settle() is not None  # it ran in settle mode
    one = sweep(tiny_binary, dims=(1, 2), epochs=2, seeds=1, extend=False)
    assert sorted(t.key for t in one.trials) == [(1, 0), (2, 0)]
    per = sweep(tiny_binary, dims=(1, 2), epochs=2, mode="per-size", extend=False)
    assert sorted(t.key for t in per.trials) == [(1, 0), (2, 0)]  # one seed outside settle mode


def test_settle_members_are_trials_of_the_sweeps_optuna_study(tiny_binary, tmp_path):
    import optuna

    from zdim.scheduler import final_records, open_study

    cfg = SweepConfig(dims=(1, 2), seeds=2, hidden=(8,), k=3, train=TrainConfig(epochs=2))
    r = sweep(tiny_binary, config=cfg, out=tmp_path / "run", mode="settle", extend=False)
    run = RunDir(tmp_path / "run")
    study = open_study(run, None, "zdim-sweep")
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert sorted((t.params["dim"], t.params["seed"]) for t in done) == sorted(t.key for t in r.trials)
    assert {(t.params["dim"], t.params["seed"]): t.value for t in done} == {t.key: t.nll for t in r.trials}
    # a per-size resume of the same run directory finds every point finished and trains nothing
    assert set(final_records(study, run)) == {t.key for t in r.trials}
    again = sweep(tiny_binary, config=cfg, out=tmp_path / "run", mode="per-size", extend=False, resume=True)
    assert [(t.key, t.nll) for t in again.trials] == [(t.key, t.nll) for t in r.trials]
    assert len(open_study(run, None, "zdim-sweep").get_trials()) == len(done)


def test_a_member_that_has_not_started_to_use_its_latents_is_not_converged(tiny_gaussian):
    """A flat validation NLL at the start (the model decodes the feature means and ignores its latents)
    is not convergence: settle mode must not stop such members, nor take them for collapsed."""
    from types import SimpleNamespace

    from zdim.settle import Member

    trainer = SimpleNamespace(done=False, result=SimpleNamespace(stopped_early=False), epoch=12, asleep=True)
    m = Member(dim=4, seed=0, model=None, trainer=trainer, scores=[5.0] * 12)
    assert not m.converged(window=5, tol=0.1)
    trainer.asleep = False
    assert m.converged(window=5, tol=0.1)


def test_trainer_asleep_until_its_kl_reaches_the_threshold_or_the_grace_passes():
    from zdim.train import WAKE_GRACE, Trainer

    x = torch.randn(64, 3)
    model = VAE(VAEConfig(input_dim=3, latent_dim=2, hidden=(8,), likelihood="gaussian"))
    t = Trainer(model, x, x, TrainConfig(patience=2, sigma_warmup_epochs=0))  # no warm-up to wait for
    assert t.asleep
    t.awake = 3
    assert not t.asleep
    t.awake, t.epoch = 0, WAKE_GRACE * 2
    assert not t.asleep
