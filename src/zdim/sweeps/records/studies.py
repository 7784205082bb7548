"""Optuna plumbing shared by sweeps and tuning: storage, safe trial taking, heartbeats, workers.

Every use of Optuna's private API is here, in small functions tested on their own
(tests/test_studies.py): ``take_waiting``, ``frozen`` and ``trial_of``. Why this module exists:

- ``study.ask()`` creates a *fresh, unparameterized* trial when no waiting trial is left, which in a
  grid sweep is junk work. ``take_waiting`` only ever takes an enqueued trial (Optuna's storage-level
  WAITING -> RUNNING transition, atomic in the journal and in RDB storages) and returns None otherwise.
- JournalStorage has no heartbeat, so a RUNNING trial of a dead worker cannot be told apart from one of
  a live worker. ``Heartbeat`` stamps the trial every few seconds from a thread; ``is_stale`` calls a
  trial stale when its worker process is gone (same host: no such pid, a killed process its parent has
  not reaped yet, or a pid another process took since) or its stamp is older than the grace period.
- ``spawn_workers`` runs the same loop in N spawned processes with the CPU threads split between them.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna

from ...errors import ConfigError, WorkerError

WORKER_ATTR = "zdim_worker"
BEAT_ATTR = "zdim_heartbeat"
RECORD_ATTR = "zdim_record"
DUPLICATE_ATTR = "zdim_duplicate"
HEARTBEAT_INTERVAL = 5.0
HEARTBEAT_GRACE = 120.0
CLAIM_GRACE = 20.0  # a RUNNING trial with no worker stamp yet: its worker died between take and stamp
State = optuna.trial.TrialState


class FlockLock:
    """Journal-file lock held with ``flock``: the kernel releases it when its process dies, so a
    ``kill -9`` during a write never leaves a stale lock (Optuna's default symlink lock then blocks every
    other process for its 30 s grace period, then breaks the lock by force). A fresh descriptor per
    ``acquire`` makes it exclude threads of one process too.
    """

    def __init__(self, path: str):
        self.path = path + ".flock"
        self._fds: list[int] = []

    def acquire(self) -> bool:
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fds.append(fd)
        return True

    def release(self) -> None:
        import fcntl

        fd = self._fds.pop()
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def journal_storage(path: Path) -> optuna.storages.JournalStorage:
    """A JournalStorage on ``path`` with the kill-safe ``FlockLock`` (symlink lock where no flock)."""
    from optuna.storages.journal import JournalFileBackend

    try:
        import fcntl  # noqa: F401

        lock: Any = FlockLock(str(path))
    except ImportError:  # Windows
        lock = None
    return optuna.storages.JournalStorage(JournalFileBackend(str(path), lock_obj=lock))


def storage_url(url: str) -> str:
    """``url`` with a PostgreSQL driver SQLAlchemy can load: SQLAlchemy 2.1 maps a bare
    ``postgresql://`` to psycopg 3, while the ``postgres`` extra installs psycopg2."""
    import importlib.util

    for bare in ("postgresql://", "postgres://"):
        if (
            url.startswith(bare)
            and importlib.util.find_spec("psycopg") is None
            and importlib.util.find_spec("psycopg2") is not None
        ):
            return "postgresql+psycopg2://" + url[len(bare) :]
    return url


def is_journal(storage: str) -> bool:
    """Whether ``--storage`` names a journal file (a path) rather than a database URL (``scheme://``)."""
    return "://" not in storage


