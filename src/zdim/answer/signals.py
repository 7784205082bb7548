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
    """Whether size ``r`` is within the tolerance of the best by its own gap: no more than the tolerance or
    the standard error the one-standard-error rule reads (``within_se``: the paired standard error of the
    gap, or the best size's standard error over seeds, never the candidate's own)."""
    return bool(r["gap"] <= max(tol, r.get("within_se", 0.0)))


def accept(rows: list[Row], tol: float) -> None:
    """Mark the sizes the NLL rule accepts: ``within`` (by its own gap, ``within``) and ``accepted``: every
    size within, and every size whose mean NLL is no higher than that of a size within (``accepted_by``
    names that size), so a quieter smaller size is never passed over for a noisier larger one."""
    inside = [r for r in rows if within(r, tol)]
    bar = max(inside, key=lambda r: r["nll_mean"]) if inside else None
    ids = {id(r) for r in inside}
    for r in rows:
        r["within"] = id(r) in ids
        r["accepted"] = r["within"] or (bar is not None and r["nll_mean"] <= bar["nll_mean"])
        if r["accepted"] and not r["within"] and bar is not None:
            r["accepted_by"] = bar["dim"]


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
    """The smallest size on the envelope the NLL rule accepts (``accept``: within the tolerance of the best
    held-out NLL, or with a mean NLL no higher than that of a size within it)."""

    name = "nll-knee"

    def pick(self, r: Reading) -> Row | None:
        return next(row for row in r.on if row["accepted"])

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

__all__ = [
    "Reading", "Signal", "NllKnee", "ActiveUnits", "Generation", "SIGNALS", "BY_NAME", "within", "accept", "units",
]  # fmt: skip
