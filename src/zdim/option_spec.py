"""What an option of the table is (``zdim.options.OPTIONS``): ``Option`` (its keyword, flag, spelling,
parser, default, help, check and destinations), the checks (``Bounds``, ``OneOf``), the names of a
registry a row offers (``Names``) and the parsers of flag values. Text and the standard library only."""

from __future__ import annotations

import argparse
import importlib
import math
import numbers
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .grid import DimSpec

VALUE, FLAG, SWITCH, OFF = "value", "flag", "switch", "off"
# VALUE: --name VALUE; FLAG: --name sets True; SWITCH: --name / --no-name (True, False, or None: the default
# decides); OFF: the flag sets False (--no-extend, --quiet for progress)
DESTINATIONS = ("options", "train", "loader", "run", "api", "cli")
# options: a field of zdim.sweeps.planning.plan.Options; train: of zdim.TrainConfig; loader: a keyword of
# zdim.load_data; run: where results go (out, overwrite, resume, progress); api: zdim.sweep's own (report); cli: the
# command's own (mlflow)


@dataclass(frozen=True)
class Bounds:
    """A number's check: ``what`` it is (``"an integer"``, ``"a number of seconds"``), a lower bound
    (excluded when ``strict``), an upper bound (always excluded), finite or not."""

    what: str
    low: float | None = None
    high: float | None = None
    strict: bool = False
    integer: bool = False
    finite: bool = False

    def ok(self, value: Any) -> bool:
        kind = numbers.Integral if self.integer else numbers.Real
        if isinstance(value, bool) or not isinstance(value, kind):
            return False
        value = float(value)
        if (self.finite or self.high is not None) and not math.isfinite(value):
            return False
        if self.low is not None and not (value > self.low if self.strict else value >= self.low):
            return False
        return self.high is None or value < self.high

    def expected(self) -> str:
        if self.low is not None and self.high is not None:
            return f"{self.what} in ({self.low:g}, {self.high:g})"
        if self.low is not None:
            return f"{self.what} {'>' if self.strict else '>='} {self.low:g}"
        return self.what


@dataclass(frozen=True)
class Names:
    """The names of a registry that lives above the option table, read each time they are asked (the
    parser's choices, a value's check, a message), so the table copies no name of it and a row added to
    the registry is a choice at once: ``module``'s ``attribute``, a mapping keyed by name or a sequence of
    things with a ``name``. The table names the registry; it never imports it at import time. The module
    must import neither torch nor Optuna: every ``zdim`` command line, ``--help`` included, reads it
    (``tests/test_layers.py``)."""

    module: str
    attribute: str

    def names(self) -> tuple[str, ...]:
        """The registry's names as it stands."""
        found = getattr(importlib.import_module(self.module), self.attribute)
        return tuple(str(getattr(x, "name", x)) for x in found)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __contains__(self, value: object) -> bool:
        return value in self.names()

    def __len__(self) -> int:
        return len(self.names())


@dataclass(frozen=True)
class OneOf:
    """A word's check: one of ``choices`` (a tuple, or the ``Names`` of a registry)."""

    choices: Sequence[str] | Names

    def ok(self, value: Any) -> bool:
        return value in self.choices

    def expected(self) -> str:
        return f"one of {', '.join(self.choices)}"


def refusal(name: str, check: Bounds | OneOf, value: Any, fix: str) -> str:
    """The one line that refuses ``value`` of ``name``: what ``check`` expects, and what to ``fix``."""
    return f"{name} must be {check.expected()}, got {value!r}: fix {fix}"


def integer(low: int) -> Bounds:
    return Bounds("an integer", low, integer=True)


