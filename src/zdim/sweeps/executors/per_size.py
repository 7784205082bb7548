"""Per-size mode: each (latent size, seed) point is one trial, trained to its own end (``run_trial``).

In one process on this machine, without ``--storage`` or ``--prune``, the points are trained in turn and
the run directory is the only record (``Ledger``): nothing else is opened. Where several take the points
(``--workers`` > 1, a backend that runs elsewhere, machines sharing a ``--storage``) or seeds are pruned
against each other (``--prune``), an Optuna study is the engine (``uses_study``): every point is enqueued
as a fixed-parameter trial, workers take only enqueued trials (``studies.take_waiting``: Optuna's
storage-level WAITING -> RUNNING, so several processes each take trials nobody has taken), train,
finish through the ``Ledger`` (run directory first, then the study) and take the next. The study is
filled from the run directory (``fill``: points finished without it) and checked against it: the run
directory is the record of what finished, and a trial whose folder holds a complete, loadable result is
never retrained. Records that other run directories (other machines) left in a shared study count too.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna

from ...data.dataset import Data
from ...evaluation.trial import evaluate_trial
from ...records import TrialRecord, TrialStatus, trial_name
from ...training.stopping import RelativeGain, StoppingRule
from ...training.trial import train, training_record
from ..backends import LOCAL, choose
from ..planning.config import SweepConfig, model_config
from ..planning.plan import SweepPlan
from ..records import studies
from ..records.ledger import Finished, Key, Ledger, Outcome, failed
from ..records.runs import RunDir

State = optuna.trial.TrialState
FINAL = (State.COMPLETE, State.PRUNED, State.FAIL)


def uses_study(plan: SweepPlan) -> bool:
    """Whether per-size mode needs an Optuna study as its engine: several take the points (``workers``
    > 1, a backend other than this machine's, machines sharing ``storage``) or the pruner compares seeds
    (``prune``). Otherwise the points are trained in turn, and the run directory alone records them."""
    return plan.workers > 1 or plan.backend != LOCAL or plan.storage is not None or plan.prune


def open_study(
    run: RunDir | None, storage: str | None, study_name: str, prune: bool = False, epochs: int = 3
) -> optuna.Study:
    """The sweep's study: ``storage`` URL, else the run directory's journal (memory without either).

    With ``prune``, seeds are compared from a third of ``epochs`` on (earlier epochs are too noisy).
    """
    pruner = studies.SameSizeMedianPruner(n_warmup_steps=max(1, epochs // 3)) if prune else None
    journal = run.study_file if run is not None else None
    return studies.open_study(journal, storage, study_name, pruner=pruner)


def grid_key(t: optuna.trial.FrozenTrial) -> Key | None:
    """The ``(dim, seed)`` point of a study trial, or None for a trial that is not a grid point."""
    fp = studies.fixed_params(t)
    if "dim" not in fp or "seed" not in fp:
        return None
    return int(fp["dim"]), int(fp["seed"])


def finished_records(
    study: optuna.Study, run: RunDir | None, local: bool = True, verify: bool = True
) -> dict[Key, TrialRecord]:
    """Finished grid points on record: those other run directories put in the study (another machine
    sharing it), then this run directory's trial folders (unless not ``local``). Records this run
    directory wrote to the study count only while its folder is intact, so a corrupt folder is redone
    rather than silently reused: the study is checked against the run directory, never the other way."""
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


def fill(study: optuna.Study, run: RunDir | None) -> int:
    """Add to the study, as finished trials, the points of the run directory it holds no trial of (trained
    without it: in settle, nested or one-process per-size mode, or before a worker took them), so that
    every worker and every machine sharing it sees them; return how many. A point the study already
    records, waits on or runs is left to it (a dead worker's trial is recovered from its folder when it
    is found stale: ``recover_saved``)."""
    if run is None:
        return 0
    known = {
        key
        for t in study.get_trials(deepcopy=False)
        if (key := grid_key(t)) is not None
        and (studies.RECORD_ATTR in t.user_attrs or t.state in (State.WAITING, State.RUNNING))
    }
    added = 0
    for rec in run.records():
        if rec.key not in known:
            value = rec.nll if rec.complete else None
            studies.add_finished(study, {"dim": rec.dim, "seed": rec.seed}, rec.to_dict(), value, run.path)
            added += 1
    return added


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
    rule: type[StoppingRule] = RelativeGain,
) -> Finished:
    """Train and evaluate the (``dim``, ``seed``) point of a per-size sweep and finish it (``Ledger``).

    A diverged or failing trial is finished as FAILED with its reason; one stopped by ``callback``
    raising ``optuna.TrialPruned`` as PRUNED. The sweep goes on either way. ``rule`` says whether it
    converged (the plan's ``--stopping``).
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
        trained = training_record(fitted, tcfg.patience, rule)
        rec, per_sample = evaluate_trial(model, held_out, dim, seed, cfg.k, trained=trained, ref=ref)
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


def worker_loop(
    ledger: Ledger, study: optuna.Study, cfg: SweepConfig, prune: bool, rule: type[StoppingRule] = RelativeGain
) -> None:
    """Take enqueued trials of ``study`` until none is left (retrying those of dead workers), train, finish
    (``rule``: when a trial has converged)."""
    run = ledger.run
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
                    run_trial(ledger, cfg, dim, seed, callback=callback, tell=_teller(study, trial), rule=rule)
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

    Where it runs in this process it goes on with the sweep's own ``ledger`` and ``study`` (which may live
    in memory only; its progress display shows each trial); a copy sent elsewhere (pickled: both stay
    here) opens its own from the run directory and the storage."""

    data: Data
    cfg: SweepConfig
    run_path: Path | None
    storage: str | None
    study_name: str
    prune: bool
    ledger: Ledger | None = None
    study: optuna.Study | None = None
    rule: type[StoppingRule] = RelativeGain  # when a trial has converged: the plan's (SweepPlan.stopping_rule)

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__ | {"ledger": None, "study": None}

    def __call__(self) -> None:
        ledger, study = self.ledger, self.study
        run = RunDir(self.run_path) if self.run_path is not None else None
        if study is None:
            study = open_study(run, self.storage, self.study_name, prune=self.prune, epochs=self.cfg.train.epochs)
        worker_loop(ledger or Ledger(self.data, run), study, self.cfg, self.prune, self.rule)


@dataclass
class TrialExecutor:
    """Per-size mode (see the module docstring): the points in turn in this process, or, where a study is
    the engine (``uses_study``), the plan's backend runs ``plan.workers`` workers over it
    (``zdim.sweeps.backends.choose``)."""

    ledger: Ledger
    study: optuna.Study | None = None  # opened at the first run that needs it, kept across growths of the grid

    def run(self, plan: SweepPlan) -> Outcome:
        ledger, cfg, progress = self.ledger, plan.config, self.ledger.progress
        grid = cfg.grid()
        progress.set_total(len(grid))
        if not uses_study(plan):
            return self._in_turn(cfg, plan.stopping_rule())
        study = self._open(plan)
        run = ledger.run
        enqueue_missing(study, cfg, run)
        seen = set(ledger.done(grid))
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
        worker = SweepWorker(
            ledger.data, cfg, run_path, plan.storage, plan.study_name, plan.prune, ledger, study, plan.stopping_rule()
        )
        pending = study.get_trials(deepcopy=False, states=(State.WAITING, State.RUNNING))
        if any(grid_key(t) in set(grid) for t in pending):  # else every point is on record: no worker to start
            choose(plan.backend, plan.workers, plan.address).run_workers(worker, (), poll)
        outcome = ledger.outcome(cfg)
        progress.set_done(len(outcome.finished))
        return outcome

    def _in_turn(self, cfg: SweepConfig, rule: type[StoppingRule]) -> Outcome:
        """Every unfinished point of the grid, one after the other in this process; ``results.csv`` kept
        up to date after each (``rule``: when a trial has converged)."""
        ledger = self.ledger
        done = ledger.done(cfg.grid())
        ledger.progress.set_done(len(done))
        for dim, seed in cfg.grid():
            if (dim, seed) in done:
                continue
            run_trial(ledger, cfg, dim, seed, rule=rule)
            if ledger.run is not None:
                ledger.run.write_results(ledger.outcome(cfg).records)
        return ledger.outcome(cfg)

    def _open(self, plan: SweepPlan) -> optuna.Study:
        """The engine's study (``--storage``, else the run directory's journal; in memory without either),
        filled from the run directory (``fill``); the ledger then also reads what other run directories
        sharing it finished."""
        if self.study is None:
            ledger, epochs = self.ledger, plan.config.train.epochs
            study = open_study(ledger.run, plan.storage, plan.study_name, prune=plan.prune, epochs=epochs)
            fill(study, ledger.run)
            ledger.shared = lambda: finished_records(study, ledger.run, local=False)
            self.study = study
        return self.study


__all__ = [
    "TrialExecutor",
    "run_trial",
    "open_study",
    "uses_study",
    "fill",
    "enqueue_missing",
    "is_duplicate",
    "grid_key",
    "finished_records",
    "worker_loop",
    "FINAL",
]
