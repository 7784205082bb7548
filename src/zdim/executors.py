"""Ways to execute a sweep plan, behind one seam.

An ``Executor`` trains and evaluates every point of a plan's grid that is not finished yet and returns
the grid's finished records; ``executor_for`` chooses one for a plan, in one place. Today two execute
each point as an Optuna trial (``zdim.scheduler``): ``per-size`` trains one VAE per (size, seed), and
``nested`` cuts each size out of its seed's one nested VAE. ``settle`` (``zdim.settle``), the default of
a single-process sweep, advances every member together, epoch by epoch, until the answer settles, and
adds each finished member to the same study as a finished trial.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import optuna

from .data import Data
from .plan import SweepConfig, SweepPlan
from .progress import Progress
from .records import TrialRecord
from .runs import RunDir
from .scheduler import run_grid
from .settle import SettleExecutor


class Executor(Protocol):
    """Runs the unfinished points of ``config.grid()``; returns every finished record of the grid."""

    name: str

    def run(self, config: SweepConfig, progress: Progress) -> list[TrialRecord]: ...

    def summary(self) -> str | None:
        """A sentence on how the run went, for the rationale (None: nothing to add)."""
        ...


@dataclass
class StudyExecutor:
    """Each (size, seed) point is one trial of the sweep's Optuna study, run by ``workers`` processes.

    The trial itself (``zdim.trial.run_trial``) trains a VAE of that size (``per-size``) or cuts it out
    of the seed's nested model (``nested``), as the configuration says.
    """

    study: optuna.Study
    data: Data
    run_dir: RunDir | None
    plan: SweepPlan
    name: str = "per-size"

    def run(self, config: SweepConfig, progress: Progress) -> list[TrialRecord]:
        return run_grid(
            self.study,
            self.data,
            config,
            self.run_dir,
            progress,
            workers=self.plan.workers,
            prune=self.plan.prune,
            storage=self.plan.storage,
            study_name=self.plan.study_name,
        )

    def summary(self) -> str | None:
        return None


def executor_for(plan: SweepPlan, data: Data, run_dir: RunDir | None, study: optuna.Study) -> Executor:
    """The executor of ``plan`` (by its mode)."""
    if plan.mode == "settle":
        return SettleExecutor(data, run_dir, plan, time_budget=plan.time_budget, study=study)
    return StudyExecutor(study, data, run_dir, plan, name=plan.mode)


__all__ = ["Executor", "StudyExecutor", "executor_for"]
