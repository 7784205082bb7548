"""What a person sees while a sweep or a tuning runs, on stderr.

One overall bar that advances per finished trial (with tqdm's ETA), an epoch bar per training, the
evaluation phase named on the overall bar while it runs, and one printed line per finished trial
(size, seed, NLL, active units, time), so a long evaluation never looks like a frozen screen.
A disabled ``Progress`` does nothing. When stderr is not a terminal (a log file, a pipe) there are no
bars, which would write cursor codes into it: plain lines instead (``PlainBar``), an epoch line at most
every ``PLAIN_EVERY`` seconds and the last one, and the overall count when the bar closes.
"""

from __future__ import annotations

import sys
import time
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

    def __init__(self, enabled: bool, total: int = 0, done: int = 0, desc: str = "zdim sweep", unit: str = "trial"):
        self.enabled = enabled
        self._bar: Any = None
        self._epochs: Any = None
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
        """One more epoch of the running training bar, with ``postfix`` (settle mode: one round)."""
        if self._epochs is not None:
            self._epochs.update(1)
            self._epochs.set_postfix_str(postfix)

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


__all__ = ["Progress", "trial_line"]
