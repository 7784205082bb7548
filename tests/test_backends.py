"""The backend seam (``zdim.sweeps.backends``): one class per place the work runs, chosen in one place, and a
third backend is one row of ``BACKENDS`` that settle mode, per-size mode and tuning all use."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from zdim.errors import ConfigError
from zdim.sweeps import backends, engines
from zdim.sweeps.backends import BACKENDS, InProcess, WorkerProcesses, choose
from zdim.sweeps.engines import LocalEngine, WorkerEngine
from zdim.sweeps.execute import sweep
from zdim.sweeps.plan import Options, resolve
from zdim.sweeps.runs import RunDir
from zdim.training.trainer import TrainConfig
from zdim.tuning import tune

TINY: dict[str, Any] = dict(
    dims=(1, 2), seeds=1, epochs=3, train=TrainConfig(patience=0), hidden=(8,), k=3, extend=False, refine=False
)


def test_choose_gives_this_process_for_one_worker_and_processes_for_more():
    one = choose("local", 1)
    assert isinstance(one, InProcess) and one.workers == 1 and one.describe() == "in this process"
    three = choose("local", 3)
    assert isinstance(three, WorkerProcesses) and three.workers == 3
    assert three.describe().startswith("in 3 worker processes of ")
    with pytest.raises(ConfigError, match="workers must be an integer >= 1, got 0"):
        WorkerProcesses(0)


def test_in_process_runs_the_target_once_here():
    calls: list[tuple[int, str]] = []
    InProcess().run_workers(lambda a, b: calls.append((a, b)), (1, "x"), poll=lambda: calls.append((0, "poll")))
    assert calls == [(1, "x")]  # the target shows its own progress here: poll is for copies elsewhere


def test_an_unknown_backend_is_one_line_naming_the_choices(tmp_path, tiny_gaussian):
    with pytest.raises(ConfigError) as err:
        choose("slurm", 2)
    assert str(err.value) == f"backend 'slurm' is not one of {', '.join(BACKENDS)}: fix --backend"
    assert "local" in str(err.value)
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="backend 'slurm' is not one of .*local") as err:
        sweep(tiny_gaussian, out=out, backend="slurm", **TINY)
    assert "\n" not in str(err.value) and not out.exists()  # refused before anything was written


def test_an_address_without_a_cluster_backend_and_a_backend_that_is_no_name_are_refused(tiny_gaussian):
    with pytest.raises(ConfigError) as err:
        resolve(tiny_gaussian, Options(address="ray://head:10001", **TINY))
    assert "--address 'ray://head:10001'" in str(err.value) and "--backend ray" in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="backend must be a name, got 3: fix --backend"):
        resolve(tiny_gaussian, Options(backend=3, **TINY))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--address"):
        choose("local", 1, "ray://head:10001")
    plan = resolve(tiny_gaussian, Options(**TINY))
    assert (plan.backend, plan.address) == ("local", None)


class FakeCluster:
    """A third backend, as a cluster would run: each copy of a target pickled and run on its own (here,
    one after the other in this process); settle mode's members in a ``LocalEngine``."""

    used: list[tuple[str, int]] = []

    def __init__(self, workers: int, address: str | None = None):
        self.workers, self.address = workers, address

    def describe(self) -> str:
        return "on a fake cluster"

    def engine(self, data: Any, config: Any, subset: Any, run: Any, stack: bool) -> engines.Engine:
        self.used.append(("engine", self.workers))
        return LocalEngine(data, config, subset, run, stack)

    def run_workers(
        self, target: Callable[..., Any], args: Sequence[Any], poll: Callable[[], None] | None = None
    ) -> None:
        self.used.append(("run_workers", self.workers))
        for _ in range(self.workers):
            copy, copy_args = pickle.loads(pickle.dumps((target, tuple(args))))
            copy(*copy_args)
        if poll is not None:
            poll()


@pytest.fixture
def fake(monkeypatch):
    FakeCluster.used = []
    monkeypatch.setitem(BACKENDS, "fake", FakeCluster)
    return FakeCluster


def test_a_third_backend_is_one_row_that_settle_mode_uses(fake, tmp_path, tiny_gaussian):
    res = sweep(tiny_gaussian, out=tmp_path / "run", backend="fake", workers=2, **TINY)
    assert fake.used == [("engine", 2)]
    assert sorted(t.key for t in res.trials) == [(1, 0), (2, 0)] and res.recommended_dim in (1, 2)
    plain = sweep(tiny_gaussian, **TINY)  # the same members as in this process: the same figures
    assert [t.nll for t in res.trials] == [t.nll for t in plain.trials]


