"""What a person sees while a sweep or a tuning runs, on stderr.

One overall bar that advances per finished trial (with tqdm's ETA), an epoch bar per training, the
evaluation phase named on the overall bar while it runs, and one printed line per finished trial
(size, seed, NLL, active units, time), so a long evaluation never looks like a frozen screen.
A sweep in phases (the grid given, then each growth: an edge, a bisection step, the sizes at the
intrinsic dimension) and folds says where it is: one line as each phase and fold starts, and the phase
and fold on the epoch bar, with the time left estimated once a phase (or a fold) has run (``Timeline``).
A disabled ``Progress`` does nothing. When stderr is not a terminal (a log file, a pipe) there are no
bars, which would write cursor codes into it: plain lines instead (``PlainBar``), an epoch line at most
every ``PLAIN_EVERY`` seconds and the last one, and the overall count when the bar closes.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

from .records import TrialRecord


def trial_line(r: TrialRecord) -> str:
    """One line for a finished trial: ``dim 16 seed 0: NLL 98.27, 12 active units, 75.3 s``."""
    head = f"dim {r.dim} seed {r.seed}:"
    if not r.complete:
        return f"{head} {r.status.value} ({r.reason})"
    secs = (r.train_seconds or 0.0) + (r.eval_seconds or 0.0)
    conv = "" if r.converged is None else ("" if r.converged else ", not converged")
    return f"{head} NLL {r.nll:.2f}, {r.active_units} active unit(s), {r.epochs_run} epochs, {secs:.1f} s{conv}"


PLAIN_EVERY = 10.0  # seconds between two plain epoch lines of one training


def duration(seconds: float) -> str:
    """A time span in words a person reads at a glance: ``40 s``, ``4 min``, ``1 h 10 min``."""
    if seconds < 59.5:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


@dataclass
class Timeline:
    """The phases and folds of a sweep and the time left, estimated from the ones that ran: each phase
    (or each fold of it) is a unit of work of its new members; the seconds per member of the finished units
    times the members still to train (the rest of this unit, this phase's other folds, and the phases known
    to follow: ``ahead`` bisection steps of as many members). None before a unit has finished."""

    folds: int = 1
    phase: int = 0
    what: str = ""  # what the phase trains, in words
    members: int = 0  # the members the phase trains (in each fold)
    ahead: int = 0  # phases known to follow it (bisection steps, at most), of as many members each
    fold: int = 0  # the fold under way (1-based; 0: none yet)
    spent: float = 0.0  # seconds of the finished units
    work: float = 0.0  # members of the finished units
    started: float | None = None  # when the unit under way started (monotonic)

    def start_phase(self, what: str, members: int, now: float, ahead: int = 0) -> None:
        self._end(now)
        self.phase, self.what, self.members, self.ahead, self.fold = self.phase + 1, what, members, ahead, 0
        if self.folds <= 1:
            self.started = now

    def start_fold(self, fold: int, now: float) -> None:
        self._end(now)
        self.fold, self.started = fold, now

    def _end(self, now: float) -> None:
        if self.started is not None and self.members > 0:
            self.spent += now - self.started
            self.work += self.members
        self.started = None

    def where(self) -> str:
        """``phase 2, fold 3 of 5`` (``phase 1`` without folds; empty before the first phase)."""
        if not self.phase:
            return ""
        return f"phase {self.phase}" + (f", fold {self.fold} of {self.folds}" if self.folds > 1 and self.fold else "")

    def left(self, now: float) -> float | None:
        """Seconds left (see the class docstring), or None before a unit has finished and once the last
        unit has run past its estimate."""
        if self.work <= 0 or self.members <= 0:
            return None
        unit = self.spent / self.work * self.members
        current = max(0.0, unit - (now - self.started)) if self.started is not None else 0.0
        folds_after = max(0, self.folds - max(self.fold, 1)) if self.folds > 1 else 0
        rest = folds_after * unit + self.ahead * max(1, self.folds) * unit
        if current == 0.0 and rest == 0.0:
            return None  # the last unit has run past its estimate: nothing honest to say
        return current + rest

    def left_words(self, now: float) -> str:
        """``about 4 min left in this phase`` (more phases may follow it, unknown yet), ``about 7 min left
        (this phase and up to 2 more bisection steps)``; empty before a unit has finished."""
        left = self.left(now)
        if left is None:
            return ""
        if self.ahead:
            steps = f"{self.ahead} more bisection step{'s' if self.ahead != 1 else ''}"
            return f"about {duration(left)} left (this phase and up to {steps})"
        return f"about {duration(left)} left in this phase"


class PlainBar:
    """The part of a ``tqdm`` bar ``Progress`` uses, as plain lines on stderr (no cursor codes): the
    overall bar says its count when it closes; an epoch bar prints its first epoch, then at most one line
    every ``PLAIN_EVERY`` seconds, and its last epoch when it closes."""

    def __init__(self, total: int | None = 0, initial: int = 0, desc: str = "", unit: str = "", **_: Any):
        self.total, self.n, self.desc, self.unit = total, initial, desc, unit
        self.bar_format: str | None = None
        self._postfix = ""
        self._printed = -1.0  # when the last line was printed (monotonic), -1: never
        self._shown = True

    def refresh(self) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        self._postfix = text

    def set_postfix(self, **values: Any) -> None:
        self._postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def update(self, n: int = 1) -> None:
        self.n += n
        self._shown = False
        if self._printed < 0 or time.monotonic() - self._printed >= PLAIN_EVERY:
            self._line()

    def _line(self) -> None:
        of = f"/{self.total}" if self.total is not None else ""
        post = f", {self._postfix}" if self._postfix else ""
        print(f"{self.desc}: epoch {self.n}{of}{post}", file=sys.stderr, flush=True)
        self._printed, self._shown = time.monotonic(), True

    @staticmethod
    def write(text: str, file: Any = None) -> None:
        print(text, file=file or sys.stderr, flush=True)

    def close(self, overall: bool = False) -> None:
        if overall:
            what = "members finished or stopped" if self.unit == "member" else f"{self.unit}s"
            print(f"{self.desc}: {self.n}/{self.total} {what}", file=sys.stderr, flush=True)
        elif not self._shown:
            self._line()


class Progress:
    """Progress bars and trial lines on stderr (nothing when ``enabled`` is False)."""

    def __init__(
        self,
        enabled: bool,
        total: int = 0,
        done: int = 0,
        desc: str = "zdim sweep",
        unit: str = "trial",
        folds: int = 1,
    ):
        self.enabled = enabled
        self._bar: Any = None
        self._epochs: Any = None
        self.timeline = Timeline(folds=max(1, folds))
        self.clock = time.monotonic  # what the time left is measured with (a test sets its own)
        self._plain = enabled and not _is_terminal(sys.stderr)
        if self._plain:
            self._tqdm: Any = PlainBar
            self._bar = PlainBar(total=total, initial=done, desc=desc, unit=unit)
        elif enabled:
            from tqdm.auto import tqdm

            self._tqdm = tqdm
            self._bar = tqdm(total=total, initial=done, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)

    def set_done(self, n: int) -> None:
        if self._bar is not None and n != self._bar.n:
            self._bar.n = n
            self._bar.refresh()

    def set_total(self, total: int) -> None:
        if self._bar is not None and total != self._bar.total:
            self._bar.total = total
            self._bar.refresh()

    def members(self) -> None:
        """The overall bar counts members that have finished or stopped (settle mode), with no ETA: they
        stop together when the answer settles, so a rate per member says nothing of the time left."""
        if self._bar is not None:
            self._bar.unit = "member"
            self._bar.bar_format = "{desc}: {n_fmt}/{total_fmt} members finished or stopped [{elapsed}{postfix}]"
            self._bar.refresh()

    def training(self, name: str, epochs: int | None, start: int = 0) -> None:
        """A training starts (its own bar, below the overall one): of up to ``epochs`` epochs with an ETA,
        or, with ``epochs`` None, an open count with no ETA (settle mode stops long before its cap);
        ``start`` is the epoch it goes on from (a resumed run)."""
        if not self.enabled:
            return
        self._close_epochs()
        self._bar.set_postfix_str(f"training {name}")
        self._epochs = self._tqdm(
            total=epochs,
            initial=start,
            desc=f"  {name}",
            unit="ep",
            leave=False,
            file=sys.stderr,
            dynamic_ncols=True,
            bar_format=None if epochs is not None else "{desc}: epoch {n_fmt} [{elapsed}, {rate_fmt}{postfix}]",
        )

    def epoch(self, record: dict[str, Any]) -> None:
        if self._epochs is not None:
            self._epochs.update(1)
            self._epochs.set_postfix(val=f"{record['val_neg_elbo']:.2f}")

    def advance(self, postfix: str) -> None:
        """One more epoch of the running training bar, with ``postfix`` (settle mode: one round), after the
        phase and fold under way and before the time left (``Timeline``)."""
        if self._epochs is not None:
            where, left = self.timeline.where(), self.timeline.left_words(self.clock())
            self._epochs.set_postfix_str((f"{where}: " if where else "") + postfix + (f"; {left}" if left else ""))
            self._epochs.update(1)

    def phase(self, what: str, members: int, ahead: int = 0) -> None:
        """A phase of the sweep starts: the grid given, or a growth of it (``what``, in words) training
        ``members`` new members (in each fold), ``ahead`` more bisection steps at most to follow. Says so
        in a line, with the time left once a phase has run."""
        self.timeline.start_phase(what, members, self.clock(), ahead)
        if self.timeline.folds <= 1:
            self._where(f"{what} ({members} member{'s' if members != 1 else ''})")

    def fold(self, fold: int, rows: int) -> None:
        """Fold ``fold`` (1-based) of the phase under way starts, its test split ``rows`` rows: a line."""
        self.timeline.start_fold(fold, self.clock())
        t = self.timeline
        self._where(f"{t.what} ({t.members} member{'s' if t.members != 1 else ''}; {rows} test rows)")

    def _where(self, what: str) -> None:
        left = self.timeline.left_words(self.clock())
        self.note(f"{self.timeline.where()}: {what}" + (f"; {left}" if left else ""))

    def evaluating(self, name: str, what: str) -> None:
        """The held-out evaluation of ``name`` starts: say so on the overall bar."""
        if not self.enabled:
            return
        self._close_epochs()
        self._bar.set_postfix_str(f"evaluating {name} ({what})")
        if self._plain:  # no bar to show it on: a line of its own
            self._bar.write(f"{self._bar.desc}: evaluating {name} ({what})", file=sys.stderr)

    def finished(self, record: TrialRecord, advance: bool = True) -> None:
        """A trial finished: print its line, advance the overall bar."""
        if not self.enabled:
            return
        self._close_epochs()
        self._bar.write(trial_line(record), file=sys.stderr)
        self._bar.set_postfix_str("")
        if advance:
            self._bar.update(1)

    def note(self, text: str) -> None:
        if self.enabled:
            self._bar.write(text, file=sys.stderr)

    def _close_epochs(self) -> None:
        if self._epochs is not None:
            self._epochs.close()
            self._epochs = None

    def close(self) -> None:
        self._close_epochs()
        if self._bar is not None:
            if self._plain:
                self._bar.close(overall=True)
            else:
                self._bar.close()
            self._bar = None
        self.enabled = False


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # replaced or closed
        return False


__all__ = ["Progress", "Timeline", "trial_line", "duration"]
