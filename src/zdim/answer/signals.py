"""The evidence signals: each reads the table of sizes and points at one size (docs/recommendation.md).

A signal is one class in ``SIGNALS``, the registry of rules: its ``name`` is the rule that follows it
(``--rule NAME``), ``pick`` reads the sizes on the lower envelope of held-out NLL (``Reading``) and
returns the row it points at (None when its evidence is missing, and ``missing`` then says why the rule
cannot answer), ``words`` is its part of the rationale's "Signals:" sentence, and ``needs`` names the
record metrics its pick reads (``evidence``): a sweep that cannot measure them refuses the rule before
anything is trained (``zdim.sweeps.planning.plan``), and settle mode, which measures generation quality only
once training has ended, follows the NLL knee while it trains (``zdim.answer.rules.Question.given``).
A ``Composite`` is a signal over registered ones: ``combined`` (the default rule) weighs the NLL knee
against the active units. The option table's ``--rule`` choices are this registry's names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import ConfigError
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
    needs: ClassVar[tuple[str, ...]] = ("nll",)  # the record metrics its pick reads (TrialRecord.metric names)
    reads_nll: ClassVar[bool] = False  # its pick reads the NLL tolerance: never a noisier larger size (quieter)

    def pick(self, r: Reading) -> Row | None:
        raise NotImplementedError

    def words(self, dim: int, r: Reading) -> str:
        raise NotImplementedError

    def evidence(self) -> frozenset[str]:
        """The record metrics the rule of this signal needs."""
        return frozenset(self.needs)

    def why_missing(self) -> str:
        """Why the rule cannot answer when ``pick`` found its evidence missing."""
        return self.missing

    def says(self, dim: int, r: Reading) -> str:
        """The rationale's sentence on what the rule of this signal recommends."""
        return f"Rule '{self.name}' recommends {dim}."


class NllKnee(Signal):
    """The smallest size on the envelope the NLL rule accepts (``accept``: within the tolerance of the best
    held-out NLL, or with a mean NLL no higher than that of a size within it)."""

    name = "nll-knee"
    reads_nll = True

    def pick(self, r: Reading) -> Row | None:
        return next(row for row in r.on if row["accepted"])

    def words(self, dim: int, r: Reading) -> str:
        return f"NLL knee {dim}"


class ActiveUnits(Signal):
    """The smallest size on the envelope that holds the largest model's active units."""

    name = "active-units"
    needs = ("active_units",)

    def pick(self, r: Reading) -> Row | None:
        au = r.largest["active_units_mean"]
        return next((row for row in r.on if row["dim"] >= round(au)), r.on[-1])

    def words(self, dim: int, r: Reading) -> str:
        return f"active units {dim} (the smallest size tried that holds the largest model's {units(r.largest)})"


class Generation(Signal):
    """The smallest size on the envelope whose Frechet distance is within ``gen_tol`` of the best."""

    name = "generation"
    needs = ("gen_fd",)
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


class Composite(Signal):
    """A signal over registered signals (``parts``, by name): it picks from their picks (``combine``) and
    needs what they need. It is a rule, not a view of its own: the "Signals:" sentence and
    ``Recommendation.signals`` name its parts, not it."""

    parts: ClassVar[tuple[str, ...]]

    def pick(self, r: Reading) -> Row | None:
        picks = {p: get(p).pick(r) for p in self.parts}
        if any(v is None for v in picks.values()):
            return None
        return self.combine({p: v for p, v in picks.items() if v is not None}, r)

    def combine(self, picks: dict[str, Row], r: Reading) -> Row:
        raise NotImplementedError

    def evidence(self) -> frozenset[str]:
        return frozenset().union(*(get(p).evidence() for p in self.parts))

    def why_missing(self) -> str:
        return next((w for p in self.parts if (w := get(p).why_missing())), "")

    def words(self, dim: int, r: Reading) -> str:
        return ""


def collapsed(r: Reading) -> bool:
    """Whether the largest model tried keeps fewer active units than its size (its units collapsed)."""
    return bool(r.largest["active_units_mean"] < r.largest["dim"])


class Combined(Composite):
    """The default rule: the smaller of the NLL knee and the active units where the largest model has
    collapsed units (its active units then measure what the data need); the NLL knee otherwise."""

    name = "combined"
    parts = ("nll-knee", "active-units")
    reads_nll = True

    def combine(self, picks: dict[str, Row], r: Reading) -> Row:
        knee, au = picks["nll-knee"], picks["active-units"]
        return min(knee, au, key=lambda row: row["dim"]) if collapsed(r) else knee

    def says(self, dim: int, r: Reading) -> str:
        how = (
            "the smaller of the NLL knee and the active units of the largest model"
            if collapsed(r)
            else "the NLL knee (no unit of the largest model collapsed)"
        )
        return f"Rule 'combined' takes {how}: {dim}."


# The registry of rules, in the order ``--rule`` lists them (the default first): adding a signal is one
# class and one row here.
SIGNALS: tuple[Signal, ...] = (Combined(), NllKnee(), ActiveUnits(), Generation())


def names() -> tuple[str, ...]:
    """The rules there are: the names of ``SIGNALS``, read as it stands."""
    return tuple(s.name for s in SIGNALS)


def get(name: str) -> Signal:
    """The signal of the rule ``name`` (``ConfigError`` naming the rules for another)."""
    for s in SIGNALS:
        if s.name == name:
            return s
    raise ConfigError(f"unknown rule {name!r}: choose one of {', '.join(names())} (--rule)")


def views() -> tuple[Signal, ...]:
    """The signals that are views of their own (no ``Composite``), in the "Signals:" sentence's order."""
    return tuple(s for s in SIGNALS if not isinstance(s, Composite))


__all__ = [
    "Reading", "Signal", "Composite", "NllKnee", "ActiveUnits", "Generation", "Combined", "SIGNALS", "names", "get",
    "views", "within", "accept", "units", "collapsed",
]  # fmt: skip
