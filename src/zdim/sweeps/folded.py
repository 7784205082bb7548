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

from ..answer.decide import Evidence, pool
from ..evidence import Note, NoteKind
from ..progress import Progress
from .ledger import Executor, Finished, Ledger, Outcome
from .plan import SweepPlan


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


__all__ = ["FoldedExecutor"]
