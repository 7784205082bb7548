"""Which file-backed Optuna storage survives concurrent writers and ``kill -9`` best?

Runs ``--writers`` processes that each loop ask -> set_user_attr -> tell on one study, while the parent
SIGKILLs a random writer every ``--kill-every`` seconds (and starts a new one) for ``--seconds``. Then
it reopens the storage and reports, per backend: whether it loads, trials written per second, writer
errors, the longest single ask/tell cycle (a stall after a kill shows up here) and trials left RUNNING
(by the killed writers: expected, that is what heartbeats are for).

Backends: Optuna's JournalStorage with its default symlink lock, the same with zdim's ``FlockLock``,
and SQLite via RDBStorage.

    PYTHONPATH=src python benchmarks/bench_storage.py [--seconds 20] [--writers 3] [--kill-every 0.5]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import signal
import tempfile
import time
from pathlib import Path

import optuna


def make_storage(kind: str, path: Path):
    from optuna.storages.journal import JournalFileBackend

    if kind == "journal-symlink":
        return optuna.storages.JournalStorage(JournalFileBackend(str(path / "s.journal")))
    if kind == "journal-flock":
        from zdim.sweeps.records.studies import journal_storage

        return journal_storage(path / "f.journal")
    return f"sqlite:///{path / 's.db'}"


def writer(kind: str, path: Path, out: str) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    errors, worst, n = 0, 0.0, 0
    study = optuna.load_study(study_name="b", storage=make_storage(kind, path))
    while True:
        t0 = time.perf_counter()
        try:
            t = study.ask()
            t.set_user_attr("beat", time.time())
            study.tell(t, random.random())
            n += 1
        except Exception:
            errors += 1
        worst = max(worst, time.perf_counter() - t0)
        with open(out, "w") as f:  # the parent reads the latest figures of each writer
            f.write(f"{errors} {worst} {n}")


def _read(out: str) -> tuple[int, float, int]:
    try:
        with open(out) as f:
            e, w, n = f.read().split()
        return int(e), float(w), int(n)
    except (OSError, ValueError):
        return 0, 0.0, 0


def bench(kind: str, seconds: float, writers: int, kill_every: float) -> dict:
    path = Path(tempfile.mkdtemp(prefix=f"zdim-bench-{kind}-"))
    optuna.create_study(study_name="b", storage=make_storage(kind, path))
    ctx = mp.get_context("spawn")
    procs, outs, kills = [], [], 0

    def start() -> None:
        out = str(path / f"w{len(outs)}.txt")
        p = ctx.Process(target=writer, args=(kind, path, out))
        p.start()
        procs.append(p)
        outs.append(out)

    for _ in range(writers):
        start()
    time.sleep(3)  # spawn start-up
    t_end = time.monotonic() + seconds
    stall, last_n, last_t = 0.0, -1, time.monotonic()
    while time.monotonic() < t_end:
        t_kill = time.monotonic() + kill_every
        while time.monotonic() < t_kill:  # longest time in which no writer finished a trial
            time.sleep(0.02)
            n = sum(_read(o)[2] for o in outs)
            if n != last_n:
                last_n, last_t = n, time.monotonic()
            stall = max(stall, time.monotonic() - last_t)
        alive = [p for p in procs if p.is_alive()]
        victim = random.choice(alive)
        os.kill(victim.pid, signal.SIGKILL)
        victim.join()
        kills += 1
        start()
    for p in procs:
        if p.is_alive():
            os.kill(p.pid, signal.SIGKILL)
            p.join()
    figures = [_read(o) for o in outs]
    errors, worst = sum(f[0] for f in figures), max(f[1] for f in figures)
    try:
        study = optuna.load_study(study_name="b", storage=make_storage(kind, path))
        trials = study.get_trials(deepcopy=False)
        loads = True
    except Exception as e:  # noqa: BLE001 - a benchmark reports, never hides
        trials, loads = [], f"no: {e}"
    done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    running = sum(t.state == optuna.trial.TrialState.RUNNING for t in trials)
    return {
        "backend": kind,
        "loads": loads,
        "kills": kills,
        "complete": done,
        "trials/s": done / seconds,
        "errors": errors,
        "worst_cycle_s": worst,
        "longest_stall_s": stall,
        "left_running": running,
    }


def hold_lock(kind: str, path: Path) -> None:
    """Take the storage's write lock and never let go (the parent SIGKILLs us while we hold it)."""
    if kind == "journal-symlink":
        from optuna.storages.journal import JournalFileSymlinkLock

        JournalFileSymlinkLock(str(path / "s.journal")).acquire()
    elif kind == "journal-flock":
        from zdim.sweeps.records.studies import FlockLock

        FlockLock(str(path / "f.journal")).acquire()
    else:
        import sqlite3

        con = sqlite3.connect(str(path / "s.db"), isolation_level=None)
        con.execute("BEGIN EXCLUSIVE")
    time.sleep(600)


def killed_inside_write(kind: str) -> dict:
    """The worst case: a writer is SIGKILLed while it holds the write lock. How long is the next write?"""
    path = Path(tempfile.mkdtemp(prefix=f"zdim-bench-{kind}-"))
    study = optuna.create_study(study_name="b", storage=make_storage(kind, path))
    p = mp.get_context("spawn").Process(target=hold_lock, args=(kind, path))
    p.start()
    time.sleep(3)
    os.kill(p.pid, signal.SIGKILL)
    p.join()
    t0 = time.perf_counter()
    try:
        study.tell(study.ask(), 1.0)
        ok = True
    except Exception as e:  # noqa: BLE001
        ok = f"no: {type(e).__name__}"
    return {"backend": kind, "next_write_ok": ok, "next_write_s": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--writers", type=int, default=3)
    ap.add_argument("--kill-every", type=float, default=0.5)
    a = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    print(
        f"{a.writers} writers, one SIGKILLed every {a.kill_every}s for {a.seconds}s "
        f"(cpu count {os.cpu_count()}; the machine may be shared: compare rows, not absolute rates)"
    )
    kinds = ("journal-symlink", "journal-flock", "sqlite")
    print("Writer SIGKILLed while holding the write lock; the next write from another process:")
    for kind in kinds:
        r = killed_inside_write(kind)
        print("  ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()), flush=True)
    print("Random kills under load:")
    for kind in kinds:
        r = bench(kind, a.seconds, a.writers, a.kill_every)
        print("  ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()), flush=True)


if __name__ == "__main__":
    main()
