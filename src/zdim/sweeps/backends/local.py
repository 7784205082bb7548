"""This machine's backend (``BACKENDS["local"]``): ``InProcess``, this process, and ``WorkerProcesses``,
``workers`` spawned processes with the CPU threads split between them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ...errors import ConfigError

if TYPE_CHECKING:  # torch and the engines are imported where a backend is used, not by --help
    import torch

    from ...data.dataset import Data
    from ..executors.engines import Engine
    from ..planning.config import SweepConfig
    from ..records.runs import RunDir


class InProcess:
    """This process: the members in a ``LocalEngine``, a target called once, here."""

    workers = 1

    def describe(self) -> str:
        return "in this process"

    def engine(self, data: Data, config: SweepConfig, subset: torch.Tensor, run: RunDir | None, stack: bool) -> Engine:
        from ..executors.engines import LocalEngine

        return LocalEngine(data, config, subset, run, stack)

    def run_workers(
        self, target: Callable[..., Any], args: Sequence[Any], poll: Callable[[], None] | None = None
    ) -> None:
        # the target runs here and shows its own progress: nothing remote for poll to report
        target(*args)


def _threaded(threads: int, target: Callable[..., Any], args: Sequence[Any]) -> None:
    """A worker process: its share of the CPU threads, then the target."""
    import torch

    torch.set_num_threads(threads)
    target(*args)


class WorkerProcesses:
    """``workers`` spawned processes on this machine, ``cores // workers`` torch threads each."""

    def __init__(self, workers: int):
        from ..records import studies

        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ConfigError(f"workers must be an integer >= 1, got {workers!r}: fix --workers")
        self.workers = workers
        self.threads = studies.threads_per_worker(workers)

    def describe(self) -> str:
        return f"in {self.workers} worker processes of {self.threads} thread{'s' if self.threads != 1 else ''} each"

    def engine(self, data: Data, config: SweepConfig, subset: torch.Tensor, run: RunDir | None, stack: bool) -> Engine:
        from ..executors.engines import WorkerEngine

        return WorkerEngine(data, config, subset, run, stack, self.workers)

    def run_workers(
        self, target: Callable[..., Any], args: Sequence[Any], poll: Callable[[], None] | None = None
    ) -> None:
        from ..records import studies

        studies.spawn_workers(_threaded, (self.threads, target, tuple(args)), self.workers, poll)


__all__ = ["InProcess", "WorkerProcesses"]
