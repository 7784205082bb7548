"""Settle mode: every (size, seed) member trains together, epoch by epoch, until the answer settles."""

from __future__ import annotations

import os
import re
import signal
from dataclasses import replace

import pytest
import torch

from zdim.errors import ConfigError, Interrupted
from zdim.models.vae import VAE, VAEConfig
from zdim.report import build_report
from zdim.saved import load_model
from zdim.sweeps.execute import sweep
from zdim.sweeps.planning.config import SweepConfig
from zdim.sweeps.records.runs import RunDir
from zdim.testing import make_planted_data
from zdim.training.config import TrainConfig
from zdim.training.trainer import Trainer, fit

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
    assert settle["how"].startswith(f"the answer settled at epoch {last}; the largest further gain projected")
    assert settle["how"].endswith("for every member") or "at sizes" in settle["how"]
    since = min(t["epoch"] for t in trace if all(u["dim"] == answer for u in trace if u["epoch"] >= t["epoch"]))
    assert (
        f"on the validation subset the answer was {answer} from epoch {since} on; training ended: {settle['how']}."
        in r.recommendation.rationale
    )
    html = build_report(tmp_path / "run").read_text()
    assert 'id="fig-settle"' in html and "When the answer settled" in html and settle["how"] in html


@pytest.mark.parametrize("kw,flag", [({"prune": True}, "--prune"), ({"storage": "sqlite://"}, "--storage")])
def test_settle_refuses_what_it_cannot_do(tiny_binary, tmp_path, kw, flag):
    cfg = SweepConfig(dims=(1, 2), hidden=(8,), k=3, train=TrainConfig(epochs=2))
    with pytest.raises(ConfigError, match=flag):
        sweep(tiny_binary, config=cfg, out=tmp_path / "run", mode="settle", **kw)
    assert not (tmp_path / "run").exists()


def test_an_unknown_mode_is_a_config_error(tiny_binary):
    with pytest.raises(ConfigError, match="--mode"):
        sweep(tiny_binary, config=SweepConfig(dims=(1,), hidden=(8,), train=TrainConfig(epochs=1)), mode="fast")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_checkpoints_every_member_and_resume_equals_the_uninterrupted_run(
    tmp_path, monkeypatch, tiny_gaussian, capsys, signum
):
    """Ctrl-C (or SIGTERM) finishes the round of epochs, checkpoints every member and says so; --resume goes
    on from that epoch, says so, and ends where the uninterrupted run ends."""

    before = signal.getsignal(signal.SIGINT)  # the default handler, or SIG_IGN in a background job
    train = TrainConfig(epochs=12, batch_size=64, lr=1e-2, patience=0)
    cfg = SweepConfig(dims=(1, 2, 4), hidden=(16,), k=5, train=train)
    whole = sweep(tiny_gaussian, config=cfg, out=tmp_path / "whole", mode="settle", extend=False)

    import zdim.sweeps.executors.engines as engines

    real = engines.LocalEngine.step

    def interrupted(self, keys, lower=()):
        out = real(self, keys, lower)
        if any(s.epoch == 6 for s in out.values()):
            os.kill(os.getpid(), signum)  # the signal arrives during round 6
        return out

    monkeypatch.setattr(engines.LocalEngine, "step", interrupted)
    with pytest.raises(Interrupted, match="interrupted at epoch 6: every member is saved in .*--resume") as err:
        sweep(tiny_gaussian, config=cfg, out=tmp_path / "cut", mode="settle", extend=False)
    assert err.value.signum == signum and isinstance(err.value, KeyboardInterrupt)
    assert (tmp_path / "cut" / "settle" / "current.json").is_file() and not (tmp_path / "cut" / "trials").exists()
    assert signal.getsignal(signal.SIGINT) is before  # the handlers are put back
    monkeypatch.setattr(engines.LocalEngine, "step", real)
    capsys.readouterr()
    resumed = sweep(
        tiny_gaussian, config=cfg, out=tmp_path / "cut", mode="settle", extend=False, resume=True, progress=True
    )
    assert "resumed from epoch 6" in capsys.readouterr().err
    assert [(t.dim, t.nll, t.epochs_run, t.best_epoch) for t in resumed.trials] == [
        (t.dim, t.nll, t.epochs_run, t.best_epoch) for t in whole.trials
    ]
    assert RunDir(tmp_path / "cut").read_settle()["trace"] == RunDir(tmp_path / "whole").read_settle()["trace"]
    assert not (tmp_path / "cut" / "settle").exists()  # the checkpoint is gone once the members are trials


