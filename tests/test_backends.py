"""The backend seam (``zdim.sweeps.backends``): one class per place the work runs, chosen in one place, and a
third backend is one row of ``BACKENDS`` that settle mode, per-size mode and tuning all use."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from zdim.errors import ConfigError
from zdim.sweeps.backends import BACKENDS, Row, check, choose
from zdim.sweeps.backends.local import InProcess, WorkerProcesses
from zdim.sweeps.execute import sweep
from zdim.sweeps.executors import engines
from zdim.sweeps.executors.engines import LocalEngine
from zdim.sweeps.planning.plan import Options, resolve
from zdim.sweeps.records.runs import RunDir
from zdim.training.config import TrainConfig
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
    with pytest.raises(ConfigError, match="backend must be one of local, ray, got 'slurm'") as err:  # its option row
        sweep(tiny_gaussian, out=out, backend="slurm", **TINY)
    assert "\n" not in str(err.value) and not out.exists()  # refused before anything was written


def test_an_address_without_a_cluster_backend_and_a_backend_that_is_no_name_are_refused(tmp_path, tiny_gaussian):
    """The backend and its address are checked once, against the registry's rows (``backends.check``), before
    anything is written; the message names the backends that run on a cluster, read from the rows."""
    out = tmp_path / "run"
    with pytest.raises(ConfigError) as err:
        sweep(tiny_gaussian, out=out, address="ray://head:10001", **TINY)
    assert "--address 'ray://head:10001'" in str(err.value) and "--backend ray" in str(err.value)
    assert "\n" not in str(err.value) and not out.exists()
    with pytest.raises(ConfigError, match="backend must be one of local, ray, got 3: fix --backend"):
        resolve(tiny_gaussian, Options(backend=3, **TINY))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--address"):
        check("local", "ray://head:10001")
    plan = resolve(tiny_gaussian, Options(**TINY))
    assert (plan.backend, plan.address) == ("local", None)


def test_the_address_is_checked_in_one_place(monkeypatch, tmp_path, tiny_gaussian):
    """A sweep checks its backend once (``backends.check``, from ``join``), and ``choose`` trusts it."""
    from zdim.sweeps import backends

    calls: list[tuple[str, str | None]] = []
    real = backends.check
    monkeypatch.setattr(
        backends, "check", lambda name, address=None: (calls.append((name, address)), real(name, address))[1]
    )
    sweep(tiny_gaussian, out=tmp_path / "run", **TINY)
    assert calls == [("local", None)]


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
    monkeypatch.setitem(BACKENDS, "fake", Row(FakeCluster, cluster=True))  # its one registry row
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
    out = tune(run, 1, n_trials=2, epochs=2, workers=2, backend="fake", data=tiny_gaussian, prune=False)
    assert fake.used[-1] == ("run_workers", 2)
    assert out.tuning["n_trials"] == 2 and out.tuning["dim"] == 1
