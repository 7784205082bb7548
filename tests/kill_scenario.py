"""One round of issue 32's kill -9 scenario, shared by tests and benchmarks/bench_kill.py.

Two run directories, ``a`` and ``b``, sweep one 12-point grid (6 sizes x 2 seeds, per-size mode) on one
study in a shared storage (a journal file or a PostgreSQL URL). Once ``a`` has finished ``finished``
trials and holds the next one, it is killed -9 at a moment of that trial (``MOMENTS``: just taken,
half-way, its folder being written, written but not told, just told) and left unreaped while the others
go on unless ``reap``; then ``a`` is resumed (``--resume``) next to ``b``. ``kill_round`` returns what a
round must show: each run directory's ``results.csv`` with all 12 points complete, each point recorded
once in the study, no finished folder of ``a`` rewritten and no point finished in both folders.
"""

from __future__ import annotations

import csv
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from zdim.records import trial_name
from zdim.sweeps.executors.per_size import grid_key
from zdim.sweeps.records import studies

from .test_scale import records_per_key, zdim

# trials of about 0.4 s on a loaded 2-core machine: a few ms would leave no moment to aim at, and both
# workers must still be training when the slower of them has started
ARGS = ["digits", "--epochs", "16", "--epoch-steps", "1", "--hidden", "64", "--k", "5", "--patience", "0", "--quiet",
        "--no-report"]  # fmt: skip
GRID = ["--dims", "1,2,3,4,6,8", "--seeds", "2", "--mode", "per-size", "--no-refine", "--no-extend"]
ARGS += GRID
POINTS = 12
RUNNING = optuna.trial.TrialState.RUNNING


@dataclass
class Round:
    """What one round showed."""

    complete: dict[str, int] = field(default_factory=dict)  # run directory -> complete points in results.csv
    recorded: int = 0  # grid points with a record in the study
    duplicates: int = 0  # records beyond the first of a point
    twice: list[str] = field(default_factory=list)  # points with a finished folder in both a and b
    retrained: list[str] = field(default_factory=list)  # finished folders of a rewritten after the kill
    moment: str = ""  # what a was doing when killed
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            not self.errors
            and set(self.complete.values()) == {POINTS}
            and self.recorded == POINTS
            and not (self.duplicates or self.twice or self.retrained)
        )


def _store(storage: str) -> Any:
    return studies.journal_storage(Path(storage)) if studies.is_journal(storage) else studies.storage_url(storage)


def _finished(run: Path) -> dict[str, int]:
    return {f.parent.name: f.stat().st_mtime_ns for f in run.glob("trials/*/metrics.json")}


def _trial_seconds(run: Path) -> float:
    """How long a trial of ``run`` takes, from the times its finished folders were written (0.4 s before two)."""
    times = sorted(_finished(run).values())
    return (times[-1] - times[0]) / 1e9 / (len(times) - 1) if len(times) > 1 else 0.4


def _complete(run: Path) -> int:
    try:
        with open(run / "results.csv") as f:
            return sum(r["status"] == "complete" for r in csv.DictReader(f))
    except OSError:
        return 0


def _moment(study: optuna.Study, number: int | None, a: Path) -> str:
    """Where ``a`` stood in its trial ``number`` when it died, read from the study and its folder."""
    if number is None:
        return "a finished before it could be killed"
    t = study.get_trials(deepcopy=False)[number]
    name = trial_name(*(grid_key(t) or (0, 0)))
    if t.state == optuna.trial.TrialState.COMPLETE:
        return f"between trials (after {name})"
    if studies.RECORD_ATTR in t.user_attrs:
        return f"{name} recorded, not told"
    if (a / "trials" / name / "metrics.json").is_file():
        return f"{name} saved, not told"
    if (a / "trials" / name).is_dir():
        return f"{name} being saved"
    if studies.BEAT_ATTR not in t.user_attrs:
        return f"{name} taken, before its first beat"
    return f"{name} training"


def _held(study: optuna.Study, pid: int) -> optuna.trial.FrozenTrial | None:
    """The trial that process ``pid`` holds (RUNNING, stamped with its pid), if any."""
    for t in study.get_trials(deepcopy=False, states=(RUNNING,)):
        if t.user_attrs.get(studies.WORKER_ATTR, {}).get("pid") == pid:
            return t
    return None


def _reached(moment: str, study: optuna.Study, trial: optuna.trial.FrozenTrial, a: Path, since: float) -> bool:
    """Whether ``a``'s ``trial`` (held since ``since``) is at ``moment`` (see ``MOMENTS``)."""
    folder = a / "trials" / trial_name(*(grid_key(trial) or (0, 0)))
    if moment == "start":
        return True
    if moment == "mid":
        return time.monotonic() - since >= _trial_seconds(a) / 2
    if moment == "saving":
        return folder.is_dir()
    if moment == "saved":
        return (folder / "metrics.json").is_file()
    return study.get_trials(deepcopy=False)[trial.number].state != RUNNING  # "after"


# moments of a trial of a: just taken, half-way, its folder being written, written (before it is told), told
MOMENTS = ("start", "mid", "saving", "saved", "after")


def kill_round(
    base: Path, storage: str, study_name: str, *, finished: int, moment: str, reap: bool, timeout: float = 150
) -> Round:
    """One round in the empty folder ``base`` on ``storage`` (a journal file path or a database URL): ``a`` is
    killed at ``moment`` (``MOMENTS``) of the trial it holds after it finished ``finished`` trials."""
    t0 = time.monotonic()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = Round()
    base.mkdir(parents=True, exist_ok=True)
    store = _store(storage)
    study = optuna.create_study(storage=store, study_name=study_name)  # schema and study first, then the race
    shared = ["--storage", storage, "--study", study_name]
    a, b = base / "a", base / "b"
    pa = zdim("sweep", *ARGS, *shared, "--out", str(a))
    pb = zdim("sweep", *ARGS, *shared, "--out", str(b))
    victim, since, deadline = None, 0.0, time.monotonic() + timeout
    while pa.poll() is None and time.monotonic() < deadline:
        if victim is None and len(_finished(a)) >= finished:
            victim, since = _held(study, pa.pid), time.monotonic()
        if victim is not None and _reached(moment, study, victim, a, since):
            break
        time.sleep(0.001)
    pa.kill()
    if reap:
        pa.wait()
    stamps = _finished(a)
    out.moment = _moment(study, None if victim is None else victim.number, a)
    resumed = zdim("sweep", *ARGS, *shared, "--out", str(a), "--resume")
    for name, p in (("a --resume", resumed), ("b", pb)):
        try:
            _, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
            out.errors.append(f"{name}: still running after {timeout:.0f} s")
            continue
        if p.returncode != 0:
            out.errors.append(f"{name}: exit {p.returncode}: {err.strip()[-500:]}")
    pa.wait()
    out.complete = {"a": _complete(a), "b": _complete(b)}
    counts: Counter[Any] = records_per_key(optuna.load_study(study_name=study_name, storage=store))
    out.recorded, out.duplicates = len(counts), sum(n - 1 for n in counts.values())
    out.twice = sorted(set(_finished(a)) & set(_finished(b)))
    now = _finished(a)
    out.retrained = sorted(name for name, ns in stamps.items() if now.get(name) != ns)
    out.seconds = time.monotonic() - t0
    return out