def test_without_a_run_directory_an_interrupt_says_nothing_was_saved(monkeypatch, tiny_gaussian):
    import zdim.sweeps.executors.engines as engines

    real = engines.LocalEngine.step

    def interrupted(self, keys, lower=()):
        out = real(self, keys, lower)
        if any(s.epoch == 2 for s in out.values()):
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(engines.LocalEngine, "step", interrupted)
    cfg = SweepConfig(dims=(1, 2), hidden=(8,), k=3, train=TrainConfig(epochs=5, patience=0))
    with pytest.raises(Interrupted, match="interrupted at epoch 2: nothing was saved"):
        sweep(tiny_gaussian, config=cfg, mode="settle", extend=False)


def test_a_checkpoint_is_written_at_the_interval(tmp_path, monkeypatch, tiny_gaussian):
    """kill -9 loses at most --checkpoint-every seconds: with a tiny interval, every round is checkpointed."""
    from zdim.sweeps.records.runs import RunDir as Dir

    rounds = []
    real = Dir.commit_settle_checkpoint
    monkeypatch.setattr(
        Dir, "commit_settle_checkpoint", lambda self, state: rounds.append(state["round"]) or real(self, state)
    )

    cfg = SweepConfig(dims=(1, 2), hidden=(8,), k=3, train=TrainConfig(epochs=4, patience=0))
    sweep(tiny_gaussian, config=cfg, out=tmp_path / "run", mode="settle", extend=False, checkpoint_every=1e-6)
    assert rounds == [1, 2, 3, 4]
    with pytest.raises(ConfigError, match="--checkpoint-every"):
        sweep(tiny_gaussian, config=cfg, mode="settle", checkpoint_every=0)


def test_a_time_budget_stops_every_member_and_the_answer_says_they_had_not_converged(tiny_gaussian):
    cfg = SweepConfig(dims=(1, 2), hidden=(16,), k=3, train=TrainConfig(epochs=500, patience=0))
    r = sweep(tiny_gaussian, config=cfg, mode="settle", extend=False, time_budget=1.0)
    assert all(t.epochs_run < 500 and "time budget" in t.extra["settle"] for t in r.trials)
    with pytest.raises(ConfigError, match="--mode settle"):
        sweep(tiny_gaussian, config=cfg, time_budget=1.0, mode="per-size")
    with pytest.raises(ConfigError, match="--time-budget"):
        sweep(tiny_gaussian, config=cfg, mode="settle", time_budget=0)


def test_settle_is_the_default_of_a_single_process_sweep_with_three_seeds(tiny_binary, tmp_path):
    from zdim.sweeps.planning.plan import Mode, Options, resolve_mode

    assert resolve_mode(Options()) is Mode.SETTLE and resolve_mode(Options(workers=2)) is Mode.SETTLE
    assert resolve_mode(Options(storage="sqlite://")) is resolve_mode(Options(prune=True)) is Mode.PER_SIZE
    assert resolve_mode(Options(nested=True)) is Mode.NESTED
    assert resolve_mode(Options(mode="per-size", workers=1)) is Mode.PER_SIZE
    assert resolve_mode(Options(storage="sqlite://", time_budget=5.0)) is Mode.SETTLE  # then refused: --storage
    r = sweep(tiny_binary, dims=(1, 2), epochs=2, out=tmp_path / "run", extend=False)
    seeded = set(RunDir(tmp_path / "run").read_info()["sweep"]["seeded"])  # the sizes that compete: 3 seeds
    assert r.recommendation.dim in seeded
    assert sorted(t.key for t in r.trials) == [(d, s) for d in (1, 2) for s in range(3 if d in seeded else 1)]
    assert RunDir(tmp_path / "run").read_settle() is not None  # it ran in settle mode
    three = sweep(tiny_binary, dims=(1, 2), epochs=2, seeds=3, extend=False)  # --seeds 3: every size
    assert sorted(t.key for t in three.trials) == [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)]
    one = sweep(tiny_binary, dims=(1, 2), epochs=2, seeds=1, extend=False)
    assert sorted(t.key for t in one.trials) == [(1, 0), (2, 0)]
    per = sweep(tiny_binary, dims=(1, 2), epochs=2, mode="per-size", extend=False)
    assert sorted(t.key for t in per.trials) == [(1, 0), (2, 0)]  # one seed outside settle mode


