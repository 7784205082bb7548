"""Sweeps under faults and load, with real processes: kill -9 + resume, workers, shared storage, tuning."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest

from zdim.cli import main
from zdim.files import read_json
from zdim.sweeps.executors.per_size import grid_key
from zdim.sweeps.executors.per_size import open_study as _open_study
from zdim.sweeps.records import studies
from zdim.sweeps.records.runs import RunDir
from zdim.training.config import TrainConfig

SRC = Path(__file__).resolve().parents[1] / "src"
# --folds 1: a 30-row test split would get 5 folds by default (zdim.data.folds); these tests are about scale-out
SMALL = ["digits", "--max-samples", "300", "--epochs", "3", "--hidden", "16", "--k", "5", "--patience", "0", "--quiet",
         "--folds", "1", "--epoch-steps", "1", "--no-report"]  # fmt: skip


def zdim(*args: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-m", "zdim", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw
    )


def run_ok(*args: str) -> str:
    p = zdim(*args)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    return out


def nlls(run: Path) -> dict[str, float]:
    with open(run / "results.csv") as f:
        return {r["trial"]: float(r["nll"]) for r in csv.DictReader(f)}


def stamped_trials(journal: Path) -> int:
    """Trials a worker has stamped as its own, read from the journal file's JSON lines."""
    ids = set()
    for line in journal.read_text().splitlines():
        if studies.WORKER_ATTR in line:
            with contextlib.suppress(ValueError, KeyError):  # a line being written
                ids.add(json.loads(line)["trial_id"])
    return len(ids)


def open_study(run: Path | None, storage: str | None, name: str | None) -> optuna.Study:
    return _open_study(RunDir(run) if run is not None else None, storage, name or "zdim-sweep")


def records_per_key(study: optuna.Study) -> Counter:
    """How many trials of the study trained (hold a record) for each grid point."""
    return Counter(
        grid_key(t) for t in study.get_trials(deepcopy=False) if t.user_attrs.get(studies.RECORD_ATTR) is not None
    )


@pytest.mark.slow
def test_kill_9_mid_trial_then_resume_equals_uninterrupted_run(tmp_path):
    """Per-size mode in one process keeps no study: the run directory is the record a resume reads."""
    grid = ["--dims", "1-4", "--seeds", "2", "--mode", "per-size"]  # trials finish one by one
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    p = zdim("sweep", *SMALL, *grid, "--out", str(killed))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and p.poll() is None:
        if list((killed / "trials").glob("*/metrics.json")):
            time.sleep(0.05)  # the next trial is training now
            break
        time.sleep(0.01)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    done_before = len(list((killed / "trials").glob("*/metrics.json")))
    assert 1 <= done_before < 8, "the sweep must be killed part-way"
    assert not list(killed.glob("study.journal*"))  # no Optuna study: nothing but the trial folders to read
    finished = [f.parent for f in (killed / "trials").glob("*/metrics.json")]  # (a model without metrics: unfinished)
    stamps = {d.name: (d / "model.safetensors").stat().st_mtime_ns for d in finished}
    run_ok("sweep", *SMALL, *grid, "--out", str(killed), "--resume")
    run_ok("sweep", *SMALL, *grid, "--out", str(clean))
    for name, ns in stamps.items():  # finished trials are never retrained
        assert (killed / "trials" / name / "model.safetensors").stat().st_mtime_ns == ns
    a, b = nlls(killed), nlls(clean)
    assert sorted(a) == sorted(b) and len(a) == 8
    assert a == pytest.approx(b, rel=1e-5)
    assert read_json(killed / "recommendation.json")["dim"] == read_json(clean / "recommendation.json")["dim"]


