"""The layout of a run directory: the names of zdim's files and folders in it (documented once, in
docs/guide.md, "The run directory"), the entries zdim writes at its top (``OWN_ENTRIES``), and what makes a
folder a zdim run directory (``is_run_dir``: the ``.zdim-run`` marker, or for runs made before it a zdim
``run.json`` and nothing but zdim's own entries). ``zdim.sweeps.records.runs.RunDir`` joins every path from
these names."""

from __future__ import annotations

import os
from pathlib import Path

from ...files import read_json

MARKER = ".zdim-run"
FOLDS_JSON = "folds.json"
FOLDS_CSV = "folds.csv"  # with k folds: every fold's own rows (results.csv holds the rows pooled over the folds)
FOLDS_DIR = "folds"  # with k folds: folds/fold-J, a run directory for each fold after the first
RUN_JSON = "run.json"
STUDY_FILE = "study.journal"
RESULTS_CSV = "results.csv"
RECOMMENDATION_JSON = "recommendation.json"
INPUTS_FILE = "inputs.safetensors"
REPORT_HTML = "report.html"
TUNING_JSON = "tuning.json"
SETTLE_JSON = "settle.json"
SETTLE_DIR = "settle"  # settle mode's checkpoints while it runs (deleted when it has finished)
TRIALS_DIR = "trials"
NESTED_DIR = "nested"
TUNE_DIR = "tune"
METRICS_JSON = "metrics.json"
HISTORY_CSV = "history.csv"
HELDOUT_FILE = "heldout.safetensors"  # per-sample held-out NLL of a trial (paired across the sweep)
# Entries zdim itself writes at the top of a run directory (an older run without the marker may be
# replaced when it holds nothing else).
OWN_ENTRIES = {
    MARKER,
    RUN_JSON,
    STUDY_FILE,
    STUDY_FILE + ".flock",
    RESULTS_CSV,
    RECOMMENDATION_JSON,
    INPUTS_FILE,
    REPORT_HTML,
    TUNING_JSON,
    SETTLE_JSON,
    SETTLE_DIR,
    TRIALS_DIR,
    NESTED_DIR,
    TUNE_DIR,
    FOLDS_DIR,
    FOLDS_JSON,
    FOLDS_CSV,
    "mlruns",
}


def _is_own_entry(name: str) -> bool:
    return name in OWN_ENTRIES or (name.startswith(".") and name.endswith(".tmp"))


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder zdim made: it has the marker, or (older runs) a zdim ``run.json``
    and nothing but zdim's own entries."""
    path = Path(path)
    if not path.is_dir():
        return False
    if (path / MARKER).is_file():
        return True
    try:
        info = read_json(path / RUN_JSON)
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and "zdim_version" in info and all(_is_own_entry(e.name) for e in path.iterdir())


__all__ = [
    "MARKER",
    "FOLDS_JSON",
    "FOLDS_CSV",
    "FOLDS_DIR",
    "RUN_JSON",
    "STUDY_FILE",
    "RESULTS_CSV",
    "RECOMMENDATION_JSON",
    "INPUTS_FILE",
    "REPORT_HTML",
    "TUNING_JSON",
    "SETTLE_JSON",
    "SETTLE_DIR",
    "TRIALS_DIR",
    "NESTED_DIR",
    "TUNE_DIR",
    "METRICS_JSON",
    "HISTORY_CSV",
    "HELDOUT_FILE",
    "OWN_ENTRIES",
    "is_run_dir",
]
