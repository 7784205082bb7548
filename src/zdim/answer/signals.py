"""The evidence signals: each reads the table of sizes and points at one size (docs/recommendation.md).

A signal is one class: its ``name`` is the rule that follows it alone (``--rule NAME``), ``pick`` reads
the sizes on the lower envelope of held-out NLL (``Reading``) and returns the row it points at (None
when its evidence is missing, and ``missing`` then says why the rule cannot answer), and ``words`` is
its part of the rationale's "Signals:" sentence. ``SIGNALS`` lists them in that sentence's order; the
rule ``combined`` (``zdim.answer.rules``) weighs the NLL knee against the active units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .recommendation import _num

Row = dict[str, Any]


@dataclass(frozen=True)
class Reading:
    """What a signal reads: every size's row (``zdim.answer.rules.aggregate``, with its gap to the best and the
    SE of that gap), the sizes on the lower envelope, the NLL tolerance (nats per sample) and the
    generation tolerance (relative)."""

    rows: list[Row]
    on: list[Row]
    tol: float
    gen_tol: float

    @property
    def largest(self) -> Row:
        return self.rows[-1]


def within(r: Row, tol: float) -> bool:
    """Whether size ``r`` is within the tolerance of the best: its NLL gap is no more than the tolerance or
    the standard error of the gap (``gap_se``)."""
    return bool(r["gap"] <= max(tol, r["gap_se"]))


def units(row: Row) -> str:
    """The active units of a size in words: ``12 active units``, or, when its seeds differ, ``4 to 5
    active units, 4.33 on average over 3 seeds`` (never a bare fractional count)."""
    lo, hi = row.get("active_units_min"), row.get("active_units_max")
    mean = row["active_units_mean"]
    if lo is None or hi is None or lo == hi:
        return f"{_num(mean)} active unit{'' if mean == 1 else 's'}"
    return f"{_num(lo)} to {_num(hi)} active units, {_num(mean)} on average over {row['n_seeds']} seeds"


class Signal:
    """One view of the bottleneck (see the module docstring)."""

    name: ClassVar[str]
    missing: ClassVar[str] = ""

    def pick(self, r: Reading) -> Row | None:
        raise NotImplementedError

    def words(self, dim: int, r: Reading) -> str:
        raise NotImplementedError


class NllKnee(Signal):
    """The smallest size on the envelope within the tolerance of the best held-out NLL."""

    name = "nll-knee"

    def pick(self, r: Reading) -> Row | None:
        return next(row for row in r.on if within(row, r.tol))

    def words(self, dim: int, r: Reading) -> str:
        return f"NLL knee {dim}"


class ActiveUnits(Signal):
    """The smallest size on the envelope that holds the largest model's active units."""

    name = "active-units"

    def pick(self, r: Reading) -> Row | None:
        au = r.largest["active_units_mean"]
        return next((row for row in r.on if row["dim"] >= round(au)), r.on[-1])

    def words(self, dim: int, r: Reading) -> str:
        return f"active units {dim} (the smallest size tried that holds the largest model's {units(r.largest)})"


class Generation(Signal):
    """The smallest size on the envelope whose Frechet distance is within ``gen_tol`` of the best."""

    name = "generation"
    missing = (
        "rule 'generation' needs generation metrics (gen_fd) in the trials: "
        "rerun the sweep with this zdim, or choose --rule nll-knee"
    )

    def pick(self, r: Reading) -> Row | None:
        fd_rows = [row for row in r.on if "gen_fd_mean" in row]
        if not fd_rows:
            return None
        best_fd = min(row["gen_fd_mean"] for row in fd_rows)
        return next(row for row in fd_rows if row["gen_fd_mean"] <= best_fd * (1 + r.gen_tol))

    def words(self, dim: int, r: Reading) -> str:
        return f"generation (Frechet distance) {dim}"


SIGNALS: tuple[Signal, ...] = (NllKnee(), ActiveUnits(), Generation())
BY_NAME = {s.name: s for s in SIGNALS}

__all__ = ["Reading", "Signal", "NllKnee", "ActiveUnits", "Generation", "SIGNALS", "BY_NAME", "within", "units"]