def test_two_workers_run_each_trial_once(tmp_path):
    run = tmp_path / "run"
    run_ok("sweep", *SMALL, "--dims", "1-3", "--seeds", "2", "--out", str(run), "--workers", "2", "--mode", "per-size")
    study = open_study(run, None, None)
    counts = records_per_key(study)
    assert sorted(counts) == [(d, s) for d in (1, 2, 3) for s in (0, 1)]
    assert set(counts.values()) == {1}
    workers = {t.user_attrs[studies.WORKER_ATTR]["pid"] for t in study.trials if studies.WORKER_ATTR in t.user_attrs}
    assert len(workers) == 2  # both processes took trials
    assert len(nlls(run)) == 6


def test_two_processes_two_run_dirs_one_shared_study(tmp_path):
    """Two 'machines' (separate run directories) started at once on one SQLite study: each grid point
    is trained exactly once, and each machine's results.csv and recommendation cover the whole grid."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    optuna.create_study(storage=url, study_name="s")  # create the schema once, before the race
    grid = ["--dims", "1-3", "--seeds", "2", "--storage", url, "--study", "s"]
    ps = [zdim("sweep", *SMALL, *grid, "--out", str(tmp_path / m)) for m in ("a", "b")]
    for p in ps:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    study = optuna.load_study(study_name="s", storage=url)
    counts = records_per_key(study)
    assert len(counts) == 6 and set(counts.values()) == {1}
    assert nlls(tmp_path / "a") == nlls(tmp_path / "b") and len(nlls(tmp_path / "a")) == 6
    assert read_json(tmp_path / "a" / "recommendation.json") == read_json(tmp_path / "b" / "recommendation.json")


def test_heartbeat_tells_dead_from_live_workers(tmp_path):
    study = optuna.create_study()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        for pid in (live.pid, dead.pid):
            t = study.ask()
            info = dict(studies.worker_info(None), pid=pid)
            info.pop("started", None)  # this process's start time, not the child's
            t.set_user_attr(studies.WORKER_ATTR, info)
            t.set_user_attr(studies.BEAT_ATTR, time.time())
        failed = studies.fail_stale(study)
        assert [t.user_attrs[studies.WORKER_ATTR]["pid"] for t in failed] == [dead.pid]
        t = study.trials[0]  # the live worker on another host whose beat stopped long ago is stale
        other = dict(t.user_attrs[studies.WORKER_ATTR], host="elsewhere")
        frozen = optuna.trial.create_trial(
            state=optuna.trial.TrialState.RUNNING,
            user_attrs={studies.WORKER_ATTR: other, studies.BEAT_ATTR: time.time() - 1000},
        )
        assert studies.is_stale(frozen) and not studies.is_stale(t)
        stamped_not_beaten = optuna.trial.create_trial(  # killed between its stamp and its first beat
            state=optuna.trial.TrialState.RUNNING,
            user_attrs={studies.WORKER_ATTR: {"host": socket.gethostname(), "pid": dead.pid}},
        )
        assert studies.is_stale(stamped_not_beaten)
    finally:
        live.kill()
        live.wait()


def test_pruner_compares_only_seeds_of_the_same_size():
    study = optuna.create_study(pruner=studies.SameSizeMedianPruner(n_min_trials=2, n_warmup_steps=1))
    for dim, value in [(2, 10.0), (2, 11.0), (8, 1.0), (8, 1.5)]:
        study.add_trial(
            optuna.trial.create_trial(
                params={"dim": dim},
                distributions={"dim": optuna.distributions.IntDistribution(1, 64)},
                value=value,
                intermediate_values={1: value},
            )
        )
    # a size-2 trial each time (enqueued: a sampled size could be 8, whose losses are far below)
    study.enqueue_trial({"dim": 2})
    t = study.ask({"dim": optuna.distributions.IntDistribution(1, 64)})
    assert t.params["dim"] == 2
    t.report(10.2, 1)  # far above size 8's losses, but below the median of size 2's
    assert not t.should_prune()
    study.tell(t, state=optuna.trial.TrialState.FAIL)
    study.enqueue_trial({"dim": 2})
    t = study.ask({"dim": optuna.distributions.IntDistribution(1, 64)})
    t.report(30.0, 1)  # above the median of size 2's
    assert t.params["dim"] == 2 and t.should_prune()


def test_tune_writes_schema_and_final_model(tmp_path):
    run = tmp_path / "run"
    run_ok("sweep", *SMALL, "--dims", "2,4", "--out", str(run))
    out = run_ok("tune", str(run), "--trials", "3", "--epochs", "3", "--quiet", "--no-report")
    assert "baseline" in out and "Test split" in out
    t = read_json(run / "tuning.json")
    assert set(t) == {"dim", "objective", "n_trials", "baseline", "best", "importances", "importance_trials", "trials",
                      "final_model", "tuned_model", "kept"}  # fmt: skip
    assert t["dim"] == read_json(run / "recommendation.json")["dim"] and t["objective"] == "nll"
    assert t["n_trials"] == 3 and len(t["trials"]) == 3
    assert t["trials"][0]["params"] == t["baseline"]["params"]  # trial 0 is the sweep's configuration
    assert t["best"]["value"] <= t["baseline"]["value"]
    assert {x["state"] for x in t["trials"]} <= {"COMPLETE", "PRUNED", "FAIL"}
    assert set(t["baseline"]["params"]) == {"beta", "warmup", "free_bits", "lr", "width"}
    final = run / t["final_model"]
    assert (final / "model.safetensors").is_file()
    m = read_json(final / "metrics.json")
    assert m["split"] == "test" and m["params"] == t["best"]["params"]
    with pytest.raises(SystemExit) as e:  # argparse's refusal, in this process (the tuning above ran in its own)
        main(["tune", str(run), "--objective", "bogus"])
    assert e.value.code == 2


def test_tune_a_source_directly_with_dim(tmp_path, capsys):
    out = tmp_path / "tuned"
    args = ["digits", "--max-samples", "300", "--dim", "3", "--trials", "2", "--epochs", "2", "--quiet", "--no-report"]
    args += ["--out", str(out)]
    text = run_ok("tune", *args)
    assert "Tuned latent size 3" in text and "tuned final model" in text
    assert read_json(out / "tuning.json")["dim"] == 3
    assert read_json(out / "run.json")["data"]["name"] == "digits"
    # the refusals, in this process (the tuning above ran in its own): one line each, exit 2
    assert main(["tune", *args]) == 2  # the directory exists now
    err = capsys.readouterr().err
    assert "already exists" in err and err.strip().count("\n") == 0
    assert main(["tune", "digits", "--trials", "2"]) == 2  # a source needs --dim
    assert "--dim" in capsys.readouterr().err


@pytest.mark.slow
def test_live_worker_takes_over_the_trial_of_a_killed_one(tmp_path):
    """Two workers on one study; one is SIGKILLed mid-trial. The survivor retries that trial (its worker
    is dead) and finishes the whole grid; nothing is lost and nothing runs twice."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    optuna.create_study(storage=url, study_name="s")
    grid = ["--dims", "1-4", "--seeds", "2", "--storage", url, "--study", "s"]
    a = zdim("sweep", *SMALL, *grid, "--out", str(tmp_path / "a"))
    b = zdim("sweep", *SMALL, *grid, "--out", str(tmp_path / "b"))
    study = optuna.load_study(study_name="s", storage=url)
    deadline, victim = time.monotonic() + 120, None
    while victim is None and time.monotonic() < deadline and a.poll() is None:
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            if t.user_attrs.get(studies.WORKER_ATTR, {}).get("pid") == a.pid:
                victim = t.number
        time.sleep(0.02)
    assert victim is not None, "worker a never started a trial"
    os.kill(a.pid, signal.SIGKILL)
    a.wait()
    _, err = b.communicate(timeout=300)
    assert b.returncode == 0, err
    study = optuna.load_study(study_name="s", storage=url)
    assert study.trials[victim].state == optuna.trial.TrialState.FAIL  # the dead worker's attempt
    counts = records_per_key(study)
    assert len(counts) == 8 and set(counts.values()) == {1}
    assert len(nlls(tmp_path / "b")) == 8