def test_a_settle_run_directory_is_the_record_and_holds_no_study(tiny_binary, tmp_path):
    """Settle mode records its members in the run directory only; per-size mode resumes from that record:
    in one process without a study, and with workers over a study that it first fills from the run
    directory (every point a finished trial), training nothing again."""
    import optuna

    from zdim.cli import main
    from zdim.sweeps.executors.per_size import open_study

    cfg = SweepConfig(dims=(1, 2), seeds=2, hidden=(8,), k=3, train=TrainConfig(epochs=2))
    r = sweep(tiny_binary, config=cfg, out=tmp_path / "run", mode="settle", extend=False)
    run = RunDir(tmp_path / "run")
    assert not list(run.path.glob("study.journal*")) and not run.study_file.exists()
    assert sorted(t.key for t in run.records()) == sorted(t.key for t in r.trials)
    again = sweep(tiny_binary, config=cfg, out=run.path, mode="per-size", extend=False, resume=True)
    assert [(t.key, t.nll) for t in again.trials] == [(t.key, t.nll) for t in r.trials]
    assert not run.study_file.exists()  # one process: the run directory alone says what is finished
    stamps = {p: p.stat().st_mtime_ns for p in run.path.glob("trials/*/metrics.json")}
    workers = sweep(tiny_binary, config=cfg, out=run.path, mode="per-size", extend=False, resume=True, workers=2)
    assert [(t.key, t.nll) for t in workers.trials] == [(t.key, t.nll) for t in r.trials]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing trained again
    done = open_study(run, None, "zdim-sweep").get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert {(t.params["dim"], t.params["seed"]): t.value for t in done} == {t.key: t.nll for t in r.trials}
    # a run directory with a study beside it (as every run made before this version has) resumes and reads
    settled = sweep(tiny_binary, config=cfg, out=run.path, mode="settle", extend=False, resume=True)
    assert [(t.key, t.nll) for t in settled.trials] == [(t.key, t.nll) for t in r.trials]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert main(["info", str(run.path)]) == 0 and build_report(run.path).is_file()


def test_a_member_that_has_not_started_to_use_its_latents_is_not_converged(tiny_gaussian):
    """A flat validation NLL at the start (the model decodes the feature means and ignores its latents)
    is not convergence: settle mode must not stop such members, nor take them for collapsed."""
    from zdim.sweeps.executors.member import Member

    m = Member(dim=4, seed=0, epoch=12, asleep=True, lr_drops=1, scores=[5.0] * 12)
    assert not m.converged(window=5, tol=0.1)
    m.asleep = False
    assert m.converged(window=5, tol=0.1)


def test_trainer_asleep_until_its_kl_reaches_the_threshold_or_the_grace_passes():
    from zdim.training.stopping import WAKE_GRACE
    from zdim.training.trainer import Trainer

    x = torch.randn(64, 3)
    model = VAE(VAEConfig(input_dim=3, latent_dim=2, hidden=(8,), likelihood="gaussian"))
    t = Trainer(model, x, x, TrainConfig(patience=2, sigma_warmup_epochs=0))  # no warm-up to wait for
    assert t.asleep
    t.awake = 3
    assert not t.asleep
    t.awake, t.epoch = 0, WAKE_GRACE * 2
    assert not t.asleep


FLAKY = """
from torch import nn


class Flaky(nn.Module):
    # raises after {after} decodes at latent size {at} (every size when {at} is 0)

    def __init__(self, latent_dim, data_info):
        super().__init__()
        d = data_info.n_features
        self.k, self.calls = latent_dim, 0
        self.enc = nn.Linear(d, 2 * latent_dim)
        self.dec = nn.Linear(latent_dim, d)

    def encode(self, x):
        return self.enc(x).chunk(2, dim=-1)

    def decode(self, z):
        self.calls += 1
        if (self.k == {at} or {at} == 0) and self.calls > {after}:
            raise RuntimeError("the user's decoder broke")
        return self.dec(z)
"""