def open_study(
    journal: Path | None,
    storage: str | None,
    study_name: str,
    *,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    """Create or load a study: ``storage`` (a URL, or the path of a journal file shared by several run
    directories), else the journal file ``journal`` (in memory without either).

    A bad URL, a missing driver or an unreachable server is a ``ConfigError`` naming ``--storage``.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if storage is None:
        if journal is None:
            store: Any = optuna.storages.InMemoryStorage()
        else:
            journal.parent.mkdir(parents=True, exist_ok=True)
            store = journal_storage(journal)
    elif is_journal(storage):  # a journal file shared by processes (and machines on one file system)
        path = Path(storage).expanduser()
        if path.is_dir() or not path.parent.is_dir():
            raise ConfigError(
                f"storage {storage!r} is not a journal file in an existing folder: fix --storage "
                "(a file such as shared/study.journal, or a URL such as postgresql://host/db)"
            )
        store = journal_storage(path)
    else:
        store = storage_url(storage)
    try:
        for attempt in range(3):
            try:
                return optuna.create_study(
                    storage=store,
                    study_name=study_name,
                    direction="minimize",
                    load_if_exists=True,
                    sampler=sampler,
                    pruner=pruner,
                )
            except (ImportError, ModuleNotFoundError):
                raise
            except Exception:  # workers starting at once race to create the schema/study: retry
                if attempt == 2:
                    raise
                time.sleep(0.5 + attempt)
        raise AssertionError("unreachable")
    except (ImportError, ModuleNotFoundError) as e:
        raise ConfigError(
            f"storage {storage!r} needs a driver that is not installed ({e}): pip install 'zdim[postgres]'"
        ) from e
    except Exception as e:  # SQLAlchemy/Optuna raise many types for a bad URL or unreachable server
        raise ConfigError(f"cannot open Optuna storage {storage!r}: {e}: fix --storage") from e


def _started(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, Linux ``/proc``), None where unknown; with
    ``pid`` a process keeps it for life, so a pid taken again by a new process is told apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()  # after the command name, which may hold spaces
        return int(fields[19])  # field 22: starttime
    except (OSError, IndexError, ValueError):
        return None


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has exited but was not yet reaped by its parent (Linux ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


def worker_info(run_dir: Path | None) -> dict[str, Any]:
    """Who runs a trial: host, process (with its start time, where known) and run directory (stamped on
    the trial as ``zdim_worker``)."""
    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "run_dir": str(run_dir.resolve()) if run_dir is not None else None,
    }
    started = _started(os.getpid())
    if started is not None:
        info["started"] = started
    return info


def worker_place(run_dir: Path | None) -> tuple[str, str | None]:
    """``(host, run directory)`` of this process: where its trial folders live."""
    info = worker_info(run_dir)
    return info["host"], info["run_dir"]


def worker_place_of(t: optuna.trial.FrozenTrial) -> tuple[str | None, str | None]:
    """``(host, run directory)`` of the worker that ran ``t`` (None, None when it was never stamped)."""
    w = t.user_attrs.get(WORKER_ATTR, {})
    return w.get("host"), w.get("run_dir")


def fixed_params(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The parameters a trial was enqueued with (``enqueue_trial``), else those it suggested."""
    return dict(t.system_attrs.get("fixed_params") or t.params)


def frozen(study: optuna.Study, trial: optuna.Trial) -> optuna.trial.FrozenTrial:
    """The stored state of a live trial, read from the storage (its enqueued parameters included)."""
    return study._storage.get_trial(trial._trial_id)  # private API: kept here, tested in test_studies.py


def jsonable(obj: Any) -> Any:
    """``obj`` with NaN/inf floats replaced by None, safe to store as an Optuna user attribute."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item"):
        return jsonable(obj.item())
    return obj


def add_finished(
    study: optuna.Study, params: dict[str, int], record: dict[str, Any], value: float | None, run_dir: Path | None
) -> None:
    """Add a grid point trained outside an Optuna trial (settle mode) to the study as a finished trial:
    COMPLETE with ``value`` (the held-out NLL), FAIL when ``value`` is None; its record and worker
    stamped as a trial run by ``worker_loop`` would be, so every reader of the study sees it alike."""
    dists: dict[str, optuna.distributions.BaseDistribution] = {
        k: optuna.distributions.IntDistribution(0, max(v, 2**31 - 1)) for k, v in params.items()
    }
    state = optuna.trial.TrialState.COMPLETE if value is not None else optuna.trial.TrialState.FAIL
    attrs = {RECORD_ATTR: jsonable(record), WORKER_ATTR: worker_info(run_dir)}
    study.add_trial(
        optuna.trial.create_trial(params=params, distributions=dists, value=value, state=state, user_attrs=attrs)
    )


def take_waiting(study: optuna.Study) -> optuna.Trial | None:
    """Take one enqueued (WAITING) trial for this process, or None; never creates a new trial."""
    trial_id = study._pop_waiting_trial_id()  # atomic WAITING -> RUNNING in every Optuna storage
    return None if trial_id is None else optuna.Trial(study, trial_id)


class Heartbeat:
    """Context manager stamping ``trial`` with the time every ``interval`` seconds from a thread."""

    def __init__(self, trial: optuna.Trial, info: dict[str, Any], interval: float = HEARTBEAT_INTERVAL):
        self.trial, self.interval = trial, interval
        self._stop = threading.Event()
        trial.set_user_attr(WORKER_ATTR, info)
        trial.set_user_attr(BEAT_ATTR, time.time())
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(Exception):  # storage hiccup or trial finished meanwhile: next beat retries
                self.trial.set_user_attr(BEAT_ATTR, time.time())

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def _pid_alive(pid: int, started: int | None = None) -> bool:
    """Whether the process ``pid`` of this host runs: a killed process not yet reaped by its parent (a
    zombie) is dead, and so is a pid now held by another process (its start time is not ``started``)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if _zombie(pid):
        return False
    now = _started(pid) if started is not None else None
    return now is None or now == started


def is_stale(t: optuna.trial.FrozenTrial, now: float | None = None, grace: float = HEARTBEAT_GRACE) -> bool:
    """A RUNNING trial whose worker is dead: its process is gone (same host) or its beat is too old."""
    now = time.time() if now is None else now
    info = t.user_attrs.get(WORKER_ATTR)
    beat = t.user_attrs.get(BEAT_ATTR)
    if info and info.get("host") == socket.gethostname() and not _pid_alive(int(info["pid"]), info.get("started")):
        return True  # checked first: a worker can die between its stamp and its first beat
    if info is None or beat is None:
        start = t.datetime_start.timestamp() if t.datetime_start else now
        return now - start > min(grace, CLAIM_GRACE)
    return now - float(beat) > grace


def trial_of(study: optuna.Study, t: optuna.trial.FrozenTrial) -> optuna.Trial:
    """The live trial of a stored one, to set its attributes and tell it from this process."""
    return optuna.Trial(study, t._trial_id)  # private API: kept here, tested in test_studies.py


def fail_stale(
    study: optuna.Study,
    grace: float = HEARTBEAT_GRACE,
    recover: Callable[[optuna.Trial, optuna.trial.FrozenTrial], bool] | None = None,
) -> list[optuna.trial.FrozenTrial]:
    """Mark RUNNING trials of dead workers as FAIL (so their work is redone); return them.

    ``recover(trial, frozen)`` comes first: it may finish a stale trial from what its worker left (a
    worker killed after saving its result, before telling it) and return True; that one is not failed.
    """
    failed = []
    now = time.time()
    for t in study.get_trials(deepcopy=False, states=(State.RUNNING,)):
        if (
            t.user_attrs.get(WORKER_ATTR, {}).get("pid") == os.getpid()
            and t.user_attrs[WORKER_ATTR].get("host") == socket.gethostname()
        ):
            continue  # our own trial (never stale while we run)
        if is_stale(t, now, grace):
            try:
                if recover is not None and recover(trial_of(study, t), t):
                    continue
            except Exception:  # told by another worker meanwhile, or what it left is unreadable: failed below
                pass
            try:
                study.tell(t.number, state=State.FAIL)
            except Exception:  # another worker failed it first
                continue
            failed.append(t)
    return failed


def cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def threads_per_worker(workers: int) -> int:
    """CPU threads for each of ``workers`` processes on this machine."""
    return max(1, cores() // max(1, workers))


def spawn_workers(
    target: Callable[..., Any], args: Sequence[Any], workers: int, poll: Callable[[], None] | None = None
) -> None:
    """Run ``target(*args)`` in ``workers`` spawned processes; call ``poll()`` about once a second.

    Raises ``WorkerError`` naming the exit codes when a worker dies abnormally.
    """
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}: fix --workers")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=target, args=tuple(args), daemon=False) for _ in range(workers)]
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            if poll is not None:
                poll()
            for p in procs:
                p.join(timeout=1.0 / len(procs))
    except BaseException:
        for p in procs:  # our own children only
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join()
        raise
    if poll is not None:
        poll()
    bad = [p.exitcode for p in procs if p.exitcode != 0]
    if bad:
        raise WorkerError(
            f"{len(bad)} worker process(es) exited abnormally (codes {bad}); "
            "finished trials are saved: rerun with --resume"
        )


class SameSizeMedianPruner(optuna.pruners.BasePruner):
    """Prune a trial whose validation -ELBO at an epoch is above the median of *other seeds of the same
    latent size* at that epoch. Different sizes are never compared: a smaller model having a higher loss
    is the answer the sweep is looking for, not a sign it is hopeless.
    """

    def __init__(self, key: str = "dim", n_min_trials: int = 2, n_warmup_steps: int = 1):
        self.key, self.n_min_trials, self.n_warmup_steps = key, n_min_trials, n_warmup_steps

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self.n_warmup_steps:
            return False
        mine = fixed_params(trial).get(self.key)
        value = trial.intermediate_values[step]
        others = []
        for t in study.get_trials(deepcopy=False, states=(State.COMPLETE, State.PRUNED)):
            if fixed_params(t).get(self.key) == mine and step in t.intermediate_values:
                others.append(t.intermediate_values[step])
        if len(others) < self.n_min_trials or not math.isfinite(value):
            return False
        others.sort()
        n = len(others)
        median = others[n // 2] if n % 2 else 0.5 * (others[n // 2 - 1] + others[n // 2])
        return value > median


__all__ = [
    "open_study",
    "take_waiting",
    "Heartbeat",
    "is_stale",
    "fail_stale",
    "spawn_workers",
    "threads_per_worker",
    "SameSizeMedianPruner",
    "RECORD_ATTR",
]