def test_a_worker_dying_outside_a_trial_is_one_clear_error():
    from zdim.errors import WorkerError

    with pytest.raises(WorkerError, match=r"exited abnormally \(codes \[3\]\).*--resume"):
        studies.spawn_workers(os._exit, (3,), 1)


def test_a_trial_finished_by_another_worker_meanwhile_is_not_an_error(tmp_path, monkeypatch):
    """SQLite has no row locks: two workers can take the same enqueued trial. The second to finish
    must keep its folder and go on, not crash on Optuna's UpdateFinishedTrialError."""
    import zdim.sweeps.execute as search
    import zdim.sweeps.executors.per_size as scheduler
    from zdim.data.dataset import load_data
    from zdim.sweeps.planning.config import SweepConfig
    from zdim.training.config import TrainConfig

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    real = scheduler._teller
    finished_by_other = []

    def teller_racing_another_worker(study, trial):
        tell = real(study, trial)

        def racing(rec):
            if not finished_by_other:  # the other worker tells the same trial first
                other = optuna.load_study(study_name="s", storage=url)
                (t,) = other.get_trials(states=(optuna.trial.TrialState.RUNNING,))
                other.tell(t.number, rec.nll)
                finished_by_other.append(t.number)
            tell(rec)

        return racing

    monkeypatch.setattr(scheduler, "_teller", teller_racing_another_worker)
    data = load_data("digits", max_samples=300)
    cfg = SweepConfig(dims=(1, 2), hidden=(16,), k=5, train=TrainConfig(epochs=2, patience=0))
    result = search.sweep(data, config=cfg, out=tmp_path / "run", storage=url, study_name="s")
    assert finished_by_other == [0]
    assert sorted(result.table["dim"]) == [1, 2]
    assert len(list((tmp_path / "run" / "trials").glob("*/metrics.json"))) == 2


