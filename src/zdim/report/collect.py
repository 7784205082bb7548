"""Everything the report shows, read from a run directory alone (no data source, no retraining).

``load_run`` gathers the run's JSON/CSV files and trial folders into a ``RunView``; ``pictures``
decodes the saved held-out inputs through the saved models (reconstructions, prior samples, latent
means), which is the only computation the report does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..answer.recommendation import Recommendation
from ..errors import ModelFileError
from ..records import TrialRecord
from ..sweeps.executors.folded import FoldTables, read_fold_tables
from ..sweeps.records.layout import HISTORY_CSV
from ..sweeps.records.runs import RunDir

N_PICTURES = 8  # inputs per reconstruction row, and prior samples per size


@dataclass
class RunView:
    """A run directory as the report sees it.

    Attributes
    ----------
    run_dir : Path
    info : dict
        ``run.json``: data summary, sweep configuration, the command.
    recommendation : Recommendation or None
        ``recommendation.json``, typed (None while no trial has finished, or when it is unreadable).
    trials : list of TrialRecord
        Every finished trial record (complete, failed or pruned), sorted by size and seed; with k folds,
        each trial's record pooled over the folds (the rows of ``results.csv``; the trial folders hold the
        first fold's models).
    folds : FoldTables or None
        With k folds: each fold's own rows (``zdim.sweeps.executors.folded.read_fold_tables``).
    histories : dict
        Trial name -> per-epoch rows of ``history.csv``.
    inputs, labels, inputs_meta
        Held-out samples saved by the sweep (``inputs.safetensors``), or None for older runs.
    tuning : dict or None
        ``tuning.json`` when ``zdim tune`` ran in this directory.
    settle : dict or None
        ``settle.json`` of a settle-mode sweep: the recommendation after every epoch.
    tuned_test : dict or None
        ``tune/final/metrics.json``: the tuned final model's test figures (``nll``, ``neg_elbo``, ``mse``)
        and ``sweep_test``, the sweep's mean test figures at that size; None when absent or unreadable.
    """

    run_dir: Path
    info: dict[str, Any]
    recommendation: Recommendation | None
    trials: list[TrialRecord]
    histories: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    inputs: torch.Tensor | None = None
    labels: np.ndarray | None = None
    inputs_meta: dict[str, Any] = field(default_factory=dict)
    tuning: dict[str, Any] | None = None
    tuned_test: dict[str, Any] | None = None
    settle: dict[str, Any] | None = None
    folds: FoldTables | None = None

    @property
    def data(self) -> dict[str, Any]:
        return dict(self.info.get("data", {}))

    @property
    def complete(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.complete]

    @property
    def recommended_dim(self) -> int | None:
        return None if self.recommendation is None else self.recommendation.dim

    @property
    def intrinsic_dim(self) -> float | None:
        """An intrinsic-dimension estimate recorded by the run, when there is one."""
        # run.json holds zdim.evaluation.intrinsic.IntrinsicDim.to_dict() (per-method means); recommendation.json the
        # rounded number the grid was built from.
        rec = self.recommendation
        for value in (self.info.get("intrinsic_dim"), rec.intrinsic_dim if rec is not None else None):
            if isinstance(value, dict):
                methods = [value[k] for k in ("twonn", "mle") if isinstance(value.get(k), (int, float))]
                value = sum(methods) / len(methods) if methods else value.get("dim")
            if isinstance(value, (int, float)) and np.isfinite(value):
                return float(value)
        return None

    @property
    def folder(self) -> RunDir:
        """The run directory's owner: every path and read goes through it."""
        return RunDir(self.run_dir)

    def trial_folder(self, rec: TrialRecord) -> Path:
        return self.folder.trial_folder(rec.dim, rec.seed)

    def representative(self) -> list[TrialRecord]:
        """One complete trial per size (the lowest held-out NLL among its seeds), by size."""
        best: dict[int, TrialRecord] = {}
        for t in self.complete:
            if t.dim not in best or _nll(t) < _nll(best[t.dim]):
                best[t.dim] = t
        return [best[d] for d in sorted(best)]


def _nll(t: TrialRecord) -> float:
    nll = t.metric("nll")
    return math.inf if nll is None else nll


def load_run(run_dir: str | Path) -> RunView:
    """Read a run directory; raise ``RunDirError`` (one line) when it is not one."""
    run = RunDir.open(run_dir)
    trials = run.records(verify=False)  # every finished trial; one whose weights are bad still has metrics
    folds = read_fold_tables(run)
    view = RunView(
        run_dir=run.path,
        info=run.read_info(),
        recommendation=_recommendation(run),
        trials=folds.pooled if folds is not None else trials,
        folds=folds,
    )
    for t in trials:
        if (run.trial_folder(t.dim, t.seed) / HISTORY_CSV).is_file():
            view.histories[t.trial] = run.read_history(t.dim, t.seed)
    saved = run.load_inputs()
    if saved is not None:
        view.inputs, view.labels, view.inputs_meta = saved
    view.tuning = run.read_tuning()
    view.tuned_test = run.read_final()  # tune/final/metrics.json: the tuned model's test figures
    view.settle = run.read_settle()  # settle mode: the answer after every epoch
    return view


def _recommendation(run: RunDir) -> Recommendation | None:
    saved = run.read_recommendation()
    if saved is None:
        return None
    try:
        return Recommendation.from_dict(saved)
    except (TypeError, ValueError, KeyError):  # a file this version cannot read: the report goes on without it
        return None


@dataclass
class Pictures:
    """Decoded pictures for the report, per latent size (representative trial of each size)."""

    inputs: np.ndarray | None = None  # (n, D) held-out inputs shown in the reconstruction grid
    reconstructions: dict[int, np.ndarray] = field(default_factory=dict)  # dim -> (n, D)
    samples: dict[int, np.ndarray] = field(default_factory=dict)  # dim -> (n, D) prior samples
    latent: np.ndarray | None = None  # (N, K) posterior means of the inputs, recommended size
    feature_error: np.ndarray | None = None  # (D,) mean squared reconstruction error, recommended size
    missing: list[str] = field(default_factory=list)  # trials whose model could not be loaded


@torch.no_grad()
def pictures(view: RunView, seed: int = 0) -> Pictures:
    """Reconstructions and prior samples of every size, latent means and per-feature error of the
    recommended size, all from the saved models and inputs."""
    out = Pictures()
    if view.inputs is None:
        return out
    x = view.inputs
    out.inputs = x[:N_PICTURES].numpy()
    rec_dim = view.recommended_dim
    for t in view.representative():
        try:
            model = view.folder.load_trial_model(t.dim, t.seed)
        except ModelFileError:
            out.missing.append(t.trial)
            continue
        dim = t.dim
        out.reconstructions[dim] = model.reconstruct(x[:N_PICTURES]).numpy()
        gen = torch.Generator().manual_seed(seed)
        out.samples[dim] = model.sample(N_PICTURES, generator=gen).numpy()
        if dim == rec_dim:
            out.latent = model.transform(x).numpy()
            out.feature_error = ((model.reconstruct(x) - x) ** 2).mean(0).numpy()
    return out
