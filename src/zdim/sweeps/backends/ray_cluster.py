"""The Ray backend (``--backend ray``): settle mode's member groups as Ray actors, per-size mode's and
``zdim tune``'s workers as Ray tasks, on the nodes of a Ray cluster.

``RayCluster`` connects to the cluster at ``--address`` (``ray.init(address=...)``); without one, Ray's
own rule applies (``RAY_ADDRESS``, else the cluster ``ray start`` started on this machine, else a new
local instance); a process already connected to Ray keeps its connection. Ray is an optional
extra (``pip install 'zdim[ray]'``), imported here only, when the backend is chosen: without it the
choice fails with one line naming the extra.

- ``RayEngine`` (settle mode) is ``zdim.sweeps.executors.engines.PartitionedEngine`` over ``workers`` actors: the same
  partition of the members as ``WorkerEngine``'s processes, each actor a ``LocalEngine`` that runs the
  coordinator's commands (``zdim.sweeps.executors.engines.serve``). The coordinator, in this process, decides as it does
  in one process, so the answer is the one-process answer. Actors are placed over the live nodes in turn
  (``RayCluster.place``, each pinned to its node): each takes the CPU threads of its node divided among
  the actors there, and, where the cluster has GPUs, a GPU (an equal share of one where a node has more
  actors than GPUs). Each actor writes its members' checkpoint files into the run directory itself, so
  ``--out`` must be a path every node sees (a shared file system). An actor that dies (its node lost) is
  a ``WorkerError``: ``--resume`` goes on from the last checkpoint, on the nodes that are left (a run
  made on Ray may also resume without it: ``run.json`` records what was trained, not where).
- ``RayCluster.run_workers`` runs ``workers`` copies of a worker function as Ray tasks (no retries: a
  task whose node dies is a ``WorkerError``, and the study, the record of what finished, lets
  ``--resume`` go on); a relative ``Path`` argument is made absolute first, since a task runs elsewhere.

Every node needs the same zdim (the actors check) and Python as the process that runs the sweep.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import math
import os
import socket
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..._version import __version__
from ...data.dataset import Data
from ...errors import ConfigError, WorkerError
from ..executors.engines import LocalEngine, PartitionedEngine, serve
from ..planning.config import SweepConfig
from ..records.runs import RunDir

PLACE_TIMEOUT = 300.0  # seconds for the actors to start on the cluster before the sweep gives up
START_TRIES = 3  # placements of the actors, each without the nodes where one could not start
PROBE_TIMEOUT = 10.0  # seconds for the head at --address to accept a connection
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])  # client preface, SETTINGS
H2_SETTINGS = 4  # the type of the frame a gRPC server sends first


def probe(address: str, timeout: float = PROBE_TIMEOUT) -> None:
    """``ConfigError`` when ``address`` is not ``HOST:PORT`` or nothing listens there: Ray itself would
    retry for minutes. ``auto`` and a URL (``ray://...``) are left to Ray."""
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {address!r} is not HOST:PORT (what `ray start --head` printed): fix --address")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as conn:
            conn.sendall(H2_PREFACE)  # a Ray head's GCS is a gRPC server: it answers with HTTP/2 SETTINGS
            conn.settimeout(timeout)
            frame = conn.recv(9)
    except OSError as e:
        raise ConfigError(
            f"--address {address}: no Ray cluster answers there ({e.strerror or type(e).__name__}): start one with "
            "`ray start --head`, or fix --address"
        ) from None
    if len(frame) < 9 or frame[3] != H2_SETTINGS:  # Ray would retry there for minutes, logging as it goes
        raise ConfigError(
            f"--address {address}: something listens there, but not a Ray cluster (no gRPC answer): start one "
            "with `ray start --head`, or fix --address (the port `ray start --head` printed)"
        )


RAY_MISSING = "--backend ray needs Ray, which is not installed: pip install 'zdim[ray]' (or drop --backend ray)"


def import_ray() -> Any:
    """The ``ray`` module (an optional extra), or ``ConfigError`` in one line naming the extra."""
    try:
        return importlib.import_module("ray")
    except ImportError:
        raise ConfigError(RAY_MISSING) from None


def connect(address: str | None) -> Any:
    """Ray, connected to the cluster at ``address`` (None: Ray's own rule, ``RAY_ADDRESS``, else the
    cluster ``ray start`` began on this machine, else a new local instance; an existing connection of
    this process is kept). ``ConfigError`` when nothing answers at ``address``."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    if address is not None:
        probe(address)
    kw: dict[str, Any] = {"logging_level": logging.WARNING}
    if address is None:
        kw["include_dashboard"] = False
    try:
        # Ray's own logging while it joins a cluster: zdim's one line says what failed (a local instance
        # it starts is left alone: its processes would inherit the silenced streams)
        with _quiet() if address is not None else contextlib.nullcontext():
            ray.init(address=address, **kw)
    except (ConnectionError, RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if address is None:
            raise ConfigError(
                f"--backend ray could neither join nor start a Ray cluster here ({first}): pass --address HOST:PORT"
            ) from None
        raise ConfigError(
            f"--address {address}: no Ray cluster could be joined there ({first}): start one with "
            "`ray start --head`, or fix --address"
        ) from None
    return ray


@contextlib.contextmanager
def _quiet() -> Any:
    """stdout and stderr of this process, its file descriptors and Python's streams (Ray's C++ and Python
    logging alike), discarded while the block runs; put back after it, whatever happens."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with tempfile.TemporaryFile() as sink, open(os.devnull, "w") as null:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            try:
                with contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
                    yield
            finally:
                for stream in (sys.stdout, sys.stderr):
                    stream.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    finally:
        for fd in saved:
            os.close(fd)


