"""How settle mode's members train: in this process, alone or stacked, or in worker processes.

``zdim.sweeps.executors.settle.SettleExecutor`` decides (the answer, which member stops, when to checkpoint); an engine
does what it is told and reports every member's state after each epoch as a ``Status``:

- ``LocalEngine``: the members in this process, each a ``zdim.training.trainer.Trainer`` advanced in turn, or, with
  ``stack``, the members of one shape as one ``zdim.training.stacked.StackedTrainer`` (batched matmuls: the GPU
  path). The training and validation splits go to the device once, for every member.
- ``WorkerEngine``: the members partitioned over N spawned worker processes, each a ``LocalEngine`` with
  ``cores // N`` threads, advanced together epoch by epoch through pipes; each worker writes its own
  members' checkpoint files and evaluates its own members at the end. Workers ignore SIGINT (the
  coordinator handles Ctrl-C and has them checkpoint); a worker that dies is a ``WorkerError``, and
  ``--resume`` goes on from the last checkpoint.

A member trained by any engine is the member trained alone: its own seed, initialization, shuffling
and noise stream (stacked: to float rounding, ``tests/test_stacked.py``).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import signal
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from ...data.dataset import Data
from ...errors import WorkerError
from ...evaluation.metrics import EVAL_K, Reference, evaluate, reference
from ...evaluation.trial import evaluate_trial
from ...models.vae import VAE
from ...records import TrialRecord, trial_name
from ...training.config import resolve_device
from ...training.stacked import StackedMember, StackedTrainer, groups
from ...training.trainer import FitResult, Trainer
from ...training.trial import training_record
from ..planning.config import SweepConfig, build_sweep_model
from ..records import studies
from ..records.ledger import Key, failed
from ..records.runs import RunDir


@dataclass
class Status:
    """A member after its last epoch, as the coordinator needs it."""

    epoch: int
    done: bool = False
    stopped_early: bool = False
    asleep: bool = False
    lr_drops: int = 0  # how many times its learning rate was lowered (a plateau, or the coordinator)
    val_nll: float | None = None
    active: int | None = None
    per_sample: np.ndarray | None = None  # (N,) NLL of each validation-subset sample (paired across members)
    failed: str = ""


@dataclass
class Done:
    """A member finished: its best weights (as a model, or a state dict from a worker), its training
    record, and its held-out record and per-sample NLL (None when its evaluation failed: ``error``)."""

    fitted: FitResult
    model: VAE | None = None
    state: dict[str, torch.Tensor] | None = None
    record: TrialRecord | None = None
    per_sample: np.ndarray | None = None
    error: str = ""


class Engine(Protocol):
    """What settle mode asks of the code that trains its members (see the module docstring)."""

    def add(self, keys: list[Key]) -> None: ...

    def step(self, keys: list[Key], lower: tuple[Key, ...] = ()) -> dict[Key, Status]: ...

    def save(self, round_: int, extra: dict[Key, dict[str, Any]]) -> None: ...

    def restore(self, round_: int, keys: list[Key]) -> dict[Key, tuple[Status, dict[str, Any]]]: ...

    def finish(
        self, keys: list[Key], held_out: Data, k: int, window: int, ref: Reference | None = None
    ) -> dict[Key, Done]: ...

    def close(self) -> None: ...

    def describe(self) -> str: ...


def _status(t: Trainer | StackedMember, score: dict[str, Any] | None, fail: str = "") -> Status:
    s = Status(
        epoch=t.epoch,
        done=t.done,
        stopped_early=t.result.stopped_early,
        asleep=t.asleep,
        lr_drops=t.lr_drops,
        failed=fail,
    )
    if score is not None and not fail:
        s.val_nll, s.active = float(score["nll"]), int(score["active_units"])
        s.per_sample = score["nll_per_sample"].cpu().numpy()
    return s


class LocalEngine:
    """The members in this process (see the module docstring)."""

    def __init__(self, data: Data, config: SweepConfig, subset: torch.Tensor, run: RunDir | None, stack: bool):
        self.data, self.config, self.run, self.stack = data, config, run, stack
        device = resolve_device(config.train.device)
        self.train, self.val = data.train.to(device), data.val.to(device)  # once, for every member
        self.subset = subset.to(device)
        self.trainers: dict[Key, Trainer | StackedMember] = {}
        self.stacks: list[tuple[StackedTrainer, list[Key]]] = []

    def describe(self) -> str:
        n = sum(len(ks) for _, ks in self.stacks)
        if self.stacks:
            return f"{n} of them in {len(self.stacks)} stack(s)"
        if self.stack and len(self.trainers) > 1:  # asked for, and nothing could stack (zdim.training.stacked.groups)
            return (
                "none of them stacked: each trained alone, as a model of its own, a conv or nested one, or one "
                "trained with a wake-up lever (on Gaussian data the noise-scale hold is on by default) does"
            )
        return ""

    def add(self, keys: list[Key]) -> None:
        built: list[tuple[Key, VAE]] = []
        for dim, seed in keys:
            torch.manual_seed(seed)  # as zdim.training.trial.train: the same initial weights
            built.append(((dim, seed), build_sweep_model(self.data, dim, self.config)))
        configs = [replace(self.config.train, seed=s) for (_, s), _ in built]
        parts = groups([m for _, m in built], configs) if self.stack else [[i] for i in range(len(built))]
        for part in parts:
            if len(part) > 1:
                stack = StackedTrainer([built[i][1] for i in part], [configs[i] for i in part], self.train, self.val)
                ks = [built[i][0] for i in part]
                self.stacks.append((stack, ks))
                self.trainers.update(zip(ks, stack.members))
            else:
                key, model = built[part[0]]
                self.trainers[key] = Trainer(model, self.train, self.val, configs[part[0]])

    def _score(self, model: VAE) -> dict[str, Any]:
        return evaluate(model, self.subset, k=EVAL_K, seed=0, per_sample=True)

    def step(self, keys: list[Key], lower: tuple[Key, ...] = ()) -> dict[Key, Status]:
        """One epoch of every member of ``keys``, then its score on the validation subset; the members of
        ``lower`` first have their learning rate lowered (``Epochs.lower_lr``). A member that raises
        (divergence, an error in the user's model) fails alone, with its reason."""
        for key in lower:
            self.trainers[key].lower_lr()
        live, out = set(keys), {}
        in_stacks: set[Key] = set()
        for stack, ks in self.stacks:
            in_stacks |= set(ks)
            idx = [j for j, k in enumerate(ks) if k in live]
            if not idx:
                continue
            stack.run_epoch(idx)
            ok = [j for j in idx if not stack.members[j].failed]
            scores = stack.score(self.subset, k=EVAL_K, seed=0, which=ok) if ok else [None] * len(ks)
            for j in idx:
                member = stack.members[j]
                out[ks[j]] = _status(member, scores[j], member.failed)
        for key in keys:
            if key in in_stacks:
                continue
            t = self.trainers[key]
            try:
                t.run_epoch()
                out[key] = _status(t, self._score(t.model))
            except Exception as e:  # noqa: BLE001 - one failing member never stops the others
                out[key] = _status(t, None, failed(*key, e).reason)
        return out

    def save(self, round_: int, extra: dict[Key, dict[str, Any]]) -> None:
        """Each member of ``extra`` into the checkpoint of round ``round_`` (with the coordinator's own
        record of it, ``extra[key]``, as ``meta["member"]``)."""
        assert self.run is not None
        for key, member in extra.items():
            tensors, meta = self.trainers[key].state()
            meta["member"] = member
            self.run.save_settle_member(round_, trial_name(*key), tensors, meta)

    def restore(self, round_: int, keys: list[Key]) -> dict[Key, tuple[Status, dict[str, Any]]]:
        """The members of ``keys`` as the checkpoint of round ``round_`` left them (each with its score,
        recomputed from the same weights, and the coordinator's record of it)."""
        assert self.run is not None
        out = {}
        for key in keys:
            found = self.run.read_settle_member(round_, trial_name(*key))
            if found is None:
                raise WorkerError(f"the checkpoint of round {round_} lacks {trial_name(*key)}: rerun with --overwrite")
            tensors, meta = found
            t = self.trainers[key]
            t.load_state(tensors, meta)
            member = dict(meta.get("member", {}))
            score = self._score(t.model) if member.get("val_nll") is not None and not member.get("failed") else None
            out[key] = (_status(t, score), member)
        return out

    def finish(
        self, keys: list[Key], held_out: Data, k: int, window: int, ref: Reference | None = None
    ) -> dict[Key, Done]:
        """Best weights back, then the held-out evaluation of each member of ``keys`` (``evaluate_trial``
        against ``ref``, convergence judged over ``window`` epochs as settle mode judged it)."""
        out = {}
        if ref is None and keys:  # once for all of them
            ref = reference(held_out.train, held_out.test, held_out.likelihood)
        for key in keys:
            t = self.trainers[key]
            fitted = t.finish()
            try:
                trained = training_record(fitted, window)
                rec, per_sample = evaluate_trial(t.model, held_out, key[0], key[1], k, trained=trained, ref=ref)
            except Exception as e:  # noqa: BLE001 - a model that fails its evaluation fails alone
                out[key] = Done(fitted, t.model, error=failed(*key, e).reason)
                continue
            out[key] = Done(fitted, t.model, record=rec, per_sample=per_sample)
        return out

    def close(self) -> None:
        pass


def _worker(
    conn: Connection,
    data: Data,
    config: SweepConfig,
    subset: torch.Tensor,
    run_path: Path | None,
    stack: bool,
    threads: int,
) -> None:
    """A worker process: a ``LocalEngine`` that runs the coordinator's commands until told to quit."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the coordinator, which has us checkpoint
    torch.set_num_threads(threads)
    engine = LocalEngine(data, config, subset, RunDir(run_path) if run_path is not None else None, stack)
    while True:
        try:
            cmd, args = conn.recv()
        except (EOFError, OSError):
            return  # the coordinator is gone
        if cmd == "quit":
            return
        conn.send(serve(engine, cmd, args))


def serve(engine: LocalEngine, cmd: str, args: tuple[Any, ...]) -> tuple[str, Any]:
    """One command of a coordinator run by a member group's ``LocalEngine`` (in a worker process or a Ray
    actor): ``("ok", result)``, a finished model as its weights, or ``("error", one line)``."""
    try:
        result = getattr(engine, cmd)(*args)
        if cmd == "finish":  # a model crosses to the coordinator as its weights
            for done in result.values():
                done.state = {n: v.detach().cpu() for n, v in done.model.state_dict().items()}
                done.model = None
        return "ok", result
    except Exception as e:  # noqa: BLE001 - said to the coordinator, which stops the sweep in one line
        return "error", f"{type(e).__name__}: {e}"


class PartitionedEngine:
    """The members split over ``workers`` member groups, each a ``LocalEngine`` somewhere else (a worker
    process, a Ray actor: ``zdim.sweeps.backends.ray_cluster``), advanced together; a subclass says how a command
    reaches the groups (``_call``) and how they end (``close``)."""

    data: Data
    config: SweepConfig
    workers: int
    owner: dict[Key, int]

    def _call(self, cmd: str, per_worker: dict[int, tuple[Any, ...]]) -> dict[int, Any]:
        """Run ``cmd`` in the groups of ``per_worker`` (each with its own arguments) and gather their answers;
        a group that died or failed stops every group and raises ``WorkerError``."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _split(self, keys: list[Key]) -> dict[int, list[Key]]:
        parts: dict[int, list[Key]] = {}
        for key in keys:
            parts.setdefault(self.owner[key], []).append(key)
        return parts

    def add(self, keys: list[Key]) -> None:
        # members of every size spread over the workers: sizes cost about the same for one architecture
        for i, key in enumerate(sorted(keys, key=lambda k: (k[1], k[0]))):
            self.owner[key] = i % self.workers
        self._call("add", {w: (ks,) for w, ks in self._split(keys).items()})

    def step(self, keys: list[Key], lower: tuple[Key, ...] = ()) -> dict[Key, Status]:
        out: dict[Key, Status] = {}
        parts = self._split(keys)
        args = {w: (ks, tuple(k for k in lower if self.owner[k] == w)) for w, ks in parts.items()}
        for part in self._call("step", args).values():
            out.update(part)
        return out

    def save(self, round_: int, extra: dict[Key, dict[str, Any]]) -> None:
        parts = self._split(list(extra))
        self._call("save", {w: (round_, {k: extra[k] for k in ks}) for w, ks in parts.items()})

    def restore(self, round_: int, keys: list[Key]) -> dict[Key, tuple[Status, dict[str, Any]]]:
        out: dict[Key, tuple[Status, dict[str, Any]]] = {}
        for part in self._call("restore", {w: (round_, ks) for w, ks in self._split(keys).items()}).values():
            out.update(part)
        return out

    def finish(
        self, keys: list[Key], held_out: Data, k: int, window: int, ref: Reference | None = None
    ) -> dict[Key, Done]:
        out: dict[Key, Done] = {}
        split = self._split(keys)
        parts = self._call("finish", {w: (ks, held_out, k, window, ref) for w, ks in split.items()})
        for part in parts.values():
            for key, done in part.items():
                model = build_sweep_model(self.data, key[0], self.config)
                assert done.state is not None
                model.load_state_dict(done.state)
                done.model, done.state = model.eval(), None
                out[key] = done
        return out


