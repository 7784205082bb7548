"""Where a sweep's work runs: one interface, one class per place, one registry row each (``BACKENDS``).

A ``Backend`` answers the two questions the executors ask of the hardware:

- ``engine(...)``: where settle mode's members train (a ``zdim.sweeps.executors.engines.Engine``);
- ``run_workers(target, args, poll)``: ``workers`` copies of ``target(*args)`` for per-size mode and
  ``zdim tune``, returning when every copy has ended (``WorkerError`` when one ends abnormally).

``InProcess`` is this process (``LocalEngine``; ``run_workers`` calls ``target`` once, here), and
``WorkerProcesses`` is ``workers`` spawned processes on this machine with the CPU threads split between
them (``WorkerEngine``; ``zdim.sweeps.records.studies.spawn_workers``). ``BACKENDS`` maps the name a user types to
its ``Row``: the factory of its class (``make(workers, address)``), whether it runs on a cluster named by
``--address``, and how this process imports its optional library and joins its cluster. ``choose`` is the
one place that picks a backend (``"local"`` is ``InProcess`` with one worker and ``WorkerProcesses`` with
more), and ``check`` the one place that checks a name and an address against the rows (``join``, before a
sweep or a tuning writes anything). A backend for other hardware is one module with its class and one
row here (Ray: ``zdim.sweeps.backends.ray_cluster``). The option table's ``--backend`` choices are this registry's
names, so this module imports neither torch nor Optuna until a backend is used (``zdim --help`` reads it).

A target given to ``run_workers`` must survive pickling (a copy may run in another process or on
another machine) and must not rely on running here: a copy that does run in this process, as with
``InProcess``, may use what this process holds (``zdim.sweeps.executors.per_size`` and ``zdim.tuning`` go on with the
sweep's own study and progress display there).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ...errors import ConfigError

if TYPE_CHECKING:  # torch and the engines are imported where a backend is used, not by --help
    import torch

    from ...data.dataset import Data
    from ..executors.engines import Engine
    from ..planning.config import SweepConfig
    from ..records.runs import RunDir

LOCAL = "local"


class Backend(Protocol):
    """Where the work of a sweep or a tuning runs (see the module docstring)."""

    workers: int

    def describe(self) -> str:
        """Where it runs, in words (``"in 2 worker processes of 1 thread each"``)."""
        ...

    def engine(self, data: Data, config: SweepConfig, subset: torch.Tensor, run: RunDir | None, stack: bool) -> Engine:
        """The engine that trains settle mode's members (``zdim.sweeps.executors.engines``)."""
        ...

    def run_workers(
        self, target: Callable[..., Any], args: Sequence[Any], poll: Callable[[], None] | None = None
    ) -> None:
        """``workers`` copies of ``target(*args)``; returns when all have ended. ``poll`` (the caller's
        view of what remote copies did) is called about once a second while they run, and once at the
        end, by backends whose copies run elsewhere. ``WorkerError`` when a copy ends abnormally."""
        ...


def _local(workers: int, address: str | None = None) -> Backend:
    """This machine: this process alone, or ``workers`` processes (``zdim.sweeps.backends.local``)."""
    from .local import InProcess, WorkerProcesses

    return InProcess() if workers == 1 else WorkerProcesses(workers)


def _ray(workers: int, address: str | None = None) -> Backend:
    """A Ray cluster (``pip install 'zdim[ray]'``): member groups as actors, workers as tasks, on the
    cluster's nodes (``zdim.sweeps.backends.ray_cluster``; Ray is imported only there, when it is chosen)."""
    from .ray_cluster import RayCluster

    return RayCluster(workers, address)


def _import_ray() -> object:
    from .ray_cluster import import_ray  # the module imports Ray itself only when asked

    return import_ray()


def _join_ray(address: str | None) -> object:
    from .ray_cluster import connect

    return connect(address)


@dataclass(frozen=True)
class Row:
    """One backend in the registry: ``make(workers, address)`` builds it (a backend with a library of its
    own imports its module inside, so zdim needs the library only when it is chosen); ``cluster``: it
    runs on a cluster that ``--address`` may name (an address given to another is refused); ``needs``
    imports its library (``ConfigError`` in one line naming the extra) and ``join`` joins its cluster
    (``ConfigError`` when nothing answers), both before anything is written."""

    make: Callable[[int, str | None], Backend]
    cluster: bool = False
    needs: Callable[[], object] | None = None
    join: Callable[[str | None], object] | None = None


BACKENDS: dict[str, Row] = {
    LOCAL: Row(_local),
    "ray": Row(_ray, cluster=True, needs=_import_ray, join=_join_ray),
}


def _row(name: str) -> Row:
    """The registry's row of ``name`` (``ConfigError`` naming the backends for another)."""
    row = BACKENDS.get(name) if isinstance(name, str) else None
    if row is None:
        raise ConfigError(f"backend {name!r} is not one of {', '.join(BACKENDS)}: fix --backend")
    return row


def check(name: str, address: str | None = None) -> None:
    """The one check of a backend and its address against the registry: ``ConfigError`` (one line) for a
    name that is not a row, an address that is not one, an address given to a backend that runs on this
    machine (naming those that run on a cluster), or a library that is not installed (``Row.needs``).
    Starts nothing."""
    row = _row(name)
    if address is not None:
        if not isinstance(address, str) or not address:
            raise ConfigError(f"address must be a cluster's address, got {address!r}: fix --address")
        if not row.cluster:
            clusters = " or ".join(f"--backend {n}" for n, r in BACKENDS.items() if r.cluster)
            raise ConfigError(
                f"--address {address!r} names a cluster, and the {name} backend runs on this machine: "
                + (f"pass {clusters}, or drop --address" if clusters else "drop --address")
            )
    if row.needs is not None:
        row.needs()


def join(name: str, address: str | None = None) -> None:
    """``check``, then join the backend's cluster where it has one (``Row.join``): a sweep's and a tuning's
    one step before anything is written, where a cluster that cannot be reached is one line."""
    check(name, address)
    row = _row(name)
    if row.join is not None:
        row.join(address)


def choose(name: str, workers: int, address: str | None = None) -> Backend:
    """The backend ``name`` with ``workers`` workers (``address``: the cluster's, for a backend that
    takes one): the one place where settle mode, per-size mode and tuning get theirs (the sweep or the
    tuning checked it first: ``join``)."""
    return _row(name).make(workers, address)


__all__ = ["Backend", "Row", "BACKENDS", "LOCAL", "check", "join", "choose"]
