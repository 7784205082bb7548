"""Everything the report shows, read from a run directory alone (no data source, no retraining).

``load_run`` gathers the run's JSON/CSV files and trial folders into a ``RunView``; ``pictures``
decodes the saved held-out inputs through the saved models (reconstructions, prior samples, latent
means), which is the only computation the report does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ModelFileError, RunDirError
from ..runs import (
    RECOMMENDATION_JSON,
    RUN_JSON,
    load_inputs,
    load_model,
    read_history,
    read_json,
    trial_name,
)
from ..search import collect_trials

TUNING_JSON = "tuning.json"
N_PICTURES = 8  # inputs per reconstruction row, and prior samples per size


@dataclass
class RunView:
    """A run directory as the report sees it.

    Attributes
    ----------
    run_dir : Path
    info : dict
        ``run.json``: data summary, sweep configuration, the command.
    recommendation : dict or None
        ``recommendation.json`` (None while no trial has finished).
    trials : list of dict
        Every finished trial record (complete, failed or pruned), sorted by size and seed.
    histories : dict
        Trial name -> per-epoch rows of ``history.csv``.
    inputs, labels, inputs_meta
        Held-out samples saved by the sweep (``inputs.safetensors``), or None for older runs.
    tuning : dict or None
        ``tuning.json`` when ``zdim tune`` ran in this directory.
    """

    run_dir: Path
    info: dict[str, Any]
    recommendation: dict[str, Any] | None
    trials: list[dict[str, Any]]
    histories: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    inputs: torch.Tensor | None = None
    labels: np.ndarray | None = None
    inputs_meta: dict[str, Any] = field(default_factory=dict)
    tuning: dict[str, Any] | None = None

    @property
    def data(self) -> dict[str, Any]:
        return dict(self.info.get("data", {}))

    @property
    def complete(self) -> list[dict[str, Any]]:
        return [t for t in self.trials if t.get("status") == "complete"]

    @property
    def recommended_dim(self) -> int | None:
        return None if self.recommendation is None else int(self.recommendation["dim"])

    @property
    def intrinsic_dim(self) -> float | None:
        """An intrinsic-dimension estimate recorded by the run, when there is one."""
        # run.json holds zdim.intrinsic.IntrinsicDim.to_dict() (per-method means); recommendation.json the
        # rounded number the grid was built from.
        for source in (self.info, self.recommendation or {}):
            value = source.get("intrinsic_dim")
            if isinstance(value, dict):
                methods = [value[k] for k in ("twonn", "mle") if isinstance(value.get(k), (int, float))]
                value = sum(methods) / len(methods) if methods else value.get("dim")
            if isinstance(value, (int, float)) and np.isfinite(value):
                return float(value)
        return None

    def trial_folder(self, rec: dict[str, Any]) -> Path:
        return self.run_dir / "trials" / trial_name(int(rec["dim"]), int(rec["seed"]))

    def representative(self) -> list[dict[str, Any]]:
        """One complete trial per size (the lowest held-out NLL among its seeds), by size."""
        best: dict[int, dict[str, Any]] = {}
        for t in self.complete:
            d = int(t["dim"])
            if d not in best or t["nll"] < best[d]["nll"]:
                best[d] = t
        return [best[d] for d in sorted(best)]


def load_run(run_dir: str | Path) -> RunView:
    """Read a run directory; raise ``RunDirError`` (one line) when it is not one."""
    run_dir = Path(run_dir)
    if not (run_dir / RUN_JSON).is_file():
        raise RunDirError(f"{run_dir} is not a zdim run directory (no {RUN_JSON}): pass the --out folder of a sweep")
    try:
        info = read_json(run_dir / RUN_JSON)
    except ValueError as e:
        raise RunDirError(f"{run_dir / RUN_JSON} is not valid JSON ({e}): rerun the sweep") from e
    rec_file = run_dir / RECOMMENDATION_JSON
    recommendation = read_json(rec_file) if rec_file.is_file() else None
    trials = collect_trials(run_dir)
    view = RunView(run_dir=run_dir, info=info, recommendation=recommendation, trials=trials)
    for t in trials:
        folder = view.trial_folder(t)
        if (folder / "history.csv").is_file():
            view.histories[t["trial"]] = read_history(folder)
    saved = load_inputs(run_dir)
    if saved is not None:
        view.inputs, view.labels, view.inputs_meta = saved
    if (run_dir / TUNING_JSON).is_file():
        try:
            view.tuning = read_json(run_dir / TUNING_JSON)
        except ValueError:
            view.tuning = None
    return view


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
            model = load_model(view.trial_folder(t))
        except ModelFileError:
            out.missing.append(str(t["trial"]))
            continue
        dim = int(t["dim"])
        out.reconstructions[dim] = model.reconstruct(x[:N_PICTURES]).numpy()
        gen = torch.Generator().manual_seed(seed)
        out.samples[dim] = model.sample(N_PICTURES, generator=gen).numpy()
        if dim == rec_dim:
            out.latent = model.transform(x).numpy()
            out.feature_error = ((model.reconstruct(x) - x) ** 2).mean(0).numpy()
    return out