def _absolute(value: Any) -> Any:
    """``value`` with its paths made absolute (a path, or the path fields of a dataclass such as
    ``zdim.sweeps.executors.per_size.SweepWorker``): a task may run on another node, from another directory."""
    if isinstance(value, Path):
        return value.resolve()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        paths = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        changed = {k: v.resolve() for k, v in paths.items() if isinstance(v, Path)}
        return dataclasses.replace(value, **changed) if changed else value
    return value


def _run(target: Callable[..., Any], *args: Any) -> None:
    """A Ray task: one copy of a worker (a callable object, which ``ray.remote`` does not take itself)."""
    target(*args)


def _reason(e: BaseException) -> str:
    """One line of a Ray error: its cause when a task raised, else its first line."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}".splitlines()[0]
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def _writable(result: Any) -> Any:
    """``result`` with the per-sample arrays of its ``Status``/``Done`` values copied: Ray hands numpy
    arrays back read-only (zero-copy), and the coordinator turns them into tensors."""
    if isinstance(result, dict):
        for value in result.values():
            for item in value if isinstance(value, tuple) else (value,):
                arr = getattr(item, "per_sample", None)
                if isinstance(arr, np.ndarray) and not arr.flags.writeable:
                    item.per_sample = arr.copy()
    return result


@dataclass(frozen=True)
class Slot:
    """Where one actor or task runs: its node, its CPU threads there, its share of a GPU (0: none)."""

    node: str
    threads: int
    gpu: float = 0.0


class MemberGroup:
    """A Ray actor: one member group of settle mode, a ``LocalEngine`` on its node."""

    def __init__(
        self, data: Data, config: SweepConfig, subset: torch.Tensor, run_path: Path | None, stack: bool, threads: int
    ):
        torch.set_num_threads(threads)
        self.engine = LocalEngine(data, config, subset, RunDir(run_path) if run_path is not None else None, stack)

    def version(self) -> str:
        """The zdim of this actor's node."""
        return __version__

    def call(self, cmd: str, args: tuple[Any, ...]) -> tuple[str, Any]:
        return serve(self.engine, cmd, args)