def test_a_member_that_raises_fails_alone_and_the_answer_says_so(tmp_path, tiny_gaussian):
    models = tmp_path / "models.py"
    models.write_text(FLAKY.format(after=10, at=2))
    cfg = SweepConfig(dims=(1, 2, 4), seeds=1, model=f"{models}:Flaky", k=3, train=TrainConfig(epochs=6, patience=0))
    r = sweep(tiny_gaussian, config=cfg, out=tmp_path / "run", mode="settle", extend=False, refine=False)
    by = {t.dim: t for t in r.trials}
    assert by[2].status.value == "failed" and "RuntimeError: the user's decoder broke" in by[2].reason
    assert by[1].complete and by[4].complete and r.recommendation is not None
    assert "1 trial failed and was left out (dim-002-seed-0: RuntimeError" in r.recommendation.rationale
    assert re.search(r"the answer rests on the other \d+ complete trials", r.recommendation.rationale)
    assert (tmp_path / "run" / "trials" / "dim-002-seed-0" / "metrics.json").is_file()


def test_a_sweep_in_which_no_trial_completes_exits_1_with_the_reasons(tmp_path, capsys):
    import numpy as np

    from zdim.cli import main

    models = tmp_path / "models.py"
    models.write_text(FLAKY.format(after=5, at=0))
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(200, 6)).astype(np.float32))
    for mode in ("settle", "per-size"):
        args = ["sweep", str(tmp_path / "x.npy"), "--dims", "1,2", "--model", f"{models}:Flaky", "--seeds", "1"]
        code = main([*args, "--epochs", "3", "--mode", mode, "--out", str(tmp_path / mode), "--quiet"])
        out = capsys.readouterr().out
        assert code == 1, mode
        assert "No trial completed" in out and "dim-001-seed-0: failed: RuntimeError: the user's decoder broke" in out


def test_the_api_without_a_run_directory_gives_the_cli_answer(tmp_path):
    """The per-sample NLL travels in memory: the paired SE and the bootstrap do not need --out."""
    import numpy as np

    import zdim
    from zdim.cli import main
    from zdim.files import read_json

    x = make_planted_data(2, 8, 600, seed=5)
    np.save(tmp_path / "x.npy", x)
    kw = dict(dims=[1, 2, 4], seeds=2, epochs=8, hidden=(16,), k=5, patience=0, extend=False)
    api = zdim.sweep(x, report=False, **kw)
    args = ["sweep", str(tmp_path / "x.npy"), "--dims", "1,2,4", "--seeds", "2", "--epochs", "8", "--hidden", "16"]
    assert main([*args, "--k", "5", "--patience", "0", "--no-extend", "--out", str(tmp_path / "run"), "--quiet"]) == 0
    cli = read_json(tmp_path / "run" / "recommendation.json")
    rec = api.recommendation
    assert rec.uncertainty is not None and rec.uncertainty == cli["uncertainty"]  # the bootstrap, without --out
    assert any("nll_paired_se" in row for row in rec.per_dim)  # the paired standard errors too
    assert rec.dim == cli["dim"] and rec.rationale == cli["rationale"]
    saved = [read_json(f)["nll"] for f in sorted((tmp_path / "run" / "trials").glob("*/metrics.json"))]
    assert [t.nll for t in api.trials] == saved


def test_a_grown_grid_does_not_train_finished_members_again_without_a_run_directory(monkeypatch):
    import zdim.sweeps.executors.engines as engines

    built = []
    real = engines.LocalEngine.add
    monkeypatch.setattr(engines.LocalEngine, "add", lambda self, keys: built.extend(keys) or real(self, keys))
    data = make_data(make_planted_data(4, 12, 600, seed=0))  # four factors: the grid grows past size 2
    cfg = SweepConfig(dims=(1, 2), hidden=(32,), k=5, train=TrainConfig(epochs=15, batch_size=32, patience=0))
    r = sweep(data, config=cfg, mode="settle")
    assert len({t.dim for t in r.trials}) > 2
    assert len(built) == len(set(built))  # every member trained once


