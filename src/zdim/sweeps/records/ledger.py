"""Where one trial of a sweep ends, the same for every executor, and what is done already.

One trial is trained by ``zdim.training.trial.train`` (seed, build, fit: the sweep, ``zdim tune`` and the
scikit-learn estimator alike) and evaluated by ``zdim.evaluation.trial.evaluate_trial`` (its ``TrialRecord``
on ``eval_data``, with ``zdim.training.trial.training_record``, and its per-sample held-out NLL); here:

- ``failed`` (the record of a trial that raised) and ``saved_extra`` (what a trial's ``model.json`` keeps
  of its data).
- ``Ledger`` is where a sweep's trials end: ``Ledger.finish`` is the one way a trial is finished in
  every mode (persisted in the run directory, the record; told to per-size mode's Optuna trial where a
  study is its engine; printed; kept in memory with its per-sample NLL), and ``Ledger.done`` the one
  answer to "what is finished already" (this process's memory, this run directory's folders, and the
  records other run directories left where the sweep is shared: ``Ledger.shared``).
- ``Outcome`` is what an executor returns, and ``Executor`` the interface the three implement
  (``zdim.sweeps.executors.per_size``: one trial per point, an Optuna study its engine where it has workers;
  ``zdim.sweeps.executors.nested``; ``zdim.sweeps.executors.settle``).

No study is opened here: settle, nested and folded sweeps, and per-size mode in one process, keep their
trials in the run directory alone (``zdim.sweeps.executors.per_size`` opens the study where it is the engine).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from ...data.dataset import Data
from ...errors import TrainingDiverged
from ...evaluation.metrics import Reference, reference
from ...evidence import Note
from ...models.vae import VAE
from ...progress import Progress
from ...records import TrialRecord, TrialStatus
from ..planning.config import SweepConfig, eval_data
from ..planning.plan import SweepPlan
from .runs import RunDir

Key = tuple[int, int]  # (latent size, seed): one grid point


def failed(dim: int, seed: int, error: BaseException) -> TrialRecord:
    """The record of a trial that raised: FAILED with the error as its reason (a divergence keeps its own
    message, which says what to try)."""
    reason = str(error) if isinstance(error, TrainingDiverged) else f"{type(error).__name__}: {error}"
    return TrialRecord(dim=dim, seed=seed, status=TrialStatus.FAILED, reason=reason)


def saved_extra(data: Data) -> dict[str, Any]:
    """What a trial's ``model.json`` keeps of its data: the summary, and the preprocessing that
    ``zdim.load_model`` applies to raw inputs."""
    return {"data": data.summary(), "preprocessing": data.preprocessing.to_dict()}


@dataclass
class Finished:
    """A finished grid point: its record and, for a complete trial, its (N,) per-sample held-out NLL and,
    where no run directory keeps it, its model."""

    record: TrialRecord
    per_sample: np.ndarray | None = None
    model: VAE | None = None


@dataclass
class Outcome:
    """What an executor returns: every finished point of the plan's grid, and what it has to say."""

    finished: dict[Key, Finished]
    notes: list[Note] = field(default_factory=list)

    @property
    def records(self) -> list[TrialRecord]:
        return [self.finished[k].record for k in sorted(self.finished)]

    @property
    def per_sample(self) -> dict[Key, np.ndarray]:
        return {k: f.per_sample for k, f in self.finished.items() if f.record.complete and f.per_sample is not None}


class Executor(Protocol):
    """Runs the unfinished points of ``plan.config.grid()`` and returns the grid's ``Outcome``. Built as
    ``Executor(ledger)``; ``run`` may be called again with a grown grid (points already finished are
    not trained again)."""

    def run(self, plan: SweepPlan) -> Outcome: ...


