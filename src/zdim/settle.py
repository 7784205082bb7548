"""Settle mode: every (size, seed) member of the grid trains together, epoch by epoch, until the answer settles.

Round robin on one process: each member keeps its own optimizer, shuffling and noise stream
(``zdim.train.Trainer``), so a member is bit for bit the model it would be if trained alone. After every
epoch each training member is scored on one fixed subset of the validation split (the same samples for
every member: paired) — IWAE NLL and active units — and the recommendation is recomputed from those
scores. Training stops when every member has stopped (early stopping or the epoch cap), or when the
recommendation has not changed for ``window`` epochs and the members it rests on (the chosen size, the
next smaller size tried and the largest) have converged: their subset NLL is so flat that, kept up for
as many epochs again as they have trained, its gain would stay below half the rule's tolerance (a smaller
gain cannot move the answer). Members far above a settled answer whose units
have collapsed cannot change it and stop early. Each member is then evaluated on the test split and saved
as an ordinary trial, so ``info``, ``report``, ``tune`` and ``load_model`` work unchanged; the answer per
epoch is kept in ``settle.json`` ("when the answer settled").

While it runs, every member (weights, optimizer moments, noise streams, history) and the trace are
checkpointed in the run directory at most every 5 minutes (``settle/``); ``--resume`` goes on from the
last checkpoint and gives the run it would have given uninterrupted. The checkpoint is deleted once
every member is saved as a trial.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from . import studies
from .data import Data
from .errors import TrainingDiverged
from .metrics import evaluate
from .models import VAE
from .plan import SweepConfig, SweepPlan, build_sweep_model, eval_data
from .progress import Progress
from .recommend import recommend
from .records import TrialRecord, TrialStatus, sort_records, trial_name
from .runs import RunDir
from .train import Trainer
from .trial import evaluate_record, saved_extra

CHECKPOINT_SECONDS = 300.0  # a run directory gets a checkpoint of every member at most this often
DEFAULT_WINDOW = 5  # epochs the answer must hold, and over which members must have converged
DEFAULT_EVAL_SAMPLES = 1000  # validation samples scoring every member after every epoch (paired)
EVAL_K = 10  # importance samples of the per-epoch validation NLL


@dataclass
class Member:
    """One (size, seed) of the grid in training."""

    dim: int
    seed: int
    model: VAE
    trainer: Trainer
    stopped: str = ""  # why it stopped early ("" while it trains or when it ran to its own end)
    val_nll: float | None = None
    active: int | None = None
    failed: str = ""
    scores: list[float] = field(default_factory=list)  # validation-subset NLL after each epoch
    per_sample: Any = None  # the latest (N,) per-sample NLL on the validation subset (paired across members)

    @property
    def training(self) -> bool:
        return not (self.trainer.done or self.stopped or self.failed)

    def improvement(self, window: int) -> float | None:
        """How much the best subset NLL fell over the last ``window`` epochs (None before ``window + 1``)."""
        if len(self.scores) <= window:
            return None
        return min(self.scores[:-window]) - min(self.scores)

    def converged(self, window: int, tol: float) -> bool:
        """Early-stopped, or its subset NLL is flat enough that going on cannot move the answer: its gain
        over the last ``window`` epochs, kept up for as many epochs again as it has trained, stays below
        ``tol`` (``gain * epochs / window < tol``). A member that has not yet used its latent code
        (``Trainer.asleep``) is flat because it has not started: never converged."""
        if self.trainer.done and self.trainer.result.stopped_early:
            return True
        if self.trainer.asleep:  # flat because it has not started to use its latents (zdim.train)
            return False
        gain = self.improvement(window)
        return gain is not None and gain * len(self.scores) / window < tol


@dataclass
class SettleExecutor:
    """Runs a plan in settle mode (see the module docstring)."""

    data: Data
    run_dir: RunDir | None
    plan: SweepPlan
    window: int = DEFAULT_WINDOW
    eval_samples: int = DEFAULT_EVAL_SAMPLES
    name: str = "settle"
    trace: list[dict[str, Any]] = field(default_factory=list)
    phases: list[dict[str, Any]] = field(default_factory=list)  # earlier runs of this sweep (before the grid grew)
    tol: float = 0.0  # half the rule's NLL tolerance at the last epoch: what "converged" means here
    time_budget: float | None = None  # seconds of training before every member stops
    study: Any = None  # the sweep's Optuna study: each finished member is added to it as a finished trial
    _how: str = field(default="", repr=False)  # how the last phase ended, in words
    _progress: Progress = field(default_factory=lambda: Progress(False), repr=False)

    def run(self, config: SweepConfig, progress: Progress) -> list[TrialRecord]:
        data, run = self.data, self.run_dir
        if self.trace:  # the grid grew or was refined: a new phase, its members counted from epoch 1
            self.phases.append({"trace": self.trace, "how": self._how})
            self.trace = []
        done = {r.key: r for r in run.records()} if run is not None else {}
        subset = data.val[: self.eval_samples]
        grid = config.grid()
        progress.set_total(len(grid))
        progress.set_done(len([k for k in grid if k in done]))
        scores = (
            {k: self._score(run.load_trial_model(*k), subset) for k, r in done.items() if r.complete} if run else {}
        )  # (nll, active units, per-sample nll) of the members finished before
        members = [self._member(config, d, s) for d, s in grid if (d, s) not in done]
        epoch = self._restore(members, subset) if run is not None else 0
        saved = started = time.monotonic()
        if members:
            progress.training(f"{len(members)} members together", config.train.epochs)
        while any(m.training for m in members):
            epoch += 1
            for m in members:
                if m.training:
                    self._epoch(m, progress, subset)
            answer = self._answer(config, members, done, scores)
            progress.advance(f"answer {answer}, {sum(m.training for m in members)} of {len(members)} training")
            if answer is not None:
                self.trace.append({"epoch": epoch, "dim": answer, "training": sum(m.training for m in members)})
                if len(self.trace) > 1 and self.trace[-2]["dim"] != answer:
                    progress.note(f"settle: epoch {epoch}, the answer is now {answer}")
                self._stop_settled(config, members, answer)
            if self.time_budget is not None and time.monotonic() - started >= self.time_budget:
                for m in members:
                    if m.training:
                        m.stopped = f"stopped at epoch {epoch}: the time budget ({self.time_budget:g} s) ran out"
                progress.note(f"settle: the time budget ran out at epoch {epoch}")
            if run is not None and time.monotonic() - saved >= CHECKPOINT_SECONDS:
                self._checkpoint(run, epoch, members)
                saved = time.monotonic()
        self._how = self._ending(members, epoch)
        records = list(done.values())
        self._progress = progress
        for m in members:
            rec = self._finish(m, config)
            records.append(rec)
            progress.finished(rec)
        if run is not None:
            run.write_settle(
                {
                    "window": self.window,
                    "eval_samples": int(subset.shape[0]),
                    "trace": self.trace,
                    "how": self._how,
                    "phases": self.phases,
                }
            )
            run.clear_settle_checkpoint()
        return sort_records(records)

    def summary(self) -> str | None:
        """One sentence for the rationale: since when the answer held on the validation subset, and how
        training ended (None before a run)."""
        if not self.trace:
            return None
        last = self.trace[-1]
        since = last["epoch"]
        for t in reversed(self.trace):
            if t["dim"] != last["dim"]:
                break
            since = t["epoch"]
        return (
            f"Settle mode: every member trained together; on the validation subset the answer was "
            f"{last['dim']} from epoch {since} on; training ended: {self._how}."
        )

    @staticmethod
    def _ending(members: list[Member], epoch: int) -> str:
        """How the training of the members ended, in words."""
        reasons = [m.stopped for m in members if m.stopped]
        if any("settled" in r for r in reasons):
            return f"the answer settled at epoch {epoch}"
        if any("time budget" in r for r in reasons):
            return f"the time budget ran out at epoch {epoch}"
        return f"every member early-stopped or reached the epoch cap (epoch {epoch}) before the answer settled"

    # ------------------------------------------------------------------------------------ checkpoints

    def _checkpoint(self, run: RunDir, epoch: int, members: list[Member]) -> None:
        """Every member as it is after round ``epoch`` (and the trace), so a resumed run goes on from here."""
        state = {"round": epoch, "trace": self.trace, "tol": self.tol}
        saved = {}
        for m in members:
            tensors, meta = m.trainer.state()
            meta["member"] = {"stopped": m.stopped, "failed": m.failed, "scores": m.scores}
            meta["member"] |= {"val_nll": m.val_nll, "active": m.active}
            saved[trial_name(m.dim, m.seed)] = (tensors, meta)
        run.save_settle_checkpoint(state, saved)

    def _restore(self, members: list[Member], subset: torch.Tensor) -> int:
        """Put the members back where the last checkpoint left them; the round to go on from (0: none)."""
        assert self.run_dir is not None
        found = self.run_dir.read_settle_checkpoint()
        if found is None:
            return 0
        state, saved = found
        if set(saved) != {trial_name(m.dim, m.seed) for m in members}:
            return 0  # another grid (refined, extended or changed): start these members afresh
        for m in members:
            tensors, meta = saved[trial_name(m.dim, m.seed)]
            m.trainer.load_state(tensors, meta)
            mm = meta["member"]
            m.stopped, m.failed, m.scores = str(mm["stopped"]), str(mm["failed"]), [float(v) for v in mm["scores"]]
            m.val_nll, m.active = mm["val_nll"], mm["active"]
            if m.val_nll is not None and not m.failed:  # the per-sample scores, as they were (same weights)
                m.per_sample = self._score(m.model, subset)[2]
        self.trace, self.tol = list(state["trace"]), float(state["tol"])
        return int(state["round"])

    # ------------------------------------------------------------------------------------ steps

    def _member(self, config: SweepConfig, dim: int, seed: int) -> Member:
        tcfg = replace(config.train, seed=seed)
        torch.manual_seed(seed)  # as zdim.trial.train: the same initial weights
        model = build_sweep_model(self.data, dim, config)
        return Member(dim, seed, model, Trainer(model, self.data.train, self.data.val, tcfg))

    def _epoch(self, m: Member, progress: Progress, subset: torch.Tensor) -> None:
        try:
            m.trainer.run_epoch()
        except TrainingDiverged as e:
            m.failed = str(e)
            return
        m.val_nll, m.active, m.per_sample = self._score(m.model, subset)
        m.scores.append(m.val_nll)

    @staticmethod
    def _score(model: VAE, subset: torch.Tensor) -> tuple[float, int, Any]:
        ev = evaluate(model, subset, k=EVAL_K, seed=0, per_sample=True)
        return float(ev["nll"]), int(ev["active_units"]), ev["nll_per_sample"].cpu().numpy()

    def _answer(
        self,
        config: SweepConfig,
        members: list[Member],
        done: dict[tuple[int, int], TrialRecord],
        scores: dict[tuple[int, int], tuple[float, int, Any]],
    ) -> int | None:
        """The recommendation from the current validation scores (members and saved trials), by the
        sweep's rule with its paired standard errors (the same validation samples for every member)."""
        recs = [
            TrialRecord(dim=d, seed=s, status=TrialStatus.COMPLETE, nll=nll, active_units=au)
            for (d, s), (nll, au, _) in scores.items()
        ]
        per_sample = {k: v for k, (_, _, v) in scores.items()}
        for m in members:
            if m.val_nll is not None and not m.failed:
                recs.append(
                    TrialRecord(
                        dim=m.dim, seed=m.seed, status=TrialStatus.COMPLETE, nll=m.val_nll, active_units=m.active
                    )
                )
                per_sample[(m.dim, m.seed)] = m.per_sample
        if not recs:
            return None
        rec = recommend(
            recs,
            rel_tol=config.rel_tol,
            rule=self.plan.rule,
            likelihood=self.data.likelihood,
            per_sample=per_sample if all(v is not None for v in per_sample.values()) else None,
        )
        self.tol = 0.5 * rec.tolerance
        return rec.dim

    def _stop_settled(self, config: SweepConfig, members: list[Member], answer: int) -> None:
        """Once the answer held for ``window`` epochs and the members of that size and of the next smaller
        size have converged, stop the members far above it whose units collapsed (they cannot change it);
        when the largest has converged too, stop every member."""
        recent = self.trace[-self.window :]
        if len(recent) < self.window or any(t["dim"] != answer for t in recent):
            return
        dims = sorted(config.dims)
        smaller = max((d for d in dims if d < answer), default=None)
        core = [m for m in members if m.dim in (answer, smaller) and not m.failed]
        if not all(m.converged(self.window, self.tol) for m in core):
            return
        for m in members:
            collapsed = (m.active or 0) < m.dim and not m.trainer.asleep  # not a model that has yet to start
            if m.training and m.dim > 2 * answer and m.dim != dims[-1] and collapsed:
                m.stopped = f"stopped at epoch {m.trainer.epoch}: units collapsed above the settled answer {answer}"
        if all(m.converged(self.window, self.tol) for m in members if m.dim == dims[-1] and not m.failed):
            for m in members:
                if m.training:
                    m.stopped = f"stopped at epoch {m.trainer.epoch}: the answer ({answer}) settled"

    def _finish(self, m: Member, config: SweepConfig) -> TrialRecord:
        """Best weights back, test evaluation, saved as an ordinary trial."""
        run = self.run_dir
        if m.failed:
            rec = TrialRecord(dim=m.dim, seed=m.seed, status=TrialStatus.FAILED, reason=m.failed)
            if run is not None:
                run.save_trial(rec)
            self._tell(rec)
            return rec
        fitted = m.trainer.finish()
        held_out = eval_data(self.data, config)
        n = held_out.test.shape[0]
        self._progress.evaluating(trial_name(m.dim, m.seed), f"IWAE k={config.k} on {n} test samples, generation")
        # converged over the same window settle mode judged it by
        rec, per_sample = evaluate_record(m.model, held_out, fitted, m.dim, m.seed, config.k, patience=self.window)
        gain = m.improvement(self.window)
        if m.converged(self.window, self.tol) and gain is not None:
            # settle mode's own test: judged on the paired validation subset against the rule's tolerance
            rec.converged, rec.window_improvement = True, gain
            rec.extra["settle_converged"] = (
                f"validation NLL fell {gain:.3g} nats over the last {self.window} epochs: kept up for "
                f"{len(m.scores)} epochs more, less than half the rule's tolerance ({self.tol:.3g})"
            )
        if m.stopped:
            rec.extra["settle"] = m.stopped
        if run is not None:
            run.save_trial(rec, m.model, fitted.history, extra=saved_extra(self.data), per_sample=per_sample)
        self._tell(rec)
        return rec

    def _tell(self, rec: TrialRecord) -> None:
        """The member, finished, as a trial of the sweep's study (after its folder is saved)."""
        if self.study is not None:
            value = rec.nll if rec.complete else None
            path = self.run_dir.path if self.run_dir is not None else None
            studies.add_finished(self.study, {"dim": rec.dim, "seed": rec.seed}, rec.to_dict(), value, path)


__all__ = ["SettleExecutor", "DEFAULT_WINDOW", "DEFAULT_EVAL_SAMPLES"]
