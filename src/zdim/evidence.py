"""The evidence behind an answer as typed notes, and the one renderer that turns them into text.

Every part of a sweep that has something to say about its answer adds a ``Note`` to the
``Recommendation``: the rule (what it measured and picked), its sanity checks (a ``WARNING`` makes the
answer not settled, a ``CAUTION`` is worth knowing), settle mode (how training ended), the grid (sizes
added, and why), the whole test split (``--eval-samples``) and the bootstrap (how sure). ``rationale``
renders them once, for the terminal, ``zdim info``, MLflow and ``recommendation.json``; the report reads
the notes themselves and never parses the text back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any


class NoteKind(str, Enum):
    """What a note is about; ``WARNING`` and ``CAUTION`` are the answer's warnings."""

    WARNING = "warning"  # the evidence cannot carry the answer: not settled
    CAUTION = "caution"  # worth knowing; the answer stands
    RULE = "rule"  # what the rule measured and picked
    SETTLE = "settle"  # how settle mode's training went
    GRID = "grid"  # sizes added to the grid (growth at its edge, refinement), and why
    TEST = "test"  # the answer on the whole test split
    UNCERTAINTY = "uncertainty"  # the bootstrap over held-out samples and seeds


WARNINGS = (NoteKind.WARNING, NoteKind.CAUTION)


@dataclass(frozen=True)
class Note:
    """One piece of evidence. A warning's ``text`` is a clause without a final period (``the test split
    has only 50 samples: ...``); every other note's is one or more whole sentences. ``code`` names the
    check that made a warning (``edge``, ``unconverged``, ``learned-nothing``...), for programs."""

    kind: NoteKind
    text: str
    code: str = ""

    @property
    def is_warning(self) -> bool:
        return self.kind in WARNINGS

    def sentence(self) -> str:
        """The note as a sentence: a warning capitalized and closed with a period."""
        if not self.is_warning:
            return self.text
        return f"{self.text[:1].upper()}{self.text[1:]}."

    def to_dict(self) -> dict[str, str]:
        out = {"kind": self.kind.value, "text": self.text}
        if self.code:
            out["code"] = self.code
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Note:
        return cls(NoteKind(d["kind"]), str(d["text"]), str(d.get("code", "")))


def rerun(more: str) -> str:
    """Advice that can be followed: the sweep run again with ``more`` (``more --epochs``) and ``--overwrite``,
    for ``--resume`` keeps a run's finished trials as they are (and refuses other training settings)."""
    return f"rerun the sweep with {more} and --overwrite, since --resume keeps its trials as they are"


MIN_IMPORTANCE_TRIALS = 10  # fewer complete tuning trials than this: parameter importances are a hint


def importance_caveat(tuning: dict[str, Any]) -> str:
    """`` (from 3 complete trials, fewer than 10: a hint only)`` where ``zdim tune``'s parameter importances
    (``tuning.json``) rest on few trials; "" otherwise."""
    n = tuning.get("importance_trials")
    if not isinstance(n, int) or n >= MIN_IMPORTANCE_TRIALS or not tuning.get("importances"):
        return ""
    return f" (from {n} complete trials, fewer than {MIN_IMPORTANCE_TRIALS}: a hint only)"


def warning(text: str, code: str = "") -> Note:
    return Note(NoteKind.WARNING, text, code)


def caution(text: str, code: str = "") -> Note:
    return Note(NoteKind.CAUTION, text, code)


def rationale(notes: Iterable[Note]) -> str:
    """The notes as one paragraph: the warnings first (the first of them after ``Not a settled
    answer:``), then the cautions (``Note: ...``), then every other note in the order it was added."""
    notes = list(notes)
    warn = [n for n in notes if n.kind is NoteKind.WARNING]
    parts = [f"Not a settled answer: {n.text}." if i == 0 else n.sentence() for i, n in enumerate(warn)]
    parts += [f"Note: {n.text}." for n in notes if n.kind is NoteKind.CAUTION]
    parts += [n.text for n in notes if not n.is_warning]
    return " ".join(parts)


__all__ = [
    "Note",
    "NoteKind",
    "WARNINGS",
    "warning",
    "caution",
    "rationale",
    "rerun",
    "importance_caveat",
    "MIN_IMPORTANCE_TRIALS",
]
