"""The option table: one declaration per sweep option, read by every door.

``OPTIONS`` holds one ``Option`` per option of a sweep: its keyword (``zdim.sweep``'s, and the
``argparse`` destination), its flag, how the flag is spelled and parsed, its default, its help, the
check of its value and where the value goes (``to``: a field of ``zdim.sweeps.planning.plan.Options``, of
``TrainConfig``, a ``load_data`` keyword, the run directory's handling). From it come:

- the flags of ``zdim sweep``, and those ``zdim tune`` and ``zdim estimate-id`` share (``add_arguments``);
- the keywords' values routed to where they go, each checked first (``route``;
  ``zdim.sweeps.planning.plan.options_from`` builds ``Options`` from that), the same for the command line,
  ``zdim.sweep`` and ``zdim.sweeps.execute.sweep``;
- the parameters section of ``zdim.sweep``'s docstring (``parameters_doc``), whose signature a test holds
  equal to the table;
- the wording in both vocabularies: which keyword a flag names, and what a flag without a value sets
  (``spoken``: ``--no-refine`` is ``refine=False``, ``--quiet`` is ``progress=False``), read by
  ``zdim.messages.python_message``; and which flag a setting has (``flag_for``), read by ``zdim.sweeps.records.resume``.

Adding an option is one row of ``zdim.option_table`` plus its use where it goes. Text and the standard library only: the
command line's ``--help`` reads this without torch.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError
from .option_spec import (  # noqa: F401 (Bounds, OneOf, SWITCH: re-exported with the table)
    DESTINATIONS,
    FLAG,
    OFF,
    SWITCH,
    VALUE,
    Bounds,
    Names,
    OneOf,
    Option,
    _dims,
    integer,
    number_or_word,
    positive_ints,
    refusal,
)
from .option_table import OPTIONS


def option(keyword: str) -> Option:
    """The row of ``keyword`` (``KeyError`` for a keyword the table does not have)."""
    return _table()[keyword]


def for_command(command: str) -> list[Option]:
    """The rows ``command`` takes as flags, in the table's order (which is the order ``--help`` shows)."""
    return [o for o in OPTIONS if o.flag is not None and command in o.commands]


def add_arguments(parser: argparse.ArgumentParser, command: str, keywords: Iterable[str] | None = None) -> None:
    """Add the flags of ``keywords`` (default: every row ``command`` takes), in that order, to ``parser``."""
    rows = for_command(command) if keywords is None else [option(k) for k in keywords]
    groups: dict[str, Any] = {}
    for row in rows:
        calls = row.arguments(command)
        target: Any = parser
        if row.kind == SWITCH:
            target = parser.add_mutually_exclusive_group()
        elif row.group is not None:
            target = groups.get(row.group) or groups.setdefault(row.group, parser.add_mutually_exclusive_group())
        for flags, kw in calls:
            target.add_argument(*flags, **kw)


def given(namespace: argparse.Namespace, command: str) -> dict[str, Any]:
    """The values of ``command``'s rows in a parsed command line, by keyword."""
    return {o.keyword: getattr(namespace, o.keyword) for o in for_command(command)}


@dataclass
class Routed:
    """Option values by where they go, each checked and converted (``route``); ``rest``: keywords the
    table does not have (``zdim.sweeps.planning.plan.options_from`` takes ``Options``' own fields from there)."""

    parts: dict[str, dict[str, Any]]
    rest: dict[str, Any]

    def __getitem__(self, where: str) -> dict[str, Any]:
        return self.parts.get(where, {})

    def loader(self) -> dict[str, Any]:
        """The ``load_data`` keywords given (None and False left out: the loader's defaults)."""
        return {k: v for k, v in self["loader"].items() if v is not None and v is not False}


def route(values: Mapping[str, Any]) -> Routed:
    """``values`` (keyword -> value) checked, in the table's order, and sent where each goes:
    ``ConfigError`` (one line naming the value and the flag) for the first bad one."""
    parts: dict[str, dict[str, Any]] = {where: {} for where in DESTINATIONS}
    rest: dict[str, Any] = {}
    table = _table()
    order = {key: i for i, key in enumerate(table)}
    for key, value in sorted(values.items(), key=lambda kv: order.get(kv[0], len(order))):
        row = table.get(key)
        if row is None:
            rest[key] = value
            continue
        row.validate(value)
        if row.convert is not None and value is not None:
            value = row.convert(value)
        for where, name in row.targets:
            parts[where][name] = value
    return Routed(parts, rest)


