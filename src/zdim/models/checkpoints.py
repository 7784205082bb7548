"""The checkpoint format: safetensors for tensors, JSON for configs; nothing is ever unpickled.

``save_model`` writes ``STEM.safetensors`` then ``STEM.json`` (the config, the weights' SHA-256 and any
extra record), the JSON last, so its presence marks a complete save. ``read_saved`` checks the checksum
before reading a tensor; ``load_vae`` rebuilds the ``VAE`` (internal code, model units). The public
``zdim.load_model`` (``zdim.saved``) wraps it for raw data. ``save_inputs``/``load_inputs`` keep the
held-out samples the report draws.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..errors import ModelFileError
from ..files import atomic_write, read_json, write_json
from .custom import build_from_meta, model_meta
from .vae import VAE

if TYPE_CHECKING:
    pass

MODEL_FILE = "model.safetensors"
MODEL_JSON = "model.json"
FORMAT_VERSION = 1


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
    meta.update(model_meta(model))
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


def folder_of(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    return path.parent if path.suffix in (".safetensors", ".json") else path


def rebuild(folder: Path, meta: dict[str, Any], state: dict[str, torch.Tensor], trust_code: bool) -> VAE:
    jfile, wfile = folder / MODEL_JSON, folder / MODEL_FILE
    try:
        model = build_from_meta(meta, trust_code=trust_code)
    except ModelFileError:
        raise  # its own one line (e.g. a user class that needs trust_code=True)
    except (ValueError, KeyError, TypeError) as e:
        raise ModelFileError(f"{jfile} is not a valid zdim model config ({e}): rerun the trial") from e
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ModelFileError(f"{wfile} does not fit its config in {jfile}: {e}") from e
    return model


def load_vae(path: str | os.PathLike[str], device: str = "cpu", *, trust_code: bool = False) -> VAE:
    """The torch ``VAE`` saved in a trial folder (or its ``model.safetensors``), in evaluation mode;
    never unpickles. Internal: it takes and gives model units (see ``load_model`` for raw data).

    Raises ``ModelFileError`` when a file is missing, truncated or does not match its config.
    """
    folder = folder_of(path)
    meta, state = read_saved(folder)
    return rebuild(folder, meta, state, trust_code).to(device).eval()


def save_inputs(
    path: str | os.PathLike[str], x: torch.Tensor, y: np.ndarray | None = None, meta: dict[str, Any] | None = None
) -> None:
    """Save held-out inputs (and labels) to the safetensors file ``path``.

    ``meta`` (feature names, label names, likelihood...) goes into the file's string metadata as JSON,
    so the report needs nothing but the run directory.
    """
    tensors = {"x": x.detach().cpu().float().contiguous()}
    if y is not None:
        tensors["y"] = torch.from_numpy(np.ascontiguousarray(np.asarray(y, dtype=np.float64)))
    raw = st_save(tensors, metadata={"format": "zdim-inputs", "meta": json.dumps(meta or {})})
    atomic_write(path, raw)


def load_inputs(path: str | os.PathLike[str]) -> tuple[torch.Tensor, np.ndarray | None, dict[str, Any]] | None:
    """``(x, y or None, meta)`` saved by ``save_inputs``, or None when the file is absent or unreadable."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        tensors = st_load(path.read_bytes())
        with safe_open(path, framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("meta", "{}"))
    except (SafetensorError, ValueError, RuntimeError, OSError):
        return None
    y = tensors["y"].numpy() if "y" in tensors else None
    return tensors["x"], y, meta


__all__ = [
    "save_model",
    "read_saved",
    "rebuild",
    "folder_of",
    "load_vae",
    "save_inputs",
    "load_inputs",
    "MODEL_FILE",
    "MODEL_JSON",
]
