"""The run directory: layout, atomic writes, checkpoints and loading saved models.

```
runs/NAME/
  run.json              what was asked (data summary + fingerprint, grid, configs, versions)
  study.journal         the Optuna storage, when file-backed
  trials/dim-016-seed-0/model.safetensors, model.json, metrics.json, history.csv
  results.csv           one row per finished trial
  recommendation.json   chosen size, rule, rationale, evidence
  report.html           self-contained report
```
Every file is written through ``atomic_write`` (temporary file in the same folder, fsync, rename), so a
reader sees either the old file or the whole new one. Weights are safetensors; configs are JSON; nothing
is ever unpickled.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .errors import ModelFileError
from .models import VAE, VAEConfig

MODEL_FILE = "model.safetensors"
MODEL_JSON = "model.json"
METRICS_JSON = "metrics.json"
HISTORY_CSV = "history.csv"
RUN_JSON = "run.json"
RESULTS_CSV = "results.csv"
RECOMMENDATION_JSON = "recommendation.json"
INPUTS_FILE = "inputs.safetensors"
REPORT_HTML = "report.html"
FORMAT_VERSION = 1


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Write ``data`` to ``path`` atomically: a temporary sibling, fsync, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def _clean(o: Any) -> Any:
    """Replace NaN/inf floats by None so the JSON is strict (browsers reject NaN)."""
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write(path, json.dumps(_clean(obj), indent=2, default=_json_default) + "\n")


def dumps_json(obj: Any) -> str:
    """``obj`` as strict, indented JSON text (NaN/inf as null), as ``write_json`` writes it."""
    return json.dumps(_clean(obj), indent=2, default=_json_default) + "\n"


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_csv(path: str | os.PathLike[str], rows: list[dict[str, Any]]) -> None:
    """Write dict rows as CSV (columns: union of keys in first-seen order), atomically."""
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write(path, buf.getvalue())


def trial_name(dim: int, seed: int) -> str:
    return f"dim-{dim:03d}-seed-{seed}"


def _sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def save_model(
    model: VAE, folder: str | os.PathLike[str], extra: dict[str, Any] | None = None, stem: str = "model"
) -> None:
    """Save weights (``STEM.safetensors``) and config (``STEM.json``, with the weights' SHA-256 and
    ``extra``) into ``folder``; the JSON is written last."""
    folder = Path(folder)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    raw = st_save(state, metadata={"format": "zdim", "version": str(FORMAT_VERSION)})
    atomic_write(folder / f"{stem}.safetensors", raw)
    meta = {"format_version": FORMAT_VERSION, "config": model.config.to_dict(), "sha256": _sha256(raw)}
    meta.update(extra or {})
    write_json(folder / f"{stem}.json", meta)


def read_saved(folder: str | os.PathLike[str], stem: str = "model") -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The JSON and the checked weights ``save_model`` wrote: ``(meta, state_dict)``; never unpickles.

    Raises ``ModelFileError`` when a file is missing, unreadable or does not match its checksum.
    """
    folder = Path(folder)
    wfile, jfile = folder / f"{stem}.safetensors", folder / f"{stem}.json"
    for f in (wfile, jfile):
        if not f.is_file():
            raise ModelFileError(f"no saved model at {folder}: {f.name} is missing")
    try:
        meta = read_json(jfile)
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except ValueError as e:
        raise ModelFileError(f"{jfile} is not a valid zdim model config ({e}): rerun the trial") from e
    raw = wfile.read_bytes()
    if meta.get("sha256") and meta["sha256"] != _sha256(raw):
        raise ModelFileError(f"{wfile} does not match its checksum (truncated or changed): rerun the trial")
    try:
        state = st_load(raw)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise ModelFileError(f"{wfile} is not a readable safetensors file ({e}): rerun the trial") from e
    return meta, state


def load_model(path: str | os.PathLike[str], device: str = "cpu") -> VAE:
    """Load a saved VAE from a trial folder (or its ``model.safetensors``); never unpickles.

    Raises ``ModelFileError`` when a file is missing, truncated or does not match its config.
    """
    path = Path(path)
    folder = path.parent if path.suffix == ".safetensors" else path
    meta, state = read_saved(folder)
    jfile, wfile = folder / MODEL_JSON, folder / MODEL_FILE
    try:
        config = VAEConfig.from_dict(meta["config"])
    except (ValueError, KeyError, TypeError) as e:
        raise ModelFileError(f"{jfile} is not a valid zdim model config ({e}): rerun the trial") from e
    model = VAE(config)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ModelFileError(f"{wfile} does not fit its config in {jfile}: {e}") from e
    return model.to(device).eval()


def trial_done(folder: str | os.PathLike[str]) -> bool:
    """True when a trial folder holds a finished trial: failed, or complete with a loadable model.

    A truncated or corrupt file makes the trial not done, so a resumed sweep redoes it.
    """
    rec = read_trial(folder)
    if rec is None:
        return False
    if rec["status"] in ("failed", "pruned"):
        return True
    try:
        load_model(folder)
    except ModelFileError:
        return False
    return True


def read_trial(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The metrics record of a finished (complete or failed) trial, or None if absent or corrupt."""
    try:
        rec = read_json(Path(folder) / METRICS_JSON)
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and rec.get("status") in ("complete", "failed", "pruned") else None


def save_history(folder: str | os.PathLike[str], history: list[dict[str, Any]]) -> None:
    write_csv(Path(folder) / HISTORY_CSV, history)


def read_history(folder: str | os.PathLike[str]) -> list[dict[str, float]]:
    try:
        with open(Path(folder) / HISTORY_CSV, encoding="utf-8") as f:
            return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]
    except (OSError, ValueError):
        return []


def save_inputs(
    run_dir: str | os.PathLike[str], x: torch.Tensor, y: np.ndarray | None = None, meta: dict[str, Any] | None = None
) -> None:
    """Save held-out inputs (and labels) the report shows reconstructions of, as safetensors.

    ``meta`` (feature names, label names, likelihood...) goes into the file's string metadata as JSON,
    so ``zdim report`` needs nothing but the run directory.
    """
    tensors = {"x": x.detach().cpu().float().contiguous()}
    if y is not None:
        tensors["y"] = torch.from_numpy(np.ascontiguousarray(np.asarray(y, dtype=np.float64)))
    raw = st_save(tensors, metadata={"format": "zdim-inputs", "meta": json.dumps(meta or {})})
    atomic_write(Path(run_dir) / INPUTS_FILE, raw)


def load_inputs(run_dir: str | os.PathLike[str]) -> tuple[torch.Tensor, np.ndarray | None, dict[str, Any]] | None:
    """``(x, y or None, meta)`` saved by ``save_inputs``, or None when the file is absent or unreadable."""
    path = Path(run_dir) / INPUTS_FILE
    if not path.is_file():
        return None
    try:
        raw = path.read_bytes()
        tensors = st_load(raw)
        with safe_open(path, framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("meta", "{}"))
    except (SafetensorError, ValueError, RuntimeError, OSError):
        return None
    y = tensors["y"].numpy() if "y" in tensors else None
    return tensors["x"], y, meta
