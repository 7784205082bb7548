"""Settle mode: every (size, seed) member of the grid trains together, epoch by epoch, until the answer settles.

The members train in an engine (``zdim.sweeps.executors.engines``): in this process, each a
``zdim.training.trainer.Trainer`` advanced in turn (bit for bit the model it would be if trained alone) or
stacked into one batched model (``--stack``, the default), or in ``--workers N`` processes advanced
together. This module is the one place that decides. After every epoch each training member is scored on one
fixed subset of the validation split (the same samples for every member: paired) — IWAE NLL and active units
— and the recommendation is recomputed from those scores. Training stops when every member has stopped
(early stopping or the epoch cap), or when the recommendation has not changed for ``window`` epochs and the
members it rests on (the chosen size, the next smaller size tried and the largest; after the grid grew,
every member in training) have converged: their subset NLL is so flat that, kept up for as many epochs again
as they have trained, its gain would stay below half the rule's tolerance (a smaller gain cannot move the
answer). Members far above a settled answer whose units have collapsed cannot change it and stop early. Each
member is then evaluated on the test split and saved as an ordinary trial, so ``info``, ``report``, ``tune``
and ``load_model`` work unchanged; the answer per epoch is kept in ``settle.json`` ("when the answer
settled").

Nothing is lost. Every member (weights, optimizer moments, noise streams, history) and the trace are
checkpointed in the run directory every ``plan.checkpoint_every`` seconds (``--checkpoint-every``,
default 300: a ``kill -9`` loses at most that much training) and when SIGINT (Ctrl-C) or SIGTERM
arrives: the round of epochs under way is finished, every member is checkpointed, and ``Interrupted``
says to rerun with ``--resume``, which goes on from that epoch and gives the run it would have given
uninterrupted. A member that raises (an error in the user's model, a divergence) is finished as a
failed trial with its reason; the others go on. The checkpoint is deleted once every member is saved as
a trial. Each member is finished through the sweep's ``Ledger`` (the run directory, its record; progress;
memory): settle mode opens no Optuna study.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from ...answer.decide import Evidence, decide
from ...errors import Interrupted
from ...evaluation.metrics import EVAL_K, evaluate
from ...evidence import Note, NoteKind
from ...models.vae import VAE
from ...records import TrialRecord, TrialStatus, trial_name
from ...training.stopping import StoppingRule
from ..backends import choose
from ..planning.config import SweepConfig
from ..planning.plan import SweepPlan
from ..records.ledger import Finished, Key, Ledger, Outcome
from ..records.runs import RunDir
from .engines import Done, Engine
from .member import Member, _horizon

DEFAULT_WINDOW = 5  # epochs the answer must hold, and over which members must have converged
DEFAULT_EVAL_SAMPLES = 1000  # validation samples scoring every member after every epoch (paired)
# What settle mode measures of every member after every epoch (the record metrics its answer then reads);
# the rest (generation quality among them) is measured once training has ended (``engines.Engine.finish``)
EPOCH_EVIDENCE = frozenset({"nll", "active_units"})


SAME_PRESS = 1.0  # seconds: a SIGINT this soon after the first is the same Ctrl-C, passed on by a wrapper


@contextmanager
def interrupts(same_press: float = SAME_PRESS) -> Iterator[list[int]]:
    """While the block runs, SIGINT (Ctrl-C) and SIGTERM ask settle mode to stop after the round of
    epochs under way (the list gets the signal's number). A SIGINT within ``same_press`` seconds of the
    first signal is the same Ctrl-C (``timeout``, a shell or a job runner passes the terminal's SIGINT
    on to its process group, so zdim gets it twice at once): ignored. A later SIGINT stops at once,
    saving nothing more (``Interrupted`` saying so in one line). Outside the main thread (where handlers
    cannot be set) nothing changes."""
    asked: list[int] = []
    first = [0.0]
    if threading.current_thread() is not threading.main_thread():
        yield asked
        return

    def handler(signum: int, _frame: Any) -> None:
        if asked:
            if signum != signal.SIGINT or time.monotonic() - first[0] < same_press:
                return  # the same request again (a wrapper passed it on), or SIGTERM: already stopping
            raise Interrupted(
                "stopped at once by a second Ctrl-C: the epochs trained since the last checkpoint are not "
                "saved (finished members and the last checkpoint are); rerun with --resume to go on from there",
                signum,
            )
        asked.append(signum)
        first[0] = time.monotonic()
        print(
            "\nzdim: finishing this round of epochs, then saving every member (Ctrl-C again, a second later, "
            "stops at once without saving)",
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
    rule: type[StoppingRule] | None = None  # what "converged" means: the members' stopping rule (None: the plan's)
    _how: str = field(default="", repr=False)  # how the last phase ended, in words
    _how_run: str = field(default="", repr=False)  # where the members trained (workers, stacks), in words
    _followed: str = field(default="", repr=False)  # the rule followed while training, where not the sweep's

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
        rule = self.rule or plan.stopping_rule()  # --stopping, settle mode's ProjectedGain by default
        members = [Member(d, s, horizon=_horizon(d, done), rule=rule) for d, s in grid if (d, s) not in done]
        progress.set_total(len(grid))
        progress.members()
        if not members:
            return ledger.outcome(config, [Note(NoteKind.SETTLE, s) for s in [self.summary()] if s])
        with interrupts() as asked:
            engine = self._engine(plan, subset)
            try:
                engine.add([m.key for m in members])
                epoch = self._restore(engine, members) if run is not None else 0
                self._how_run = engine.describe()
                self._train(plan, engine, members, done, scores, epoch, asked)
                (held_out, ref), keys = ledger.held_out(config), [m.key for m in members if not m.failed]
                n = held_out.test.shape[0]
                progress.evaluating(f"{len(keys)} members", f"IWAE k={config.k} on {n} test samples, generation")
                finished = engine.finish(keys, held_out, config.k, self.window, ref)
            finally:
                engine.close()
            for m in members:
                self._finish(m, finished.get(m.key))
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

    def _engine(self, plan: SweepPlan, subset: torch.Tensor) -> Engine:
        """Where the members train: the plan's backend (``zdim.sweeps.backends.choose``: this process, stacked
        with ``plan.stack``, or ``plan.workers`` processes) gives the engine."""
        backend = choose(plan.backend, plan.workers, plan.address)
        return backend.engine(self.ledger.data, plan.config, subset, self.ledger.run, bool(plan.stack))

    def _train(
        self,
        plan: SweepPlan,
        engine: Engine,
        members: list[Member],
        done: dict[Key, Finished],
        scores: dict[Key, tuple[float, int, Any]],
        epoch: int,
        asked: list[int],
    ) -> None:
        """Rounds of one epoch of every member in training, until every member has stopped."""
        ledger, config = self.ledger, plan.config
        run, progress = ledger.run, ledger.progress
        grid = config.grid()
        progress.training(f"{len(members)} members together", None, start=epoch)
        if epoch:
            progress.note(f"settle: resumed from epoch {epoch} (the last checkpoint)")
        elif ledger.resumed:
            progress.note(f"settle: no checkpoint of these {len(members)} members to go on from: they start at epoch 1")
        saved = started = time.monotonic()
        while any(m.training for m in members):
            epoch += 1
            lower = tuple(m.key for m in members if m.training and not m.lr_drops and m.flat(self.window, self.tol))
            for key, status in engine.step([m.key for m in members if m.training], lower).items():
                m = next(m for m in members if m.key == key)
                m.update(status)
                if m.failed:
                    progress.note(f"settle: {trial_name(*key)} failed at epoch {m.epoch}: {m.failed}")
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
                self._interrupted(run, engine, epoch, members, asked[0])
            if run is not None and time.monotonic() - saved >= plan.checkpoint_every:
                self._checkpoint(run, engine, epoch, members)
                saved = time.monotonic()
        self._how = self._ending(members, epoch) + self._plateaus(members)

    def _line(self, answer: int | None, members: list[Member]) -> str:
        """The epoch bar's words: the current answer and how long it has held of the ``window`` epochs it
        must hold, how many members still train and how many of those have not converged (what the stop
        waits for: ``held 3 of 5 epochs``, ``2 not converged``)."""
        busy = [m for m in members if m.training]
        late = sum(not m.converged(self.window, self.tol) for m in busy)
        training = f"{len(busy)} of {len(members)} members training" + (f", {late} not converged" if late else "")
        if answer is None:
            return training
        held = 0
        for t in reversed(self.trace):
            if t["dim"] != answer:
                break
            held += 1
        hold = f"held {held} of {self.window} epochs" if held < self.window else f"held {held} epochs"
        return f"answer {answer} ({hold}), {training}"

    def _interrupted(self, run: RunDir | None, engine: Engine, epoch: int, members: list[Member], signum: int) -> None:
        """Stop on a signal: checkpoint every member (with a run directory), then ``Interrupted``."""
        if run is None:
            raise Interrupted(
                f"interrupted at epoch {epoch}: nothing was saved (no run directory); pass out= (--out) to "
                "keep a sweep's progress",
                signum,
                epoch,
            )
        self._checkpoint(run, engine, epoch, members)
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
        how = f" ({self._how_run})" if self._how_run else ""
        by = (
            f" (by rule '{self._followed}': the sweep's rule reads what is measured once training has ended)"
            if self._followed
            else ""
        )
        answer = f"{last['dim']} from epoch {since} on{by}; training ended: {self._how}."
        if not self.phases:
            return f"Settle mode: every member trained together{how}; on the validation subset the answer was {answer}"
        return (
            f"Settle mode: every member trained together{how}; the grid grew {len(self.phases)} time(s), its new "
            f"sizes training beside the finished ones, and in the last phase the answer on the validation subset "
            f"was {answer}"
        )

    def _plateaus(self, members: list[Member]) -> str:
        """How far the members were from their plateaus when training ended, in words: the largest
        projected further gain (``Member.gain``) and the sizes at or above half the tolerance."""
        known = [(g, m.dim) for m in members if not m.failed and (g := m.gain(self.window)) is not None]
        if not known:
            return ""
        worst, dim = max(known)
        above = sorted({d for g, d in known if g >= self.tol})
        text = f"; the largest further gain projected for a member was {worst:.3f} nats (size {dim})"
        if above:
            return text + f", at least half the tolerance ({self.tol:.3g}) at sizes {', '.join(map(str, above))}"
        return text + f", under half the tolerance ({self.tol:.3g}) for every member"

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

    def _checkpoint(self, run: RunDir, engine: Engine, epoch: int, members: list[Member]) -> None:
        """Every member as it is after round ``epoch`` (and the trace), so a resumed run goes on from here:
        the engine writes each member's files, then the round is committed."""
        engine.save(epoch, {m.key: m.record() for m in members})
        run.commit_settle_checkpoint({"round": epoch, "trace": self.trace, "tol": self.tol})

    def _restore(self, engine: Engine, members: list[Member]) -> int:
        """Put the members back where the last checkpoint left them; the round to go on from (0: none)."""
        run = self.ledger.run
        assert run is not None
        state = run.read_settle_state()
        if state is None:
            return 0
        round_ = int(state["round"])
        if run.settle_members(round_) != {trial_name(*m.key) for m in members}:
            return 0  # another grid (refined, extended or changed): start these members afresh
        restored = engine.restore(round_, [m.key for m in members])
        for m in members:
            status, saved = restored[m.key]
            m.load(status, saved)
        self.trace, self.tol = list(state["trace"]), float(state["tol"])
        return round_

    # ------------------------------------------------------------------------------------ steps

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
        paired = per_sample if all(v is not None for v in per_sample.values()) else {}
        question = plan.question(self.ledger.data)
        during = question.given(EPOCH_EVIDENCE)  # a rule that reads what is measured at the end: the NLL knee
        self._followed = during.rule if during.rule != question.rule else ""
        rec = decide(Evidence(recs, paired), during)
        assert rec is not None
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
        # A member still improving beyond the rule's whole tolerance is never stopped: its NLL is not yet
        # what its size can reach, and the table would show where its training stopped.
        for m in members:
            collapsed = (m.active or 0) < m.dim and not m.asleep  # not a model that has yet to start
            far = m.dim > 2 * answer and m.dim != dims[-1] and collapsed
            if m.training and far and m.flat(self.window, 2 * self.tol):
                m.stopped = f"stopped at epoch {m.epoch}: units collapsed above the settled answer {answer}"
                m.stop_code = "collapsed"
        if all(m.converged(self.window, self.tol) for m in members if (later or m.dim == dims[-1]) and not m.failed):
            for m in members:
                if m.training and m.flat(self.window, 2 * self.tol):
                    m.stopped = f"stopped at epoch {m.epoch}: the answer ({answer}) settled"
                    m.stop_code = "settled"

    def _finish(self, m: Member, done: Done | None) -> Finished:
        """The member finished as an ordinary trial (its best weights, evaluated on the test split by the
        engine), or as a failed one."""
        ledger = self.ledger
        if m.failed or done is None or done.record is None:
            reason = m.failed or (done.error if done is not None else "") or "no result from its engine"
            failure = TrialRecord(dim=m.dim, seed=m.seed, status=TrialStatus.FAILED, reason=reason)
            return ledger.finish(failure, counted=True)
        rec = done.record
        gain = m.improvement(self.window)
        if m.converged(self.window, self.tol) and gain is not None:
            # settle mode's own test: judged on the paired validation subset against the rule's tolerance
            rec.converged, rec.window_improvement = True, gain
            rec.extra["settle_converged"] = m.rule(self.window, self.tol).reason(m.scores)
        if m.stopped:
            rec.extra["settle"] = m.stopped
            rec.extra["settle_stop"] = m.stop_code
        projected = m.gain(self.window)
        if projected is not None:
            rec.extra["settle_gain"] = projected  # nats it was still projected to gain when it stopped
        return ledger.finish(rec, done.model, done.fitted.history, done.per_sample, counted=True)


__all__ = ["SettleExecutor", "DEFAULT_WINDOW", "DEFAULT_EVAL_SAMPLES", "interrupts"]
