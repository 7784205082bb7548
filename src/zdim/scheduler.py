"""The grid of a sweep as an Optuna study: enqueue, take, train, tell; workers, duplicates, dead workers.

Every (latent size, seed) point is enqueued as a fixed-parameter trial of one Optuna study. Workers
take only enqueued trials (``studies.take_waiting``: Optuna's storage-level WAITING -> RUNNING, so
several processes or machines on one study each take trials nobody has taken), run the trial function,
persist the trial folder at once (``RunDir.save_trial``) and tell the study the held-out NLL. The run
directory is the record of what finished: a trial whose folder holds a complete, loadable result is
never retrained. Records that other run directories (other machines) left in the study count too.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import optuna
import torch

from . import studies
from .data import Data
from .plan import SweepConfig
from .progress import Progress
from .records import TrialRecord, TrialStatus
from .runs import RunDir
from .trial import run_trial

State = optuna.trial.TrialState
Key = tuple[int, int]
FINAL = (State.COMPLETE, State.PRUNED, State.FAIL)


def grid_key(t: optuna.trial.FrozenTrial) -> Key | None:
    """The ``(dim, seed)`` point of a study trial, or None for a trial that is not a grid point."""
    fp = studies.fixed_params(t)
    if "dim" not in fp or "seed" not in fp:
        return None
    return int(fp["dim"]), int(fp["seed"])


def open_study(
    run: RunDir | None, storage: str | None, study_name: str, prune: bool = False, epochs: int = 3
) -> optuna.Study:
    """The sweep's study: ``storage`` URL, else the run directory's journal (memory without either).

    With ``prune``, seeds are compared from a third of ``epochs`` on (earlier epochs are too noisy).
    """
    pruner = studies.SameSizeMedianPruner(n_warmup_steps=max(1, epochs // 3)) if prune else None
    journal = run.study_file if run is not None else None
    return studies.open_study(journal, storage, study_name, pruner=pruner)


def final_records(
    study: optuna.Study, run: RunDir | None, local: bool = True, verify: bool = True
) -> dict[Key, TrialRecord]:
    """Finished grid points: records other run directories put in the study (another machine sharing
    it), then this run directory's trial folders. Records this run directory wrote to the study count
    only while its folder is intact, so a corrupt folder is redone rather than silently reused.
    """
    out: dict[Key, TrialRecord] = {}
    here = studies.worker_place(run.path if run is not None else None)
    for t in study.get_trials(deepcopy=False, states=FINAL):
        raw, key = t.user_attrs.get(studies.RECORD_ATTR), grid_key(t)
        if raw is None or key is None:
            continue  # stale or duplicate trial: nothing was finished by it
        if run is not None and studies.worker_place_of(t) == here:
            continue
        try:
            rec = TrialRecord.from_dict(raw)
        except ValueError:
            continue
        if key not in out or not out[key].complete:
            out[key] = rec
    if run is not None and local:
        for rec in run.records(verify=verify):
            out[rec.key] = rec
    return out


def enqueue_missing(study: optuna.Study, cfg: SweepConfig, run: RunDir | None) -> int:
    """Enqueue grid points neither finished nor waiting/running; return how many."""
    studies.fail_stale(study)  # RUNNING trials of dead workers -> FAIL, so their points count as missing
    finished = final_records(study, run)
    pending = {k for t in study.get_trials(deepcopy=False, states=(State.WAITING, State.RUNNING)) if (k := grid_key(t))}
    n = 0
    for key in cfg.grid():
        if key not in finished and key not in pending:
            study.enqueue_trial({"dim": key[0], "seed": key[1]})
            n += 1
    return n


def is_duplicate(study: optuna.Study, trial: optuna.Trial, key: Key, run: RunDir | None, local: bool = False) -> bool:
    """Whether another trial already covers ``key``: two starting workers may enqueue the same point.
    The lowest-numbered unfinished trial of a point is the one that trains it, whichever worker holds
    it: every worker sees the numbers the same way. (Comparing with RUNNING trials only is not enough:
    a lower duplicate may still be WAITING when we look, and be taken and trained a moment later.)
    """
    if key in final_records(study, run, local=False):
        return True
    if local and any(
        grid_key(t) == key and studies.RECORD_ATTR in t.user_attrs
        for t in study.get_trials(deepcopy=False, states=FINAL)
    ):
        return True  # our intact folder was already told to the study: telling it again counts it twice
    return any(
        grid_key(t) == key and t.number < trial.number
        for t in study.get_trials(deepcopy=False, states=(State.WAITING, State.RUNNING))
    )


def _pruning_callback(trial: optuna.Trial, dim: int) -> Any:
    def report(epoch: int, r: dict[str, Any]) -> None:
        try:
            trial.report(r["val_neg_elbo"], epoch)
        except optuna.exceptions.UpdateFinishedTrialError:
            return  # another worker finished this trial (see worker_loop): finish ours unpruned
        if trial.should_prune():
            raise optuna.TrialPruned(
                f"pruned at epoch {epoch}: validation -ELBO {r['val_neg_elbo']:.2f} above the median of "
                f"other seeds of size {dim}"
            )

    return report


def worker_loop(
    study: optuna.Study, data: Data, cfg: SweepConfig, run: RunDir | None, progress: Progress, prune: bool
) -> None:
    """Take enqueued trials until none is left (retrying those of dead workers), train, tell."""
    info = studies.worker_info(run.path if run is not None else None)
    grid = set(cfg.grid())
    while True:
        trial = studies.take_waiting(study)
        if trial is None:
            if enqueue_missing(study, cfg, run):
                continue
            if any(grid_key(t) in grid for t in study.get_trials(deepcopy=False, states=(State.RUNNING,))):
                time.sleep(1.0)  # others are still training grid points: wait, and retry theirs if they die
                continue
            return
        try:
            key = grid_key(studies.frozen(study, trial))
            if key is None:  # a foreign trial in our study: leave it failed, never train junk
                study.tell(trial, state=State.FAIL)
                continue
            dim, seed = key
            local = run is not None and run.trial_done(dim, seed)
            if is_duplicate(study, trial, key, run, local):
                trial.set_user_attr(studies.DUPLICATE_ATTR, True)
                study.tell(trial, state=State.FAIL)
                continue
            trial.suggest_int("dim", 1, max(dim, data.n_features))
            trial.suggest_int("seed", 0, max(seed, 2**31 - 1))
            with studies.Heartbeat(trial, info):
                if local:
                    assert run is not None
                    rec = run.read_trial(dim, seed)
                    assert rec is not None
                else:
                    callback = _pruning_callback(trial, dim) if prune else None
                    rec = run_trial(data, dim, seed, cfg, run, progress=progress, callback=callback)
            trial.set_user_attr(studies.RECORD_ATTR, studies.jsonable(rec.to_dict()))
            if rec.complete:
                study.tell(trial, rec.nll)
            else:
                trial.set_user_attr("reason", rec.reason)
                study.tell(trial, state=State.PRUNED if rec.status is TrialStatus.PRUNED else State.FAIL)
            if not local:
                progress.finished(rec)
            if run is not None:
                run.write_results(list(final_records(study, run, verify=False).values()))
        except optuna.exceptions.UpdateFinishedTrialError:
            # Another worker finished this trial while we held it: SQLite has no row locks, so two
            # workers can take the same enqueued trial, or ours was judged stale. Results are the same
            # (seeded), our folder is kept, and the study keeps the first record told.
            continue


def _worker_main(
    data: Data,
    cfg: SweepConfig,
    run_path: Path | None,
    storage: str | None,
    study_name: str,
    prune: bool,
    threads: int,
) -> None:
    """Entry point of a spawned worker process."""
    torch.set_num_threads(threads)
    run = RunDir(run_path) if run_path is not None else None
    study = open_study(run, storage, study_name, prune=prune, epochs=cfg.train.epochs)
    worker_loop(study, data, cfg, run, Progress(False), prune)


def run_grid(
    study: optuna.Study,
    data: Data,
    cfg: SweepConfig,
    run: RunDir | None,
    progress: Progress,
    *,
    workers: int = 1,
    prune: bool = False,
    storage: str | None = None,
    study_name: str = "zdim-sweep",
) -> list[TrialRecord]:
    """Enqueue missing grid points, run ``workers`` loops over the study, return the grid's records."""
    enqueue_missing(study, cfg, run)
    grid = set(cfg.grid())

    def finished() -> dict[Key, TrialRecord]:
        return {k: r for k, r in final_records(study, run, verify=False).items() if k in grid}

    seen = set(finished())
    progress.set_total(len(grid))
    progress.set_done(len(seen))
    if workers == 1:
        worker_loop(study, data, cfg, run, progress, prune)
    else:
        last = [0.0]

        def poll() -> None:  # the parent prints what the workers finished
            if time.monotonic() - last[0] < 2:
                return
            last[0] = time.monotonic()
            for key, rec in sorted(finished().items()):
                if key not in seen:
                    seen.add(key)
                    progress.finished(rec)

        studies.spawn_workers(
            _worker_main,
            (
                data,
                cfg,
                run.path if run is not None else None,
                storage,
                study_name,
                prune,
                studies.threads_per_worker(workers),
            ),
            workers,
            poll,
        )
    records = final_records(study, run)
    progress.set_done(len([k for k in records if k in grid]))
    if run is None:
        records = {k: r for k, r in records.items() if k in grid}
    return sorted(records.values(), key=lambda r: r.key)


__all__ = ["run_grid", "open_study", "final_records", "enqueue_missing", "is_duplicate", "grid_key", "worker_loop"]