def test_a_duplicate_defers_to_a_lower_trial_of_its_point_even_while_that_one_waits():
    """Two starting workers may enqueue the same point twice; whoever takes the higher-numbered copy
    first must not train it, because the lower copy (still WAITING) will be taken and trained."""
    from zdim.sweeps.executors.per_size import is_duplicate as _duplicate

    study = optuna.create_study()
    study.enqueue_trial({"dim": 2, "seed": 0})
    study.enqueue_trial({"dim": 2, "seed": 0}, skip_if_exists=False)
    states = optuna.trial.TrialState
    higher = optuna.Trial(study, study.trials[1]._trial_id)
    study._storage.set_trial_state_values(higher._trial_id, states.RUNNING)
    assert study.trials[0].state == states.WAITING
    assert _duplicate(study, higher, (2, 0), None)
    lower = studies.take_waiting(study)
    assert lower is not None and lower.number == 0
    assert not _duplicate(study, lower, (2, 0), None)


def test_a_duplicate_of_a_point_finished_here_is_not_recorded_twice(tmp_path):
    """Two starting workers may enqueue the same point twice; when the copy comes up after this run
    directory finished the point, it is a duplicate, not a second record of the same training (--prune:
    a study is the engine in one process; one seed a size, so nothing is pruned)."""
    run = tmp_path / "run"
    run_ok("sweep", *SMALL, "--dims", "1-2", "--prune", "--out", str(run))
    study = open_study(run, None, None)
    study.enqueue_trial({"dim": 1, "seed": 0}, skip_if_exists=False)
    run_ok("sweep", *SMALL, "--dims", "1-2", "--prune", "--out", str(run), "--resume")
    counts = records_per_key(open_study(run, None, None))
    assert counts == {(1, 0): 1, (2, 0): 1}