def test_settle_progress_counts_members_shows_the_answer_and_no_eta_to_the_cap(tiny_gaussian, capsys):
    cfg = SweepConfig(dims=(1, 2), seeds=2, hidden=(8,), k=3, train=TrainConfig(epochs=6, patience=0))
    sweep(tiny_gaussian, config=cfg, mode="settle", extend=False, progress=True)
    err = capsys.readouterr().err
    assert "4/4 members finished or stopped" in err and "5/4" not in err
    assert "answer " in err and "(held " in err
    epoch_lines = [line for line in err.replace("\r", "\n").splitlines() if "members together" in line]
    assert epoch_lines and not any("<" in line for line in epoch_lines)  # an open count: no ETA to the cap


def test_settle_stacked_members_give_the_answer_of_members_trained_alone(tiny_gaussian):
    """The stacked engine (one batched model per shape, the default on CUDA) against one Trainer each
    (the Gaussian noise-scale hold, its calibration and the linear path off: they do not stack)."""
    train = TrainConfig(
        epochs=10, batch_size=64, lr=3e-3, patience=0, sigma_init=1.0, sigma_warmup_epochs=0.0, noise="learned"
    )
    cfg = SweepConfig(dims=(1, 2, 4), seeds=2, hidden=(16,), k=5, train=train, linear=False)
    kw = dict(config=cfg, mode="settle", extend=False, refine=False)
    alone = sweep(tiny_gaussian, stack=False, **kw)
    stacked = sweep(tiny_gaussian, stack=True, **kw)
    assert [(t.key, t.epochs_run, t.best_epoch) for t in stacked.trials] == [
        (t.key, t.epochs_run, t.best_epoch) for t in alone.trials
    ]
    for a, b in zip(alone.trials, stacked.trials):
        assert b.nll == pytest.approx(a.nll, rel=1e-4, abs=1e-4)
    assert stacked.recommended_dim == alone.recommended_dim
    assert "in 1 stack(s)" in stacked.recommendation.rationale
    lever = sweep(tiny_gaussian, stack=True, **(kw | {"config": replace(cfg, train=replace(train, sigma_init=0.5))}))
    assert "none of them stacked" in lever.recommendation.rationale  # the lever trains alone, and says so


def test_settle_on_two_worker_processes_gives_the_one_process_answer(tmp_path, tiny_gaussian):
    train = TrainConfig(epochs=8, batch_size=64, lr=3e-3, patience=0)
    cfg = SweepConfig(dims=(1, 2, 4), seeds=2, hidden=(16,), k=5, train=train)
    kw = dict(config=cfg, mode="settle", extend=False, refine=False)
    one = sweep(tiny_gaussian, out=tmp_path / "one", **kw)
    two = sweep(tiny_gaussian, out=tmp_path / "two", workers=2, **kw)
    assert [(t.key, t.epochs_run) for t in two.trials] == [(t.key, t.epochs_run) for t in one.trials]
    for a, b in zip(one.trials, two.trials):
        assert b.nll == pytest.approx(a.nll, rel=1e-5)
    assert two.recommended_dim == one.recommended_dim
    assert "in 2 worker processes of 1 thread each: the members one process trains" in two.recommendation.rationale
    assert RunDir(tmp_path / "two").read_settle()["trace"] == RunDir(tmp_path / "one").read_settle()["trace"]


def test_a_sigint_passed_on_at_once_is_the_same_ctrl_c_and_a_later_one_stops_at_once(capsys):
    """`timeout` (or a shell) passes the terminal's SIGINT on to its process group: zdim gets it two or
    three times at once. Those are one Ctrl-C; only a SIGINT a while later stops without saving."""
    import time

    from zdim.sweeps.executors.settle import interrupts

    before = signal.getsignal(signal.SIGINT)  # the default handler, or SIG_IGN in a background job
    with pytest.raises(Interrupted, match="stopped at once.*not saved.*--resume") as err, interrupts(0.3) as asked:
        for _ in range(3):
            os.kill(os.getpid(), signal.SIGINT)  # handled at once, in this (the main) thread
        assert asked == [signal.SIGINT]
        time.sleep(0.4)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
    assert err.value.signum == signal.SIGINT
    assert "\n" not in str(err.value)
    assert signal.getsignal(signal.SIGINT) is before
    assert capsys.readouterr().err.count("finishing this round") == 1


