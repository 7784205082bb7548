"""Per-size mode: each (latent size, seed) point is one trial of the sweep's Optuna study.

Every point is enqueued as a fixed-parameter trial. Workers (the plan's backend's: this process, or
``workers`` spawned processes; or other machines on a shared ``--storage``) take only enqueued trials
(``studies.take_waiting``: Optuna's storage-level WAITING -> RUNNING, so several processes each take
trials nobody has taken), train a VAE of that size to its own end (``run_trial``), finish it through the
``Ledger`` (run directory first, then the study) and take the next. The run directory is the record of
what finished: a trial whose folder holds a complete, loadable result is never retrained. Records that
other run directories (other machines) left in the study count too.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna

from ..data.dataset import Data
from ..records import TrialRecord, TrialStatus, trial_name
from . import studies
from .backends import choose
from .config import SweepConfig, model_config
from .ledger import FINAL, Finished, Key, Ledger, Outcome, evaluate_trial, failed, finished_records, grid_key, train
from .plan import SweepPlan
from .runs import RunDir

State = optuna.trial.TrialState


def open_study(
    run: RunDir | None, storage: str | None, study_name: str, prune: bool = False, epochs: int = 3
) -> optuna.Study:
    """The sweep's study: ``storage`` URL, else the run directory's journal (memory without either).

    With ``prune``, seeds are compared from a third of ``epochs`` on (earlier epochs are too noisy).
    """
    pruner = studies.SameSizeMedianPruner(n_warmup_steps=max(1, epochs // 3)) if prune else None
    journal = run.study_file if run is not None else None
    return studies.open_study(journal, storage, study_name, pruner=pruner)


def recover_saved(study: optuna.Study, trial: optuna.Trial, t: optuna.trial.FrozenTrial) -> bool:
    """Tell the stale trial ``t`` from its dead worker's folder, when that worker (on this host) saved the
    trial's result and was killed before telling it: the point is finished, training it again would
    do it twice. False (the trial is then failed and redone) when there is no such intact folder, or
    when another trial already holds a record of the point."""
    host, path = studies.worker_place_of(t)
    key = grid_key(t)
    if key is None or path is None or host != socket.gethostname():
        return False
    if any(
        grid_key(o) == key and studies.RECORD_ATTR in o.user_attrs
        for o in study.get_trials(deepcopy=False, states=FINAL)
    ):
        return False
    folder = RunDir(path)
    rec = folder.read_trial(*key) if folder.trial_done(*key) else None
    if rec is None:
        return False
    _teller(study, trial)(rec)
    return True


def enqueue_missing(study: optuna.Study, cfg: SweepConfig, run: RunDir | None) -> int:
    """Enqueue grid points neither finished nor waiting/running; return how many."""
    # RUNNING trials of dead workers -> FAIL, so their points count as missing (unless saved before death)
    studies.fail_stale(study, recover=lambda trial, t: recover_saved(study, trial, t))
    finished = finished_records(study, run)
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
    if key in finished_records(study, run, local=False):
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


def _pruning_callback(trial: optuna.Trial, dim: int) -> Callable[[int, dict[str, Any]], None]:
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


def run_trial(
    ledger: Ledger,
    cfg: SweepConfig,
    dim: int,
    seed: int,
    *,
    callback: Callable[[int, dict[str, Any]], None] | None = None,
    tell: Callable[[TrialRecord], None] | None = None,
) -> Finished:
    """Train and evaluate the (``dim``, ``seed``) point of a per-size sweep and finish it (``Ledger``).

    A diverged or failing trial is finished as FAILED with its reason; one stopped by ``callback``
    raising ``optuna.TrialPruned`` as PRUNED. The sweep goes on either way.
    """
    data, progress = ledger.data, ledger.progress
    tcfg = replace(cfg.train, seed=seed)

    def on_epoch(epoch: int, r: dict[str, Any]) -> None:
        progress.epoch(r)
        if callback is not None:
            callback(epoch, r)

    progress.training(trial_name(dim, seed), tcfg.epochs)
    try:
        model, fitted = train(data, model_config(data, dim, cfg), tcfg, callback=on_epoch, model_spec=cfg.model)
        held_out, ref = ledger.held_out(cfg)
        progress.evaluating(trial_name(dim, seed), f"IWAE k={cfg.k} on {held_out.test.shape[0]} held-out samples")
        rec, per_sample = evaluate_trial(model, held_out, fitted, dim, seed, cfg.k, patience=tcfg.patience, ref=ref)
    except optuna.TrialPruned as e:
        pruned = TrialRecord(dim=dim, seed=seed, status=TrialStatus.PRUNED, reason=str(e) or "pruned")
        return ledger.finish(pruned, tell=tell)
    except Exception as e:  # noqa: BLE001 - any error in one trial is recorded; the sweep goes on
        return ledger.finish(failed(dim, seed, e), tell=tell)
    return ledger.finish(rec, model, fitted.history, per_sample, tell=tell)


def _teller(study: optuna.Study, trial: optuna.Trial) -> Callable[[TrialRecord], None]:
    """How a finished record is told to its Optuna trial: the record as a user attribute, then the state."""

    def tell(rec: TrialRecord) -> None:
        trial.set_user_attr(studies.RECORD_ATTR, studies.jsonable(rec.to_dict()))
        if rec.complete:
            study.tell(trial, rec.nll)
        else:
            trial.set_user_attr("reason", rec.reason)
            study.tell(trial, state=State.PRUNED if rec.status is TrialStatus.PRUNED else State.FAIL)

    return tell


def worker_loop(ledger: Ledger, cfg: SweepConfig, prune: bool) -> None:
    """Take enqueued trials until none is left (retrying those of dead workers), train, finish."""
    study, run = ledger.study, ledger.run
    assert study is not None
    info = studies.worker_info(run.path if run is not None else None)
    grid = set(cfg.grid())
    while True:
        trial = studies.take_waiting(study)
        if trial is not None:
            try:  # stamped at once: a worker killed from here on is known by its pid, not after a grace
                trial.set_user_attr(studies.WORKER_ATTR, info)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
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
            trial.suggest_int("dim", 1, max(dim, ledger.data.n_features))
            trial.suggest_int("seed", 0, max(seed, 2**31 - 1))
            with studies.Heartbeat(trial, info):
                if local:  # finished in this folder before, never told to the study: tell it now
                    assert run is not None
                    rec = run.read_trial(dim, seed)
                    assert rec is not None
                    _teller(study, trial)(rec)
                else:
                    callback = _pruning_callback(trial, dim) if prune else None
                    run_trial(ledger, cfg, dim, seed, callback=callback, tell=_teller(study, trial))
            if run is not None:
                run.write_results(list(finished_records(study, run, verify=False).values()))
        except optuna.exceptions.UpdateFinishedTrialError:
            # Another worker finished this trial while we held it: SQLite has no row locks, so two
            # workers can take the same enqueued trial, or ours was judged stale. Results are the same
            # (seeded), our folder is kept, and the study keeps the first record told.
            continue


@dataclass
class SweepWorker:
    """What each worker of a backend runs (``zdim.sweeps.backends``): ``worker_loop`` over the sweep's study.

    Where it runs in this process it goes on with the sweep's own ``ledger`` (its study may live in
    memory only; its progress display shows each trial); a copy sent elsewhere (pickled: the ledger
    stays here) opens its own from the run directory and the storage."""

    data: Data
    cfg: SweepConfig
    run_path: Path | None
    storage: str | None
    study_name: str
    prune: bool
    ledger: Ledger | None = None

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__ | {"ledger": None}

    def __call__(self) -> None:
        ledger = self.ledger
        if ledger is None:
            run = RunDir(self.run_path) if self.run_path is not None else None
            study = open_study(run, self.storage, self.study_name, prune=self.prune, epochs=self.cfg.train.epochs)
            ledger = Ledger(self.data, run, study)
        worker_loop(ledger, self.cfg, self.prune)


@dataclass
class TrialExecutor:
    """Per-size mode (see the module docstring): the plan's backend runs ``plan.workers`` workers over the
    study (``zdim.sweeps.backends.choose``)."""

    ledger: Ledger

    def run(self, plan: SweepPlan) -> Outcome:
        ledger, cfg = self.ledger, plan.config
        study, run, progress = ledger.study, ledger.run, ledger.progress
        assert study is not None
        enqueue_missing(study, cfg, run)
        grid = cfg.grid()
        seen = set(ledger.done(grid))
        progress.set_total(len(grid))
        progress.set_done(len(seen))
        last = [0.0]

        def poll() -> None:  # this process prints what workers elsewhere finished
            if time.monotonic() - last[0] < 2:
                return
            last[0] = time.monotonic()
            for key, rec in sorted(finished_records(study, run, verify=False).items()):
                if key in set(grid) and key not in seen:
                    seen.add(key)
                    progress.finished(rec)

        run_path = run.path if run is not None else None
        worker = SweepWorker(ledger.data, cfg, run_path, plan.storage, plan.study_name, plan.prune, ledger)
        choose(plan.backend, plan.workers, plan.address).run_workers(worker, (), poll)
        outcome = ledger.outcome(cfg)
        progress.set_done(len(outcome.finished))
        return outcome


__all__ = ["TrialExecutor", "run_trial", "open_study", "enqueue_missing", "is_duplicate", "grid_key", "worker_loop"]