@dataclass(frozen=True)
class Option:
    """One option of a sweep, declared once.

    ``keyword`` is ``zdim.sweep``'s keyword and the ``argparse`` destination; ``flag`` the command line's
    (None: Python only; ``""``: ``--`` and the keyword with ``-`` for ``_``); ``kind`` how the flag
    reads (``VALUE``, ``FLAG``, ``SWITCH``, ``OFF``); ``default`` the default of both doors (an ``OFF``
    flag's absence is True on the command line); ``parse``/``choices``/``metavar`` how ``argparse``
    reads the value; ``help`` the command line's words (``off`` the help of ``--no-NAME`` of a
    ``SWITCH``); ``doc`` the docstring's text (default: ``help`` in keyword words); ``check`` the value's
    check (None passes where the default is None); ``to`` where the value goes (``"train.warmup_epochs"``;
    default ``options.KEYWORD``); ``convert`` the value as it goes there; ``commands`` the subcommands
    that take the flag, ``per_command`` what differs there (``help``, ``default``); ``group`` a mutually
    exclusive group of flags; ``api`` whether ``zdim.sweep`` takes the keyword; ``words`` the values a
    message may name that Python spells as strings."""

    keyword: str
    help: str
    default: Any = None
    flag: str | None = ""
    kind: str = VALUE
    parse: Callable[[str], Any] | None = None
    choices: Sequence[str] | Names | None = None  # default: those of a ``OneOf`` check
    metavar: str | None = None
    off: str = ""
    doc: str | None = None
    check: Bounds | OneOf | None = None
    to: tuple[str, ...] = ()
    convert: Callable[[Any], Any] | None = None
    commands: tuple[str, ...] = ("sweep",)
    per_command: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    group: str | None = None
    api: bool = True
    words: tuple[str, ...] = ()

    @property
    def offered(self) -> tuple[str, ...] | None:
        """The values the flag takes (``argparse``'s choices): ``choices``, else those of a ``OneOf`` check,
        read as they stand (a registry's ``Names``); None where any value of its type goes."""
        found = self.choices
        if found is None and isinstance(self.check, OneOf):
            found = self.check.choices
        return tuple(found) if found is not None else None

    @property
    def name(self) -> str:
        """The flag without its dashes (``batch-size``); empty for a keyword only Python has."""
        return self.flag_text[2:] if self.flag_text else ""

    @property
    def flag_text(self) -> str:
        if self.flag is None:
            return ""
        if self.flag:
            return self.flag
        return "--" + ("no-" if self.kind == OFF else "") + self.keyword.replace("_", "-")

    @property
    def targets(self) -> tuple[tuple[str, str], ...]:
        """Where the value goes: (destination, field) pairs."""
        to = self.to or (f"options.{self.keyword}",)
        return tuple((where, name) for where, _, name in (t.partition(".") for t in to))

    def fix(self) -> str:
        """What a message tells the user to fix: the flag, or the keyword where there is none."""
        return self.flag_text or f"{self.keyword}="

    def validate(self, value: Any, name: str | None = None) -> None:
        """``ConfigError`` (one line, naming the value and the flag) for a value the check refuses; ``name``:
        what the message calls the value (default the keyword; ``warmup_epochs``, the field it goes to)."""
        if self.check is None or (value is None and self.default is None) or self.check.ok(value):
            return
        raise ConfigError(refusal(name or self.keyword, self.check, value, self.fix()))

    def arguments(self, command: str) -> list[tuple[list[str], dict[str, Any]]]:
        """The ``add_argument`` calls of this option in ``command`` (two for a ``SWITCH``)."""
        over = self.per_command.get(command, {})
        helps = over.get("help", self.help)
        if self.kind == SWITCH:
            flag = self.flag_text
            return [
                ([flag], {"dest": self.keyword, "action": "store_true", "default": None, "help": helps}),
                (["--no-" + flag[2:]], {"dest": self.keyword, "action": "store_false", "help": self.off}),
            ]
        if self.kind in (FLAG, OFF):
            action = "store_true" if self.kind == FLAG else "store_false"
            return [([self.flag_text], {"dest": self.keyword, "action": action, "help": helps})]
        kw: dict[str, Any] = {"dest": self.keyword, "default": over.get("default", self.default), "help": helps}
        if self.parse is not None:
            kw["type"] = self.parse
        offered = self.offered
        if offered is not None:
            kw["choices"] = list(offered)
        metavar = self.metavar or (None if offered else self.name.upper().replace("-", "_"))
        if metavar:
            kw["metavar"] = metavar
        return [([self.flag_text], kw)]


def number_or_word(text: str) -> float | str:
    """An integer, a number, or the word itself (``auto``, ``pca``): ``TrainConfig`` says which it accepts."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def positive_ints(text: str) -> list[int]:
    """``512,256`` -> [512, 256]; ``argparse`` turns the error into its own usage line."""
    try:
        vals = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of widths like 512,256") from None
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: widths must be positive integers like 512,256")
    return vals


def column_names(value: Any) -> tuple[str, ...]:
    """``id,date`` (the command line) or a sequence of names (Python) -> a tuple of column names;
    ``ConfigError`` for anything else."""
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(f"keep_columns must be column names such as id,date, got {value!r}: fix --keep-columns")
    return tuple(names)


def _dims(value: Any) -> DimSpec | None:
    return value if isinstance(value, DimSpec) else DimSpec.of(value) if value else None