class RayEngine(PartitionedEngine):
    """Settle mode's members over ``workers`` Ray actors (see the module docstring)."""

    def __init__(
        self,
        cluster: RayCluster,
        data: Data,
        config: SweepConfig,
        subset: torch.Tensor,
        run: RunDir | None,
        stack: bool,
    ):
        ray = self.ray = cluster.ray
        self.data, self.config, self.workers, self.owner = data, config, cluster.workers, {}
        run_path = run.path.resolve() if run is not None else None  # the same folder on every node
        data_ref, subset_ref = ray.put(data), ray.put(subset)  # once, for every actor
        actor = ray.remote(MemberGroup)
        excluded: set[str] = set()  # nodes an actor could not start on: just died, or no zdim there
        reason = ""
        for _ in range(START_TRIES):
            try:
                self.slots = cluster.place(self.workers, exclude=excluded)
            except WorkerError:
                if not reason:
                    raise
                break
            self.actors = [
                actor.options(max_restarts=0, **cluster.options(slot)).remote(
                    data_ref, config, subset_ref, run_path, stack, slot.threads
                )
                for slot in self.slots
            ]
            refs = [a.version.remote() for a in self.actors]
            versions, failed = {}, set()
            for i, ref in enumerate(refs):
                try:
                    versions[i] = ray.get(ref, timeout=PLACE_TIMEOUT)
                except ray.exceptions.GetTimeoutError:
                    self.close()
                    raise WorkerError(
                        f"the Ray cluster did not start {self.workers} actor(s) in {PLACE_TIMEOUT:g} s "
                        f"({cluster.describe()}): lower --workers or add nodes"
                    ) from None
                except ray.exceptions.RayError as e:
                    failed.add(self.slots[i].node)
                    reason = _reason(e)
            if not failed:
                self._check(versions)
                return
            self.close()  # a node that died a moment ago may still count as live: place again without it
            excluded |= failed
        raise WorkerError(f"Ray actors could not start ({reason}): is zdim installed on every node?")

    def _check(self, versions: dict[int, str]) -> None:
        """``ConfigError`` when an actor's node runs another zdim than this process."""
        for i, version in versions.items():
            if version != __version__:
                self.close()
                raise ConfigError(
                    f"Ray node {self.slots[i].node} runs zdim {version}, this process zdim {__version__}: install "
                    "the same zdim on every node"
                )

    def describe(self) -> str:
        nodes = len({slot.node for slot in self.slots})
        threads = sorted({slot.threads for slot in self.slots})
        gpus = sorted({slot.gpu for slot in self.slots})
        gpu = (
            ""
            if gpus == [0.0]
            else (" and a GPU" if gpus == [1.0] else f" and {'-'.join(f'{g:g}' for g in gpus)} of a GPU")
        )
        each = f"of {'-'.join(map(str, threads))} thread{'s' if threads != [1] else ''}{gpu} each"
        return (
            f"in {self.workers} Ray actors on {nodes} node{'s' if nodes != 1 else ''}, {each}: the members "
            "one process trains, and its answer"
        )

    def _call(self, cmd: str, per_worker: dict[int, tuple[Any, ...]]) -> dict[int, Any]:
        ray = self.ray
        refs = {w: self.actors[w].call.remote(cmd, args) for w, args in per_worker.items()}
        out = {}
        for w, ref in refs.items():
            try:
                status, result = ray.get(ref)
            except ray.exceptions.RayActorError as e:
                self.close()
                raise WorkerError(
                    f"Ray actor {w} (node {self.slots[w].node[:12]}) died or became unreachable ({type(e).__name__}): "
                    "every member is saved up to the last checkpoint; rerun with --resume to go on from there"
                ) from None
            except ray.exceptions.RayError as e:
                self.close()
                raise WorkerError(f"Ray actor {w} failed: {_reason(e)}; rerun with --resume") from None
            if status != "ok":
                self.close()
                raise WorkerError(f"Ray actor {w} failed: {result}")
            out[w] = _writable(result)
        return out

    def close(self) -> None:
        for a in self.actors:
            with contextlib.suppress(Exception):  # an actor already gone
                self.ray.kill(a)
        self.actors = []