@dataclass
class Ledger:
    """Where a sweep's trials end (see the module docstring): the data they were trained on, the run
    directory (None: nothing is written), the progress display, and this process's finished trials
    (kept across growths of the grid, so nothing finished is trained twice). ``shared``, set by per-size
    mode where its study is shared (``--storage``), gives the records other run directories finished."""

    data: Data
    run: RunDir | None
    progress: Progress = field(default_factory=lambda: Progress(False))
    memory: dict[Key, Finished] = field(default_factory=dict)
    resumed: bool = False  # the run directory is an earlier run's, gone on with (--resume)
    shared: Callable[[], Mapping[Key, TrialRecord]] | None = None
    _references: dict[tuple[int | None, int], tuple[Data, Reference | None]] = field(default_factory=dict, repr=False)

    def held_out(self, config: SweepConfig) -> tuple[Data, Reference | None]:
        """The data the trials are evaluated on (``eval_data``) and its ``Reference`` models, made once."""
        key = (config.eval_samples, config.train.seed)
        if key not in self._references:
            held = eval_data(self.data, config)
            try:
                ref = reference(held.train, held.test, held.likelihood)
            except (ValueError, np.linalg.LinAlgError):  # no reference, never a lost sweep
                ref = None
            self._references[key] = (held, ref)
        return self._references[key]

    def finish(
        self,
        rec: TrialRecord,
        model: VAE | None = None,
        history: list[dict[str, Any]] | None = None,
        per_sample: np.ndarray | None = None,
        *,
        tell: Callable[[TrialRecord], None] | None = None,
        counted: bool = False,
    ) -> Finished:
        """Finish one trial: save its folder (weights, history and per-sample NLL of a complete trial,
        then ``metrics.json``: the record), then ``tell`` it (per-size mode: its Optuna trial), print its
        line and advance the overall bar (unless it ``counted`` it already), keep it in memory."""
        complete = rec.complete and model is not None
        if self.run is not None:
            self.run.save_trial(
                rec,
                model if complete else None,
                history or [],
                extra=saved_extra(self.data),
                per_sample=torch.from_numpy(per_sample) if complete and per_sample is not None else None,
            )
        if tell is not None:
            tell(rec)
        self.progress.finished(rec, advance=not counted)
        done = Finished(
            rec,
            per_sample if complete else None,
            model.eval() if complete and model is not None and self.run is None else None,
        )
        self.memory[rec.key] = done
        return done

    def done(self, grid: list[Key] | None = None) -> dict[Key, Finished]:
        """Every finished point (of ``grid`` when given): this process's memory first, then this run
        directory's folders (a trial whose weights do not load is not finished), then what other run
        directories finished (``shared``), with the per-sample NLL where the run directory keeps it."""
        found: dict[Key, TrialRecord] = dict(self.shared()) if self.shared is not None else {}
        if self.run is not None:
            found.update((r.key, r) for r in self.run.records())
        out: dict[Key, Finished] = {}
        for key, rec in found.items():
            if key in self.memory:
                continue
            per = self.run.read_per_sample(*key) if self.run is not None and rec.complete else None
            out[key] = Finished(rec, per)
        out.update(self.memory)
        if grid is not None:
            wanted = set(grid)
            out = {k: v for k, v in out.items() if k in wanted}
        return out

    def model(self, dim: int, seed: int) -> VAE:
        """The trained model of a complete trial: from memory, else from the run directory."""
        kept = self.memory.get((dim, seed))
        if kept is not None and kept.model is not None:
            return kept.model
        if self.run is None:
            raise KeyError(f"no model of size {dim}, seed {seed} in memory")
        return self.run.load_trial_model(dim, seed)

    def outcome(self, config: SweepConfig, notes: list[Note] | None = None) -> Outcome:
        """The outcome as it stands: every finished point of the run directory (a resumed run counts the
        sizes its earlier runs trained too), or of the grid when there is none."""
        return Outcome(self.done(config.grid() if self.run is None else None), list(notes or []))


__all__ = [
    "failed",
    "saved_extra",
    "Finished",
    "Outcome",
    "Executor",
    "Ledger",
    "Key",
]
