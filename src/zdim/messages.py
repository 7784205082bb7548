"""zdim's messages name command-line flags; ``python_message`` rewrites them for a Python caller.

Every error zdim raises says how to fix it in the words of the command line (``fix --batch-size``,
``pass --likelihood auto``). The Python entry points (``zdim.sweep``, ``zdim.load_data``) pass their
errors through ``python_message`` (``speaks_python``), so the same message names the keyword there
(``fix batch_size=``, ``pass likelihood='auto'``). One wording, two audiences, rewritten in one place.
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Callable
from typing import ParamSpec, Protocol, TypeVar

from .errors import UnsettledAnswerWarning, ZdimError
from .formats import LIKELIHOOD_CHOICES

P = ParamSpec("P")
R = TypeVar("R")

# command-line flag -> keyword of ``zdim.sweep`` (flags whose keyword is the flag with "_" for "-" are
# not listed); boolean flags read ``name=True``
_KEYWORDS = {"study": "study_name", "quiet": "progress"}
_BOOLEAN = {"overwrite", "resume", "prune", "nested", "refine", "extend-grid"}
_WORDS = {*LIKELIHOOD_CHOICES, "mlp", "conv", "cpu", "cuda", "ray"}
_FLAG = re.compile(r"--([a-z][a-z0-9-]*)( [^\s]+)?")


def _keyword_value(flag: str, token: str) -> str | None:
    """``token`` (what followed ``--flag`` in a message) as a Python value, or None when it is prose."""
    value = token.rstrip(",.;:)")
    if flag == "dims" and re.fullmatch(r"\d+(,\d+)+", value):
        return f"[{', '.join(value.split(','))}]" + token[len(value) :]
    if flag == "dims" and re.fullmatch(r"\d+-\d+", value):
        lo, hi = value.split("-")
        return f"range({lo}, {int(hi) + 1})" + token[len(value) :]
    if re.fullmatch(r"-?\d+(\.\d+)?(e-?\d+)?", value):
        return value + token[len(value) :]
    if value in _WORDS or re.fullmatch(r"[A-Z][A-Z_]*", value):  # a word zdim knows, or a placeholder
        return repr(value) + token[len(value) :]
    if re.fullmatch(r"'[^']*'|\"[^\"]*\"", value):  # a value already quoted in the message
        return token
    return None


def python_message(message: str) -> str:
    """A zdim message with every command-line flag rewritten as the keyword of ``zdim.sweep``:
    ``fix --batch-size`` -> ``fix batch_size=``, ``pass --likelihood auto`` -> ``pass likelihood='auto'``,
    ``--resume`` -> ``resume=True``."""

    def keyword(match: re.Match[str]) -> str:
        flag, token = match.group(1), match.group(2) or ""
        name = _KEYWORDS.get(flag, flag.replace("-", "_"))
        if flag in _BOOLEAN:
            return f"{name}=True{token}"
        value = _keyword_value(flag, token[1:]) if token else None
        if value is not None:
            return f"{name}={value}"
        if token:  # prose after the flag ("leave --layer out"): the keyword's name alone
            return f"{name}{token}"
        return f"{name}="

    return _FLAG.sub(keyword, message)


def speaks_python(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn`` with the message of every ``ZdimError`` it raises rewritten by ``python_message``."""

    @functools.wraps(fn)
    def inner(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ZdimError as e:
            e.args = (python_message(str(e)), *e.args[1:])
            raise

    return inner


class _Answer(Protocol):
    @property
    def dim(self) -> int: ...
    @property
    def settled(self) -> bool: ...
    @property
    def warnings(self) -> list[str]: ...


def warn_unsettled(answer: _Answer | None, stacklevel: int = 3) -> None:
    """An ``UnsettledAnswerWarning`` for a Python caller (in keywords) when ``answer`` (a
    ``Recommendation``) is not settled; ``stacklevel`` 3 names the caller of the function calling this."""
    if answer is None or answer.settled:
        return
    why = "; ".join(answer.warnings) or "see the recommendation's notes"
    text = f"latent size {answer.dim} is not a settled answer: {why}"
    warnings.warn(python_message(text), UnsettledAnswerWarning, stacklevel=stacklevel)


__all__ = ["python_message", "speaks_python", "warn_unsettled"]
