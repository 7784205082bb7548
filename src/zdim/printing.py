"""What the ``zdim`` command prints: the results table, the answer beside its table of sizes, the
recommendation with its warnings, and the report written after a sweep or a tuning (a failure to draw is
a warning: the results are saved). Heavy libraries are imported inside the functions.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ZdimError

if TYPE_CHECKING:
    from .answer.recommendation import Recommendation
    from .records import TrialRecord


def format_table(records: list[TrialRecord], fold: list[int] | None = None) -> str:
    """One row per trial (the terminal's columns); ``fold``: each row's fold, as a first column."""
    from .records import COLUMNS, TERMINAL_COLUMNS, format_value

    rows = [r.flat() for r in records]
    cols = [COLUMNS[k] for k in TERMINAL_COLUMNS if any(k in r for r in rows)]
    body = [[format_value(r.get(c.key), c.fmt) for c in cols] for r in rows]
    head = [c.short for c in cols]
    if fold is not None:
        head, body = ["fold", *head], [[str(j), *row] for j, row in zip(fold, body, strict=True)]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(x.rjust(w) for x, w in zip(row, widths)) for row in body]
    return "\n".join(lines)


def format_sizes(rec: Recommendation) -> str:
    """The answer beside its table: per size the held-out NLL, its gap to the best and that gap's standard
    error (``Recommendation.size_rows``)."""
    rows = rec.size_rows()
    if not rows:
        return ""
    head = list(rows[0])
    widths = [max(len(h), *(len(r[h]) for r in rows)) for h in head]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths)).rstrip()]
    lines += ["  ".join(r[h].rjust(w) if h else r[h] for h, w in zip(head, widths)).rstrip() for r in rows]
    return "held-out NLL per size (nats per sample):\n" + "\n".join(lines)


def format_folds(folds: list[list[TrialRecord]], folders: list[str]) -> str:
    """Each fold's own rows (its test split alone) in one table, fold by fold, and where each fold lives."""
    where = "; ".join(f"fold {j + 1}: {f}" for j, f in enumerate(folders))
    rows = [(j + 1, r) for j, records in enumerate(folds) for r in records]
    table = format_table([r for _, r in rows], [j for j, _ in rows]) if rows else "(no fold has finished a trial)"
    return f"each fold's own rows, on its test split alone ({where}):\n{table}"


def print_result(trials: list[TrialRecord], rec: Recommendation | None, run_dir: Path | None) -> None:
    print(format_table(trials))
    shared = {(t.seed, round(t.train_seconds, 1)) for t in trials if t.nested and t.train_seconds is not None}
    if shared:
        print(
            "nested: the training time of each row is that of its seed's one nested model, which served "
            f"every size ({', '.join(f'seed {s}: {sec:g} s' for s, sec in sorted(shared))})"
        )
    if rec is None:
        print("\nNo trial completed: nothing to recommend. Why each trial ended:")
        for t in trials:
            print(f"  {t.trial}: {t.status.value}: {t.reason or 'no reason recorded'}")
        return
    print("\n" + format_sizes(rec))
    print(f"\n{rec.rationale}")
    for w in rec.warnings:
        print(f"warning: {w}")
    settled = "" if rec.settled else " (not a settled answer: see the warnings)"
    if rec.settled and any(n.code == "capacity" for n in rec.notes):
        settled = " (above the intrinsic dimension: see the warning on it)"
    print(f"\nRecommended latent size: {rec.confidence}{settled}")
    if run_dir is not None:
        print(f"Run directory: {run_dir}")


def write_report(run_dir: Path | None, quiet: bool) -> None:
    """Build ``report.html``; a failure here never loses the finished results, so it is a warning."""
    if run_dir is None:
        return
    from .report import build_report

    try:
        path = build_report(run_dir)
    except ZdimError:
        raise
    except Exception as e:  # a bug in drawing must not hide that the sweep itself succeeded
        print(
            f"zdim: warning: the report could not be built ({type(e).__name__}: {e}); the results are "
            f"saved: retry with `zdim report {run_dir}`",
            file=sys.stderr,
        )
        return
    print(f"Report: {path}")


__all__ = ["format_table", "format_folds", "format_sizes", "print_result", "write_report"]