def going_to(where: str) -> list[tuple[Option, str]]:
    """The rows whose value goes to ``where`` (``"options"``, ``"train"``, ...), each with the field."""
    return [(o, name) for o in OPTIONS for w, name in o.targets if w == where]


def defaults(where: str | None = None, *, api: bool = True) -> dict[str, Any]:
    """The table's defaults by keyword (only those of rows going to ``where``, when given)."""
    return {
        o.keyword: o.default
        for o in OPTIONS
        if (o.api or not api) and (where is None or any(w == where for w, _ in o.targets))
    }


def spoken(flag: str) -> tuple[str, bool | None]:
    """A flag in Python's words: the keyword it names and the value it sets without a value of its own
    (``--resume``: ``("resume", True)``, ``--no-refine``: ``("refine", False)``, ``--quiet``:
    ``("progress", False)``, ``--batch-size``: ``("batch_size", None)``). A flag the table does not have
    (``--trials`` of ``zdim tune``) reads as its name with ``_`` for ``-``."""
    return _spoken_table().get(flag, (flag.removeprefix("--").replace("-", "_"), None))


def row_for(name: str) -> Option | None:
    """The row of ``name``: a keyword (``seeds``), or a field a row goes to (``warmup_epochs``, of
    ``TrainConfig``); None when no row has it (``weight_decay``)."""
    return _table().get(name) or next((o for o in OPTIONS if any(n == name for _, n in o.targets)), None)


def flag_for(name: str) -> str | None:
    """The flag that sets ``name`` (its row: ``row_for``); None when no flag does (``weight_decay``)."""
    row = row_for(name)
    return row.flag_text or None if row is not None else None


def check_field(
    name: str, value: Any, own: Bounds | OneOf | None = None, *, fix: str = "", optional: bool = False
) -> None:
    """``ConfigError`` (one line naming ``name``, the value and the fix) for a value of the setting ``name``
    (a keyword, or a field a row goes to: ``TrainConfig``'s) that its row's check refuses, so that a bound
    is written once, in its row. ``own`` is the check of a setting no row has (``fix`` then says what to
    fix); ``optional``: None passes."""
    row = row_for(name)
    check = row.check if row is not None else own
    if check is None or (value is None and optional) or check.ok(value):
        return
    raise ConfigError(refusal(name, check, value, row.fix() if row is not None else fix or f"{name}="))


def words() -> set[str]:
    """The values of options a message may name that Python spells as strings (``'auto'``, ``'conv'``)."""
    return {w for o in OPTIONS for w in (*(o.offered or ()), *o.words)}


def parameters_doc(annotations: Mapping[str, Any], rewrite: Callable[[str], str], indent: str = "    ") -> str:
    """The numpydoc entries of the keywords in ``annotations`` (a signature's, in its order) that the
    table has: ``keyword : type`` and the row's ``doc`` (or its help in keyword words, ``rewrite``)."""
    lines: list[str] = []
    table = _table()
    for key, annotation in annotations.items():
        row = table.get(key)
        if row is None or not row.api:
            continue
        text = row.doc or _sentence(rewrite(row.help))
        lines.append(f"{indent}{key} : {annotation}")
        lines += [f"{indent}    {part}" for part in _wrap(text, 100 - len(indent) - 4)]
    return "\n".join(lines)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width``, never breaking inside a ````literal````."""
    import re
    import textwrap

    held = re.sub(r"``[^`]*``", lambda m: m.group(0).replace(" ", "\0"), text)
    return [line.replace("\0", " ") for line in textwrap.wrap(held, width)] or [""]


def _table() -> dict[str, Option]:
    """The rows by keyword, read from ``OPTIONS`` at each call (a test may add a row)."""
    return {o.keyword: o for o in OPTIONS}


def _spoken_table() -> dict[str, tuple[str, bool | None]]:
    out: dict[str, tuple[str, bool | None]] = {}
    for o in OPTIONS:
        if o.flag is None:
            continue
        out[o.flag_text] = (o.keyword, {VALUE: None, FLAG: True, SWITCH: True, OFF: False}[o.kind])
        if o.kind == SWITCH:
            out["--no-" + o.flag_text[2:]] = (o.keyword, False)
    return out


__all__ = [
    "Option",
    "OPTIONS",
    "Bounds",
    "OneOf",
    "Names",
    "Routed",
    "option",
    "for_command",
    "add_arguments",
    "given",
    "route",
    "defaults",
    "going_to",
    "spoken",
    "flag_for",
    "row_for",
    "check_field",
    "words",
    "parameters_doc",
    "number_or_word",
    "positive_ints",
    "VALUE",
    "FLAG",
    "SWITCH",
    "OFF",
]