class RayCluster:
    """The Ray backend (see the module docstring): ``workers`` actors or tasks on the cluster at
    ``address`` (a local Ray instance when None)."""

    def __init__(self, workers: int, address: str | None = None):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ConfigError(f"workers must be an integer >= 1, got {workers!r}: fix --workers")
        self.ray = connect(address)
        self.workers, self.address = workers, address

    def _alive(self) -> list[dict[str, Any]]:
        return [n for n in self.ray.nodes() if n.get("Alive")]

    def node_cpus(self) -> dict[str, float]:
        """The CPUs each live node offers Ray, by node id."""
        return {str(n["NodeID"]): float(n.get("Resources", {}).get("CPU", 0.0)) for n in self._alive()}

    def gpus(self) -> float:
        """The GPUs of the live nodes."""
        return float(sum(n.get("Resources", {}).get("GPU", 0.0) for n in self._alive()))

    def place(self, n: int, exclude: set[str] | frozenset[str] = frozenset()) -> list[Slot]:
        """Where ``n`` actors or tasks go: over the live nodes that offer a CPU (and a GPU, where the cluster
        has GPUs), each next one on the node with the most capacity left per actor (CPUs, or GPUs), so
        equal nodes take turns; each gets its node's CPUs divided among the actors there, and a GPU (or an
        equal share of one where a node has more actors than GPUs). Nodes in ``exclude`` take none."""
        nodes = [
            (str(node["NodeID"]), float(res.get("CPU", 0.0)), float(res.get("GPU", 0.0)))
            for node in self._alive()
            if float((res := node.get("Resources", {})).get("CPU", 0.0)) >= 1 and str(node["NodeID"]) not in exclude
        ]
        with_gpus = [x for x in nodes if x[2] >= 1]
        usable = with_gpus or nodes
        if not usable:
            raise WorkerError(f"{self.describe()}: no live node offers a CPU to run zdim on; add a node")
        count = dict.fromkeys((x[0] for x in usable), 0)
        order = []
        for _ in range(n):
            node = min(usable, key=lambda x: (count[x[0]] + 1) / (x[2] if with_gpus else x[1]))
            count[node[0]] += 1
            order.append(node)
        return [
            Slot(
                node=node,
                threads=max(1, int(cpus // count[node])),
                gpu=0.0 if gpus < 1 else 1.0 / math.ceil(count[node] / int(gpus)),
            )
            for node, cpus, gpus in order
        ]

    def options(self, slot: Slot) -> dict[str, Any]:
        """Ray's options that put an actor or a task in ``slot``: pinned to its node (a node that dies takes
        its actors and tasks with it: ``--resume`` goes on), with its GPU share."""
        strategies = importlib.import_module("ray.util.scheduling_strategies")
        out: dict[str, Any] = {"scheduling_strategy": strategies.NodeAffinitySchedulingStrategy(slot.node, soft=False)}
        if slot.gpu:
            out["num_gpus"] = slot.gpu
        return out

    def describe(self) -> str:
        cpus, gpus = sum(self.node_cpus().values()), self.gpus()
        where = f"the Ray cluster at {self.address}" if self.address else "Ray"
        nodes = len(self._alive())
        return f"{where}: {nodes} node{'s' if nodes != 1 else ''}, {cpus:g} CPUs, {gpus:g} GPUs"

    def engine(
        self, data: Data, config: SweepConfig, subset: torch.Tensor, run: RunDir | None, stack: bool
    ) -> RayEngine:
        return RayEngine(self, data, config, subset, run, stack)

    def run_workers(
        self, target: Callable[..., Any], args: Sequence[Any], poll: Callable[[], None] | None = None
    ) -> None:
        """``workers`` copies of ``target(*args)`` as Ray tasks; ``poll()`` about once a second; returns
        when all have ended. ``WorkerError`` when a task raised or its node died."""
        ray = self.ray
        target, args = _absolute(target), tuple(_absolute(a) for a in args)  # a task may run on another node
        task = ray.remote(_run)
        refs = [
            task.options(max_retries=0, **self.options(slot)).remote(target, *args) for slot in self.place(self.workers)
        ]
        pending = list(refs)
        try:
            while pending:
                _, pending = ray.wait(pending, num_returns=len(pending), timeout=1.0)
                if poll is not None:
                    poll()
        except BaseException:
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            raise
        bad = []
        for ref in refs:
            try:
                ray.get(ref)
            except ray.exceptions.RayError as e:
                bad.append(_reason(e))
        if bad:
            raise WorkerError(
                f"{len(bad)} Ray task(s) ended abnormally ({bad[0]}); finished trials are saved: rerun with --resume"
            )


__all__ = ["RayCluster", "RayEngine", "MemberGroup", "Slot", "connect"]