def test_a_third_backend_is_one_row_that_per_size_mode_and_tune_use(fake, monkeypatch, tmp_path, tiny_gaussian):
    run = tmp_path / "run"
    res = sweep(tiny_gaussian, out=run, backend="fake", workers=2, mode="per-size", **TINY)
    assert fake.used == [("run_workers", 2)]  # two pickled copies, each with its own study from the journal
    assert sorted(t.key for t in res.trials) == [(1, 0), (2, 0)]
    assert all(t.complete for t in res.trials) and len(RunDir(run).records()) == 2
    # tune has no --backend yet: its one choose() names the local row, which the fake takes here
    monkeypatch.setitem(BACKENDS, backends.LOCAL, FakeCluster)
    out = tune(run, 1, n_trials=2, epochs=2, workers=2, data=tiny_gaussian, prune=False)
    assert fake.used[-1] == ("run_workers", 2)
    assert out.tuning["n_trials"] == 2 and out.tuning["dim"] == 1


def test_lending_gives_the_busy_workers_the_threads_of_the_idle_ones(monkeypatch):
    engine = WorkerEngine.__new__(WorkerEngine)  # the bookkeeping only: no processes
    engine.workers, engine.threads, engine.cores, engine.lent = 2, 2, 4, [2, 2]
    sent: list[dict[int, tuple[int]]] = []
    monkeypatch.setattr(engine, "_call", lambda cmd, per: sent.append(per) if cmd == "threads" else None)
    monkeypatch.setattr(engines, "LEND_THREADS", True)
    engine._lend([0])  # worker 1 has nothing to train: worker 0 takes its threads
    engine._lend([0])  # already lent: nothing said
    engine._lend([1, 0])  # both busy again: each its own share
    assert sent == [{0: (4,)}, {0: (2,)}]
    monkeypatch.setattr(engines, "LEND_THREADS", False)
    engine._lend([1])
    assert sent == [{0: (4,)}, {0: (2,)}]


def test_a_worker_with_lent_threads_trains_the_member_it_trains_alone(monkeypatch, tiny_gaussian):
    """One member on 2 workers: worker 0 trains it with worker 1's threads too; its scores are the
    member's in this process (to the float noise of another thread count)."""
    import torch

    monkeypatch.setattr(engines, "LEND_THREADS", True)  # off by default (zdim.sweeps.engines)
    busy: list[int] = []
    real = WorkerEngine._lend
    monkeypatch.setattr(WorkerEngine, "_lend", lambda self, b: busy.append(len(b)) or real(self, b))
    plan = resolve(tiny_gaussian, Options(**TINY))
    subset = tiny_gaussian.val[:50]
    here = LocalEngine(tiny_gaussian, plan.config, subset, None, False)
    there = WorkerEngine(tiny_gaussian, plan.config, subset, None, False, 2)
    try:
        for e in (here, there):
            e.add([(2, 0)])
        for _ in range(3):
            a, b = here.step([(2, 0)])[(2, 0)], there.step([(2, 0)])[(2, 0)]
            assert (b.epoch, b.active) == (a.epoch, a.active)
            assert b.val_nll == pytest.approx(a.val_nll, rel=1e-5)
    finally:
        there.close()
    assert busy == [1, 1, 1] and there.lent[0] == max(there.threads, there.cores)
    assert torch.get_num_threads() == 1  # this process's threads are its own (tests/conftest.py)


@pytest.mark.slow
def test_two_workers_lending_threads_in_a_one_member_phase_give_the_one_process_answer(
    monkeypatch, tmp_path, tiny_gaussian
):
    """Refinement adds one member (one seed): that phase trains on one of the 2 workers, which takes the
    other's threads; members and answer as in one process (to the float noise of other thread counts)."""
    monkeypatch.setattr(engines, "LEND_THREADS", True)  # off by default (zdim.sweeps.engines)
    busy: list[int] = []
    real = WorkerEngine._lend
    monkeypatch.setattr(WorkerEngine, "_lend", lambda self, b: busy.append(len(b)) or real(self, b))
    train = TrainConfig(batch_size=64, lr=3e-3, patience=0)
    kw: dict[str, Any] = dict(dims=(1, 4), seeds=1, epochs=6, hidden=(16,), k=5, train=train, extend=False)
    one = sweep(tiny_gaussian, refine=True, **kw)
    two = sweep(tiny_gaussian, out=tmp_path / "two", workers=2, refine=True, **kw)
    assert len({t.dim for t in two.trials}) > 2 and 1 in busy  # refined, and a phase lent threads
    assert [(t.key, t.epochs_run) for t in two.trials] == [(t.key, t.epochs_run) for t in one.trials]
    for a, b in zip(one.trials, two.trials):
        assert b.nll == pytest.approx(a.nll, rel=1e-5)
    assert two.recommended_dim == one.recommended_dim