class WorkerEngine(PartitionedEngine):
    """The members over ``workers`` spawned processes (see the module docstring)."""

    def __init__(
        self, data: Data, config: SweepConfig, subset: torch.Tensor, run: RunDir | None, stack: bool, workers: int
    ):
        self.data, self.config, self.workers = data, config, workers
        self.threads = studies.threads_per_worker(workers)
        ctx = mp.get_context("spawn")
        self.procs: list[Any] = []
        self.conns: list[Connection] = []
        run_path = run.path if run is not None else None
        for _ in range(workers):
            here, there = ctx.Pipe()
            proc = ctx.Process(
                target=_worker, args=(there, data, config, subset, run_path, stack, self.threads), daemon=True
            )
            proc.start()
            there.close()
            self.procs.append(proc)
            self.conns.append(here)
        self.owner = {}

    def describe(self) -> str:
        threads = f"{self.threads} thread{'s' if self.threads != 1 else ''}"
        return f"in {self.workers} worker processes of {threads} each: the members one process trains, and its answer"

    def _call(self, cmd: str, per_worker: dict[int, tuple[Any, ...]]) -> dict[int, Any]:
        """Send ``cmd`` to the workers of ``per_worker`` (each its own arguments) and gather their answers;
        a worker that died or failed stops every worker and raises ``WorkerError``."""
        for w, args in per_worker.items():
            self.conns[w].send((cmd, args))
        out = {}
        for w in per_worker:
            try:
                status, result = self.conns[w].recv()
            except (EOFError, OSError):
                code = self.procs[w].exitcode
                self.close()
                raise WorkerError(
                    f"settle worker process {w} died (exit code {code}): every member is saved up to the last "
                    "checkpoint; rerun with --resume to go on from there"
                ) from None
            if status != "ok":
                self.close()
                raise WorkerError(f"settle worker process {w} failed: {result}")
            out[w] = result
        return out

    def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError, ValueError):  # a worker already gone
                conn.send(("quit", ()))
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join()
        for conn in self.conns:
            conn.close()
        self.conns, self.procs = [], []


__all__ = ["Status", "Done", "Engine", "LocalEngine", "PartitionedEngine", "WorkerEngine", "EVAL_K", "serve"]