def _children(pid: int) -> list[int]:
    """The worker processes a sweep spawned: its children that run multiprocessing's spawn entry point."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmd = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and "spawn_main" in cmd:
            out.append(int(proc.name))
    return out


@pytest.mark.slow
def test_kill_9_of_a_settle_worker_then_resume_gives_the_same_answer(tmp_path):
    """Settle mode on two worker processes: one is killed mid-run; the sweep stops in one line, and
    --resume goes on from the last checkpoint to the answer of an uninterrupted run."""
    grid = ["--dims", "1,2", "--seeds", "2", "--epochs", "40", "--no-refine", "--no-extend", "--workers", "2"]
    args = ["sweep", *SMALL[:3], "--hidden", "16", "--k", "5", "--patience", "0", "--quiet", "--folds", "1",
            "--no-report", *grid]  # fmt: skip
    args += ["--epoch-steps", "1"]  # as the uninterrupted run below, in this process
    args += ["--checkpoint-every", "0.01"]
    killed = tmp_path / "killed"
    p = zdim(*args, "--out", str(killed))
    state = killed / "settle" / "current.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and p.poll() is None:
        with contextlib.suppress(OSError, ValueError, KeyError):
            if json.loads(state.read_text())["round"] >= 3:
                break
        time.sleep(0.02)
    workers = _children(p.pid)
    assert p.poll() is None and len(workers) == 2, "the sweep ended before a worker could be killed"
    os.kill(workers[0], signal.SIGKILL)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 1 and "Traceback" not in err, err
    assert "settle worker process" in err and "died" in err and "--resume" in err
    assert not (killed / "recommendation.json").exists()
    run_ok(*args, "--out", str(killed), "--resume")
    # the uninterrupted run, here in one process (two workers give the one-process run: test_settle.py)
    from zdim.data.dataset import load_data
    from zdim.sweeps.execute import sweep

    clean = sweep(
        load_data("digits", max_samples=300), "1,2", seeds=2, epochs=40, train=TrainConfig(patience=0),
        hidden=(16,), k=5, refine=False, extend=False,
    )  # fmt: skip
    assert read_json(killed / "recommendation.json")["dim"] == clean.recommended_dim
    b = nlls(killed)
    assert sorted(b) == sorted(t.trial for t in clean.trials)
    assert all(b[t.trial] == pytest.approx(t.nll, rel=1e-5) for t in clean.trials)


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="process start times are read from /proc")
def test_a_killed_worker_not_yet_reaped_or_whose_pid_was_taken_is_stale_at_once():
    """kill -9 of a worker whose parent has not reaped it yet (a zombie answers kill(pid, 0)), or whose pid a
    new process took: its RUNNING trial is stale at once, not after the 120 s heartbeat grace."""
    host = socket.gethostname()

    def running(info: dict) -> optuna.trial.FrozenTrial:
        attrs = {studies.WORKER_ATTR: info, studies.BEAT_ATTR: time.time()}  # a fresh beat
        return optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING, user_attrs=attrs)

    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        deadline = time.monotonic() + 30
        while not studies._zombie(zombie.pid) and time.monotonic() < deadline:
            time.sleep(0.01)  # exited, not reaped
        started = studies._started(live.pid)
        assert started is not None
        assert studies.is_stale(running({"host": host, "pid": zombie.pid}))
        assert not studies.is_stale(running({"host": host, "pid": live.pid, "started": started}))
        assert studies.is_stale(running({"host": host, "pid": live.pid, "started": started - 1}))  # pid taken again
        assert not studies.is_stale(running(studies.worker_info(None)))  # this process
    finally:
        live.kill()
        for p in (zombie, live):
            p.wait()


@pytest.mark.slow
def test_a_worker_killed_at_any_moment_loses_no_point_of_a_shared_journal(tmp_path):
    """Two run directories on one journal file (--storage PATH); the first is killed -9 after 0, 2 and 9
    finished trials (mid-trial, or between trials), left unreaped once; its --resume and the other worker
    end with every point of the grid complete, each told to the study once, no finished folder retrained."""
    grid = ["--dims", "1,2,3,4,6,8", "--seeds", "2", "--mode", "per-size", "--no-refine", "--no-extend"]
    for n, finished in enumerate((0, 2, 9)):  # the first trial, between two, near the end
        base = tmp_path / f"round{n}"
        base.mkdir()
        shared = ["--storage", str(base / "study.journal")]
        a, b = base / "a", base / "b"
        pa = zdim("sweep", *SMALL, *grid, *shared, "--out", str(a))
        pb = zdim("sweep", *SMALL, *grid, *shared, "--out", str(b))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and pa.poll() is None:
            done = len(list(a.glob("trials/*/metrics.json")))
            ready = done >= finished and (a / "run.json").is_file() and (base / "study.journal").is_file()
            if ready and stamped_trials(base / "study.journal") > done:  # a trial is taken (by a or b), training
                break
            time.sleep(0.005)
        pa.kill()
        if n % 2 == 0:
            pa.wait()  # reaped at once; in odd rounds it stays a zombie while the others go on
        stamps = {f.parent.name: f.stat().st_mtime_ns for f in a.glob("trials/*/metrics.json")}
        resumed = zdim("sweep", *SMALL, *grid, *shared, "--out", str(a), "--resume")
        for p in (resumed, pb):
            _, err = p.communicate(timeout=100)  # the 120 s heartbeat grace would not fit
            assert p.returncode == 0, err
        pa.wait()
        for run in (a, b):
            with open(run / "results.csv") as f:
                status = [r["status"] for r in csv.DictReader(f)]
            assert status == ["complete"] * 12, (n, run, status)
        study = optuna.load_study(study_name="zdim-sweep", storage=studies.journal_storage(base / "study.journal"))
        counts = records_per_key(study)
        assert len(counts) == 12 and set(counts.values()) == {1}, (n, counts)
        for name, ns in stamps.items():
            assert (a / "trials" / name / "metrics.json").stat().st_mtime_ns == ns, (n, name)


def test_a_trial_saved_by_a_worker_killed_before_telling_it_is_told_from_its_folder(tmp_path):
    """kill -9 of a worker between saving a trial's folder and telling the study: the worker that finds the
    trial stale tells it from that folder (same host) instead of training the point again; a point whose
    folder is missing, or that another trial already recorded, is failed and redone as before."""
    from zdim.data.dataset import load_data
    from zdim.sweeps.execute import sweep
    from zdim.sweeps.executors.per_size import enqueue_missing
    from zdim.sweeps.planning.config import SweepConfig

    run = tmp_path / "run"
    cfg = SweepConfig(dims=(1, 2), hidden=(16,), k=5, train=TrainConfig(epochs=2, patience=0))
    sweep(load_data("digits", max_samples=300), config=cfg, out=run)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    study = optuna.create_study()
    for dim in (1, 2, 1):  # (1, 0) twice: the second copy's point is already recorded by then
        study.enqueue_trial({"dim": dim, "seed": 0}, skip_if_exists=False)
        t = studies.take_waiting(study)
        assert t is not None
        t.set_user_attr(studies.WORKER_ATTR, {"host": socket.gethostname(), "pid": dead.pid, "run_dir": str(run)})
    (run / "trials" / "dim-002-seed-0" / "metrics.json").unlink()  # killed before its folder was written
    assert enqueue_missing(study, cfg, None) == 1  # (2, 0) again, (1, 0) recovered
    first, second, third = study.trials[:3]
    assert first.state == optuna.trial.TrialState.COMPLETE and first.value == pytest.approx(nlls(run)["dim-001-seed-0"])
    assert first.user_attrs[studies.RECORD_ATTR]["dim"] == 1
    assert second.state == third.state == optuna.trial.TrialState.FAIL
    assert studies.RECORD_ATTR not in third.user_attrs and records_per_key(study) == {(1, 0): 1}
    assert grid_key(study.trials[3]) == (2, 0)
