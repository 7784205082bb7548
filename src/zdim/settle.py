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

Nothing is lost. Every member (weights, optimizer moments, noise streams, history) and the trace are
checkpointed in the run directory every ``plan.checkpoint_every`` seconds (``--checkpoint-every``,
default 300: a ``kill -9`` loses at most that much training) and when SIGINT (Ctrl-C) or SIGTERM
arrives: the round of epochs under way is finished, every member is checkpointed, and ``Interrupted``
says to rerun with ``--resume``, which goes on from that epoch and gives the run it would have given
uninterrupted. A member that raises (an error in the user's model, a divergence) is finished as a
failed trial with its reason; the others go on. The checkpoint is deleted once every member is saved as
a trial. Each member is finished through the sweep's ``Ledger`` (run directory, study, progress).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from .config import SweepConfig, build_sweep_model, eval_data
from .errors import Interrupted
from .evidence import Note, NoteKind
from .metrics import evaluate
from .models import VAE
from .plan import SweepPlan
from .records import TrialRecord, TrialStatus, trial_name
from .rules import recommend
from .runs import RunDir
from .train import Trainer
from .trial import Finished, Ledger, Outcome, evaluate_trial, failed

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
    stop_code: str = ""  # the same as a code: "settled", "collapsed" or "time-budget"
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


@contextmanager
def interrupts() -> Iterator[list[int]]:
    """While the block runs, SIGINT (Ctrl-C) and SIGTERM ask settle mode to stop after the round of
    epochs under way (the list gets the signal's number); a second SIGINT stops at once
    (``KeyboardInterrupt``). Outside the main thread (where handlers cannot be set) nothing changes."""
    asked: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield asked
        return

    def handler(signum: int, _frame: Any) -> None:
        if asked and signum == signal.SIGINT:
            raise KeyboardInterrupt
        asked.append(signum)
        print(
            "\nzdim: finishing this round of epochs, then saving every member (Ctrl-C again stops at once)",
            file=sys.stderr,
            flush=True,
        )

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield asked
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


@dataclass
class SettleExecutor:
    """Runs a plan in settle mode (see the module docstring)."""

    ledger: Ledger
    window: int = DEFAULT_WINDOW
    eval_samples: int = DEFAULT_EVAL_SAMPLES
    trace: list[dict[str, Any]] = field(default_factory=list)
    phases: list[dict[str, Any]] = field(default_factory=list)  # earlier runs of this sweep (before the grid grew)
    tol: float = 0.0  # half the rule's NLL tolerance at the last epoch: what "converged" means here
    _how: str = field(default="", repr=False)  # how the last phase ended, in words

    def run(self, plan: SweepPlan) -> Outcome:
        ledger, config = self.ledger, plan.config
        data, run, progress = ledger.data, ledger.run, ledger.progress
        if self.trace:  # the grid grew or was refined: a new phase, its members counted from epoch 1
            self.phases.append({"trace": self.trace, "how": self._how})
            self.trace = []
        done = ledger.done(config.grid() if run is None else None)
        subset = data.val[: self.eval_samples]
        grid = config.grid()
        scores = self._scores(done, subset)  # (nll, active units, per-sample nll) of the members finished before
        members = [self._member(config, d, s) for d, s in grid if (d, s) not in done]
        progress.set_total(len(grid))
        progress.members()
        epoch = self._restore(members, subset) if run is not None else 0
        if members:
            progress.training(f"{len(members)} members together", None, start=epoch)
            if epoch:
                progress.note(f"settle: resumed from epoch {epoch} (the last checkpoint)")
            elif ledger.resumed:
                progress.note(
                    f"settle: no checkpoint of these {len(members)} members to go on from: they start at epoch 1"
                )
        saved = started = time.monotonic()
        with interrupts() as asked:
            while any(m.training for m in members):
                epoch += 1
                for m in members:
                    if m.training:
                        self._epoch(m, subset)
                answer = self._answer(plan, members, scores)
                if answer is not None:
                    self.trace.append({"epoch": epoch, "dim": answer, "training": sum(m.training for m in members)})
                    if len(self.trace) > 1 and self.trace[-2]["dim"] != answer:
                        progress.note(f"settle: epoch {epoch}, the answer is now {answer}")
                    self._stop_settled(config, members, answer)
                if plan.time_budget is not None and time.monotonic() - started >= plan.time_budget:
                    for m in members:
                        if m.training:
                            m.stopped = f"stopped at epoch {epoch}: the time budget ({plan.time_budget:g} s) ran out"
                            m.stop_code = "time-budget"
                    progress.note(f"settle: the time budget ran out at epoch {epoch}")
                progress.set_done(len([k for k in grid if k in done]) + sum(not m.training for m in members))
                progress.advance(self._line(answer, members))
                if asked:
                    self._interrupted(run, epoch, members, asked[0])
                if run is not None and time.monotonic() - saved >= plan.checkpoint_every:
                    self._checkpoint(run, epoch, members)
                    saved = time.monotonic()
            self._how = self._ending(members, epoch)
            for m in members:
                self._finish(m, config)
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
        return ledger.outcome(config, [Note(NoteKind.SETTLE, s) for s in [self.summary()] if s])

    def _line(self, answer: int | None, members: list[Member]) -> str:
        """The epoch bar's words: the current answer, how long it has held, how many still train."""
        training = f"{sum(m.training for m in members)} of {len(members)} training"
        if answer is None:
            return training
        held = 0
        for t in reversed(self.trace):
            if t["dim"] != answer:
                break
            held += 1
        return f"answer {answer} (held {held} epoch{'s' if held != 1 else ''}), {training}"

    def _interrupted(self, run: RunDir | None, epoch: int, members: list[Member], signum: int) -> None:
        """Stop on a signal: checkpoint every member (with a run directory), then ``Interrupted``."""
        if run is None:
            raise Interrupted(
                f"interrupted at epoch {epoch}: nothing was saved (no run directory); pass out= (--out) to "
                "keep a sweep's progress",
                signum,
                epoch,
            )
        self._checkpoint(run, epoch, members)
        raise Interrupted(
            f"interrupted at epoch {epoch}: every member is saved in {run.path}; "
            "rerun with --resume to go on from there",
            signum,
            epoch,
        )

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
        codes = {m.stop_code for m in members}
        if "settled" in codes:
            return f"the answer settled at epoch {epoch}"
        if "time-budget" in codes:
            return f"the time budget ran out at epoch {epoch}"
        return f"every member early-stopped or reached the epoch cap (epoch {epoch}) before the answer settled"

    # ------------------------------------------------------------------------------------ checkpoints

    def _checkpoint(self, run: RunDir, epoch: int, members: list[Member]) -> None:
        """Every member as it is after round ``epoch`` (and the trace), so a resumed run goes on from here."""
        state = {"round": epoch, "trace": self.trace, "tol": self.tol}
        saved = {}
        for m in members:
            tensors, meta = m.trainer.state()
            meta["member"] = {"stopped": m.stopped, "stop_code": m.stop_code, "failed": m.failed, "scores": m.scores}
            meta["member"] |= {"val_nll": m.val_nll, "active": m.active}
            saved[trial_name(m.dim, m.seed)] = (tensors, meta)
        run.save_settle_checkpoint(state, saved)

    def _restore(self, members: list[Member], subset: torch.Tensor) -> int:
        """Put the members back where the last checkpoint left them; the round to go on from (0: none)."""
        run = self.ledger.run
        assert run is not None
        found = run.read_settle_checkpoint()
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
            m.stop_code = str(mm.get("stop_code", ""))
            m.val_nll, m.active = mm["val_nll"], mm["active"]
            if m.val_nll is not None and not m.failed:  # the per-sample scores, as they were (same weights)
                m.per_sample = self._score(m.model, subset)[2]
        self.trace, self.tol = list(state["trace"]), float(state["tol"])
        return int(state["round"])

    # ------------------------------------------------------------------------------------ steps

    def _member(self, config: SweepConfig, dim: int, seed: int) -> Member:
        data = self.ledger.data
        tcfg = replace(config.train, seed=seed)
        torch.manual_seed(seed)  # as zdim.trial.train: the same initial weights
        model = build_sweep_model(data, dim, config)
        return Member(dim, seed, model, Trainer(model, data.train, data.val, tcfg))

    def _epoch(self, m: Member, subset: torch.Tensor) -> None:
        """One epoch and the member's score; a member that raises (divergence, an error in the user's
        model) fails alone, with its reason, and the others go on."""
        try:
            m.trainer.run_epoch()
            m.val_nll, m.active, m.per_sample = self._score(m.model, subset)
        except Exception as e:  # noqa: BLE001 - one failing member never stops the sweep
            m.failed = failed(m.dim, m.seed, e).reason
            self.ledger.progress.note(
                f"settle: {trial_name(m.dim, m.seed)} failed at epoch {m.trainer.epoch}: {m.failed}"
            )
            return
        m.scores.append(m.val_nll)

    def _scores(self, done: dict[tuple[int, int], Finished], subset: torch.Tensor) -> dict[tuple[int, int], Any]:
        """The validation-subset scores of the members finished before (models this process can load)."""
        out = {}
        for key, f in done.items():
            if not f.record.complete:
                continue
            try:
                model = self.ledger.model(*key)
            except Exception:  # noqa: BLE001 - a record of another machine: its model is not here
                continue
            out[key] = self._score(model, subset)
        return out

    @staticmethod
    def _score(model: VAE, subset: torch.Tensor) -> tuple[float, int, Any]:
        ev = evaluate(model, subset, k=EVAL_K, seed=0, per_sample=True)
        return float(ev["nll"]), int(ev["active_units"]), ev["nll_per_sample"].cpu().numpy()

    def _answer(
        self, plan: SweepPlan, members: list[Member], scores: dict[tuple[int, int], tuple[float, int, Any]]
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
            rel_tol=plan.config.rel_tol,
            rule=plan.rule,
            likelihood=self.ledger.data.likelihood,
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
        # After the grid grew, the members in training are the question asked (a size between two tried,
        # one at the intrinsic dimension): each must converge before the answer counts as settled.
        later = bool(self.phases)
        core = [m for m in members if (later or m.dim in (answer, smaller)) and not m.failed]
        if not all(m.converged(self.window, self.tol) for m in core):
            return
        for m in members:
            collapsed = (m.active or 0) < m.dim and not m.trainer.asleep  # not a model that has yet to start
            if m.training and m.dim > 2 * answer and m.dim != dims[-1] and collapsed:
                m.stopped = f"stopped at epoch {m.trainer.epoch}: units collapsed above the settled answer {answer}"
                m.stop_code = "collapsed"
        if all(m.converged(self.window, self.tol) for m in members if (later or m.dim == dims[-1]) and not m.failed):
            for m in members:
                if m.training:
                    m.stopped = f"stopped at epoch {m.trainer.epoch}: the answer ({answer}) settled"
                    m.stop_code = "settled"

    def _finish(self, m: Member, config: SweepConfig) -> Finished:
        """Best weights back, test evaluation, finished as an ordinary trial (or a failed one)."""
        ledger = self.ledger
        if m.failed:
            failure = TrialRecord(dim=m.dim, seed=m.seed, status=TrialStatus.FAILED, reason=m.failed)
            return ledger.finish(failure, counted=True)
        fitted = m.trainer.finish()
        held_out = eval_data(ledger.data, config)
        n = held_out.test.shape[0]
        ledger.progress.evaluating(trial_name(m.dim, m.seed), f"IWAE k={config.k} on {n} test samples, generation")
        try:  # converged over the same window settle mode judged it by
            rec, per_sample = evaluate_trial(m.model, held_out, fitted, m.dim, m.seed, config.k, patience=self.window)
        except Exception as e:  # noqa: BLE001 - a model that fails its evaluation fails alone
            return ledger.finish(failed(m.dim, m.seed, e), counted=True)
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
            rec.extra["settle_stop"] = m.stop_code
        return ledger.finish(rec, m.model, fitted.history, per_sample, counted=True)


__all__ = ["SettleExecutor", "DEFAULT_WINDOW", "DEFAULT_EVAL_SAMPLES", "interrupts"]
