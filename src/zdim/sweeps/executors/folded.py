"""k folds behind the executor seam: a plan run in each fold's own executor, the evidence pooled.

``FoldedExecutor`` holds one executor per fold (``zdim.data.folds.fold_splits``), each with its own ``Ledger``
(its run directory and memory, so nothing finished is trained twice). ``run`` runs the plan's
unfinished points in every fold and returns the pooled ``Outcome`` (``zdim.answer.decide.pool``: per (size,
seed) one record over every row, the per-sample NLL in one row order for every size), so the growth of
the grid (edge, bisection, the intrinsic dimension) and the answer work on every row as they do on one
test split, and a size added by bisection is trained in every fold.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ...answer.decide import Evidence, pool
from ...evidence import Note, NoteKind
from ...progress import Progress
from ...records import TrialRecord
from ..planning.plan import SweepPlan
from ..records.ledger import Executor, Finished, Ledger, Outcome
from ..records.runs import RunDir


@dataclass
class FoldedExecutor:
    """The plan in every fold (see the module docstring)."""

    executors: list[Executor]
    ledgers: list[Ledger]
    progress: Progress = field(default_factory=lambda: Progress(False))
    seconds: list[float] = field(default_factory=list)  # each fold's training time, over every call

    def run(self, plan: SweepPlan) -> Outcome:
        k = len(self.executors)
        self.seconds = self.seconds or [0.0] * k
        outcomes = []
        for j, (executor, ledger) in enumerate(zip(self.executors, self.ledgers, strict=True)):
            self.progress.fold(j + 1, int(ledger.data.test.shape[0]))
            t0 = time.perf_counter()
            outcomes.append(executor.run(plan))
            self.seconds[j] += time.perf_counter() - t0
        pooled = pool([Evidence(o.records, o.per_sample) for o in outcomes])
        finished = {r.key: Finished(r, pooled.per_sample.get(r.key)) for r in pooled.records}
        notes = [Note(n.kind, f"In the first fold: {n.text}") for n in outcomes[0].notes]
        return Outcome(finished, notes)

    def cost(self, answers: list[int | None]) -> Note:
        """What the folds cost, in a note: the rows held out, the test splits, the seconds, and what
        each fold alone answers (``answers``)."""
        rows = [int(ledger.data.test.shape[0]) for ledger in self.ledgers]
        alone = ", ".join("-" if a is None else str(a) for a in answers)
        return Note(
            NoteKind.TEST,
            f"The evidence pools {len(rows)} folds: every one of the {sum(rows)} rows was held out once (test "
            f"splits of {min(rows)} to {max(rows)} rows), at the cost of training the grid {len(rows)} times: "
            f"{sum(self.seconds):.0f} s, of which {self.seconds[0]:.0f} s for the first fold. On its own test "
            f"split each fold would have answered {alone}.",
        )

    def record(self, answers: list[int | None]) -> dict[str, Any]:
        """``folds.json``: the folds, their test rows, seconds and their own answers."""
        rows = [int(ledger.data.test.shape[0]) for ledger in self.ledgers]
        return {"folds": len(rows), "rows": rows, "seconds": self.seconds, "answers": answers}


@dataclass(frozen=True)
class FoldTables:
    """The trials of a run with k folds as its readers show them (``zdim info``, the report): ``pooled``,
    one row per trial over every fold's test rows (the rows of ``results.csv``, the numbers the answer
    read), and ``folds``, each fold's own rows (its test split alone), with ``folders`` where each fold
    lives (``.``, ``folds/fold-1``, ...)."""

    pooled: list[TrialRecord]
    folds: list[list[TrialRecord]]
    folders: list[str]


def read_fold_tables(run: RunDir) -> FoldTables | None:
    """A run directory's fold tables (None for a run without folds): each fold's trials read from its own
    run directory, and the points every fold has finished pooled as the sweep pooled them
    (``zdim.answer.decide.pool``, from the per-sample held-out NLL each trial saved), so a run directory
    shows the numbers its sweep printed, also while it runs or after an interruption."""
    runs = run.fold_runs()
    if not runs:
        return None
    own = [r.records(verify=False) for r in runs]
    finished = set.intersection(*({t.key for t in records} for records in own))
    parts = []
    for fold, records in zip(runs, own, strict=True):
        mine = [t for t in records if t.key in finished]
        per_sample = {t.key: v for t in mine if t.complete and (v := fold.read_per_sample(*t.key)) is not None}
        parts.append(Evidence(mine, per_sample))
    return FoldTables(list(pool(parts).records), own, [run.fold_folder(j) for j in range(len(runs))])


__all__ = ["FoldedExecutor", "FoldTables", "read_fold_tables"]