@pytest.mark.slow
def test_ctrl_c_through_timeout_saves_and_resume_ends_as_an_uninterrupted_run(tmp_path):
    """SIGINT to the process group of `timeout 600 zdim sweep ...` (as a terminal's Ctrl-C): the sweep
    checkpoints and exits 130; --resume goes on from that epoch to the results of an uninterrupted run."""
    import shutil
    import subprocess
    import sys
    import time

    from .test_scale import SRC, nlls

    if shutil.which("timeout") is None:
        pytest.skip("no `timeout` command")
    env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1")
    args = ["sweep", "digits", "--max-samples", "300", "--dims", "2,4,8", "--seeds", "1", "--hidden", "16",
            "--folds", "1", "--k", "5", "--epochs", "500", "--epoch-steps", "1", "--patience", "0", "--no-refine",
            "--no-extend"]  # fmt: skip
    cut, whole = tmp_path / "cut", tmp_path / "whole"
    log = tmp_path / "err.txt"
    with open(log, "w") as err:
        p = subprocess.Popen(
            ["timeout", "600", sys.executable, "-m", "zdim", *args, "--out", str(cut)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and p.poll() is None and "members together: epoch 1" not in log.read_text():
            time.sleep(0.1)
        time.sleep(0.5)  # training is under way (a log file gets a line every 10 s)
        os.killpg(p.pid, signal.SIGINT)
        p.wait(timeout=120)
    text = log.read_text()
    assert p.returncode == 130, text
    assert "interrupted at epoch" in text and "every member is saved" in text and "stopped at once" not in text
    resumed = subprocess.run(
        [sys.executable, "-m", "zdim", *args, "--out", str(cut), "--resume"], env=env, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from epoch" in resumed.stderr
    subprocess.run([sys.executable, "-m", "zdim", *args, "--out", str(whole), "--quiet"], env=env, check=True)
    assert nlls(cut) == pytest.approx(nlls(whole), rel=1e-6) and len(nlls(whole)) == 3


def test_progress_into_a_file_is_plain_lines_without_cursor_codes(tiny_gaussian, capsys):
    """stderr redirected to a log file (here: captured, not a terminal) gets lines, never ESC[A or \\r."""
    cfg = SweepConfig(dims=(1, 2), hidden=(8,), k=3, train=TrainConfig(epochs=3, patience=0))
    sweep(tiny_gaussian, config=cfg, mode="per-size", extend=False, refine=False, progress=True)
    err = capsys.readouterr().err
    assert "\x1b[" not in err and "\r" not in err
    assert "dim 1 seed 0: NLL" in err and "epoch 1/3" in err and "2/2 trials" in err


def test_rule_generation_answers_in_settle_mode_with_folds_and_in_per_size_mode(tiny_binary):
    """A rule that reads generation metrics: settle mode follows the NLL knee while it trains (its scores
    after each epoch have none) and answers by the rule on the members' final records, which carry them;
    with folds the pooled records carry them too; per-size mode measures them per trial."""
    cfg = SweepConfig(dims=(1, 2), seeds=1, hidden=(8,), k=3, train=TrainConfig(epochs=3, patience=0))
    for kw in ({"mode": "settle", "folds": 1}, {"mode": "settle", "folds": 2}, {"mode": "per-size", "folds": 1}):
        r = sweep(tiny_binary, config=cfg, rule="generation", extend=False, refine=False, **kw)
        rec = r.recommendation
        assert rec is not None and rec.rule == "generation" and rec.signals["generation"] == rec.dim, kw
        assert all(t.metric("gen_fd") is not None for t in r.trials if t.complete), kw
        assert "Rule 'generation' recommends" in rec.rationale
        # settle mode says which rule its answer during training followed
        assert ("by rule 'nll-knee'" in rec.rationale) == (kw["mode"] == "settle"), kw


def test_a_member_still_improving_is_not_stopped_by_a_settled_answer():
    """Issue 36: once the answer held and the members it rests on converged, a member still improving beyond
    the rule's tolerance trains on (its NLL is not yet what its size reaches); a flat one is stopped."""
    from zdim.sweeps.executors.member import Member
    from zdim.sweeps.executors.settle import SettleExecutor

    flat = [5.0] * 30
    falling = [5.0 - 0.05 * i for i in range(30)]  # 0.25 nats per 5 epochs: far beyond the tolerance
    members = [
        Member(2, 0, epoch=30, asleep=False, lr_drops=1, lowered_at=10, scores=list(flat)),  # the answer: converged
        Member(
            1, 0, epoch=30, asleep=False, lr_drops=1, lowered_at=10, scores=list(flat)
        ),  # the next smaller: converged
        Member(16, 0, asleep=False, lr_drops=1, scores=list(falling), active=3),  # far above, collapsed, improving
        Member(
            32, 0, epoch=30, asleep=False, lr_drops=1, lowered_at=10, scores=list(flat), active=3
        ),  # the largest: converged
        Member(8, 0, asleep=False, lr_drops=1, scores=list(falling), active=8),  # improving
        Member(4, 0, asleep=False, lr_drops=1, scores=list(flat), active=4),  # flat
    ]
    ex = SettleExecutor(ledger=None, tol=0.1)  # type: ignore[arg-type]
    ex.trace = [{"epoch": e, "dim": 2, "training": 6} for e in range(1, 31)]
    ex._stop_settled(SweepConfig(dims=(1, 2, 4, 8, 16, 32)), members, 2)
    stopped = {m.dim: m.stop_code for m in members}
    assert stopped == {2: "settled", 1: "settled", 16: "", 32: "settled", 8: "", 4: "settled"}
    assert members[2].training and members[4].training


def test_a_flat_member_that_never_lowered_its_rate_is_lowered_before_it_counts_as_converged(tiny_gaussian):
    """Issue 36: converged means flat after the learning rate was lowered at least once; settle mode lowers
    the rate of a member whose score flattened before its own plateau did."""
    from zdim.sweeps.executors.member import Member

    m = Member(2, 0, epoch=20, asleep=False, scores=[5.0] * 20)
    assert m.flat(5, 0.1) and not m.converged(5, 0.1)
    m.lr_drops, m.lowered_at = 1, 18
    assert not m.converged(5, 0.1)  # flat, but not yet over a window after the lowering
    m.lowered_at = 15
    assert m.converged(5, 0.1)
    r = sweep(
        tiny_gaussian,
        config=SweepConfig(dims=(1, 2), hidden=(16,), k=3, train=TrainConfig(epochs=40, batch_size=64, patience=0)),
        mode="settle",
        extend=False,
        refine=False,
    )
    for t in r.trials:  # every member ran until it converged at a lowered rate, or the cap
        assert t.extra.get("settle_stop") != "settled" or t.converged


def test_the_default_seeds_go_to_the_sizes_that_compete_for_the_answer(tmp_path):
    """Issue 39: one seed per size, then every seed for the sizes that decide the answer; --seeds N for all."""
    import json
    from collections import Counter

    import zdim
    from zdim.sweeps.executors.growth import competitors

    x = make_planted_data(2, 6, 300, seed=0)
    kw = dict(dims=[1, 2, 4, 6], epochs=4, hidden=(16,), k=5, folds=1, report=False, extend=False)
    r = zdim.sweep(x, out=tmp_path / "run", **kw)
    seeds = Counter(t.dim for t in r.trials)
    seeded = json.loads((tmp_path / "run" / "run.json").read_text())["sweep"]["seeded"]
    assert competitors(r.recommendation, set(seeds)) <= set(seeded)
    assert all(seeds[d] == (3 if d in seeded else 1) for d in seeds) and set(seeds) - set(seeded)
    assert "Seeds as the answer needs them" in r.recommendation.rationale
    again = zdim.sweep(x, out=tmp_path / "run", resume=True, **kw)  # a resume trains nothing more
    assert Counter(t.dim for t in again.trials) == seeds and again.recommendation.dim == r.recommendation.dim
    every = zdim.sweep(x, seeds=2, **{**kw, "dims": [1, 2]})
    assert Counter(t.dim for t in every.trials) == {1: 2, 2: 2}
