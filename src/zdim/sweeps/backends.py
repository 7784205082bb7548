"""Where a sweep's work runs: one interface, one class per place, chosen in one place (``choose``).

A ``Backend`` answers the two questions the executors ask of the hardware:

- ``engine(...)``: where settle mode's members train (a ``zdim.sweeps.engines.Engine``);
- ``run_workers(target, args, poll)``: ``workers`` copies of ``target(*args)`` for per-size mode and
  ``zdim tune``, returning when every copy has ended (``WorkerError`` when one ends abnormally).

``InProcess`` is this process (``LocalEngine``; ``run_workers`` calls ``target`` once, here), and
``WorkerProcesses`` is ``workers`` spawned processes on this machine with the CPU threads split between
them (``WorkerEngine``; ``zdim.sweeps.studies.spawn_workers``). ``BACKENDS`` maps the name a user types to the
factory of its class (``factory(workers, address)``); ``choose`` is the one place that picks a backend:
``"local"`` is ``InProcess`` with one worker and ``WorkerProcesses`` with more. A backend for other
hardware (a cluster) is one class with this interface and one row of ``BACKENDS``.

A target given to ``run_workers`` must survive pickling (a copy may run in another process or on
another machine) and must not rely on running here: a copy that does run in this process, as with
``InProcess``, may use what this process holds (``zdim.sweeps.per_size`` and ``zdim.tuning`` go on with the
sweep's own study and progress display there).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch

from ..data.dataset import Data
from ..errors import ConfigError
from . import studies
from .config import SweepConfig
from .engines import Engine, LocalEngine, WorkerEngine
from .plan import check_address
from .runs import RunDir

LOCAL = "local"


class Backend(Protocol):
    """Where the work of a sweep or a tuning runs (see the module docstring)."""

    workers: int

    def describe(self) -> str:
        """Where it runs, in words (``"in 2 worker processes of 1 thread each"``)."""
        ...

    def engine(self, data: Data, config: SweepConfig, subset: torch.Tensor, run: RunDir | None, stack: bool) -> Engine:
        """The engine that trains settle mode's members (``zdim.sweeps.engines``)."""
        ...

    def run_workers(
        self, target: Callable[..., Any], args: Sequence[Any], poll: Callable[[], None] | None = None
    ) -> None:
        """``workers`` copies of ``target(*args)``; returns when all have ended. ``poll`` (the caller's
        view of what remote copies did) is called about once a second while they run, and once at the
        end, by backends whose copies run elsewhere. ``WorkerError`` when a copy ends abnormally."""
        ...


class InProcess:
    """This process: the members in a ``LocalEngine``, a target called once, here."""

    workers = 1

    def describe(self) -> str:
        return "in this process"

    def engine(self, data: Data, config: SweepConfig, subset: torch.Tensor, run: RunDir | None, stack: bool) -> Engine:
        return LocalEngine(data, config, subset, run, stack)

    def run_workers(
        self, target: Callable[..., Any], args: Sequence[Any], poll: Callable[[], None] | None = None
    ) -> None:
        # the target runs here and shows its own progress: nothing remote for poll to report
        target(*args)


def _threaded(threads: int, target: Callable[..., Any], args: Sequence[Any]) -> None:
    """A worker process: its share of the CPU threads, then the target."""
    torch.set_num_threads(threads)
    target(*args)


class WorkerProcesses:
    """``workers`` spawned processes on this machine, ``cores // workers`` torch threads each."""

    def __init__(self, workers: int):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ConfigError(f"workers must be an integer >= 1, got {workers!r}: fix --workers")
        self.workers = workers
        self.threads = studies.threads_per_worker(workers)

    def describe(self) -> str:
        return f"in {self.workers} worker processes of {self.threads} thread{'s' if self.threads != 1 else ''} each"

    def engine(self, data: Data, config: SweepConfig, subset: torch.Tensor, run: RunDir | None, stack: bool) -> Engine:
        return WorkerEngine(data, config, subset, run, stack, self.workers)

    def run_workers(
        self, target: Callable[..., Any], args: Sequence[Any], poll: Callable[[], None] | None = None
    ) -> None:
        studies.spawn_workers(_threaded, (self.threads, target, tuple(args)), self.workers, poll)


def _local(workers: int, address: str | None = None) -> Backend:
    """This machine: this process alone, or ``workers`` processes."""
    check_address(LOCAL, address)
    return InProcess() if workers == 1 else WorkerProcesses(workers)


def _ray(workers: int, address: str | None = None) -> Backend:
    """A Ray cluster (``pip install 'zdim[ray]'``): member groups as actors, workers as tasks, on the
    cluster's nodes (``zdim.sweeps.ray_backend``; Ray is imported only here)."""
    from .ray_backend import RayCluster

    return RayCluster(workers, address)


BACKENDS: dict[str, Callable[[int, str | None], Backend]] = {
    LOCAL: _local,
    "ray": _ray,
}


# A backend whose library is an optional extra: what imports it (ConfigError in one line naming the extra),
# asked by ``check`` before anything is written.
def _import_ray() -> object:
    from .ray_backend import import_ray  # the module imports Ray itself only when asked

    return import_ray()


NEEDS: dict[str, Callable[[], object]] = {"ray": _import_ray}


def _join_ray(address: str | None) -> None:
    from .ray_backend import connect

    connect(address)


# A backend that runs on a cluster: how this process joins it (``ConfigError`` when nothing answers),
# asked by ``join`` before a sweep or a tuning writes anything.
JOINS: dict[str, Callable[[str | None], None]] = {"ray": _join_ray}


def check(name: str, address: str | None = None) -> None:
    """``ConfigError`` (one line) for a backend name that is not in ``BACKENDS``, or an address given to
    the local backend (``zdim.sweeps.plan.check_address``); starts nothing."""
    if name not in BACKENDS:
        raise ConfigError(f"backend {name!r} is not one of {', '.join(BACKENDS)}: fix --backend")
    check_address(name, address)
    if name in NEEDS:
        NEEDS[name]()


def join(name: str, address: str | None = None) -> None:
    """``check``, then join the backend's cluster where it has one (``JOINS``): a cluster that cannot be
    reached is one line before anything is written."""
    check(name, address)
    if name in JOINS:
        JOINS[name](address)


def choose(name: str, workers: int, address: str | None = None) -> Backend:
    """The backend ``name`` with ``workers`` workers (``address``: the cluster's, for a backend that
    takes one): the one place where settle mode, per-size mode and tuning get theirs."""
    check(name, address)
    return BACKENDS[name](workers, address)


__all__ = ["Backend", "InProcess", "WorkerProcesses", "BACKENDS", "NEEDS", "JOINS", "LOCAL", "check", "join", "choose"]
