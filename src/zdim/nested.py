"""Nested (single-run) sweeps: one ``NestedVAE`` per seed serves every latent size of the grid.

A per-size sweep trains one VAE per (size, seed). A nested sweep trains, per seed, one VAE with the
largest size whose every sample draws a random latent prefix (see ``zdim.models.NestedVAE``); the
size-k trial of the sweep is then the model's first k units, cut out as a plain ``VAE`` and evaluated
and saved like any other trial. The training is paid once per seed instead of once per (size, seed).

The trained nested model is kept in this process (the grid's trials of one seed come one after the
other) and in the run directory (``RunDir.nested_folder(seed)``: ``nested.safetensors`` and ``nested.json``,
the JSON written last), so a resumed sweep cuts the missing sizes out of it instead of training again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from .checkpoints import read_saved, save_model
from .data import Data
from .errors import ModelFileError, RunDirError
from .files import dumps_json
from .models import NestedVAE, VAEConfig
from .train import EpochCallback, FitResult, TrainConfig, fit, resolve_device

STEM = "nested"  # nested.safetensors (weights) and nested.json (config, checksum, training record)

_CACHE: dict[str, tuple[NestedVAE, FitResult] | Exception] = {}
_CACHE_MAX = 16


def _key(data: Data, vcfg: VAEConfig, dims: Sequence[int], train: TrainConfig) -> str:
    return dumps_json(
        {
            "data": data.fingerprint or id(data),
            "model": vcfg.to_dict(),
            "dims": sorted(dims),
            "train": train.to_dict(),
        }
    )


def _load(folder: Path, vcfg: VAEConfig, dims: Sequence[int], train: TrainConfig) -> tuple[NestedVAE, FitResult] | None:
    """The nested model saved in ``folder`` when it was trained with these settings; None when there is
    none or it is unreadable (it is trained again); ``RunDirError`` when it was trained otherwise."""
    try:
        info, state = read_saved(folder, STEM)
    except ModelFileError:
        return None
    saved_train = TrainConfig.from_dict(info["train"]) if isinstance(info.get("train"), dict) else None
    if info.get("dims") != sorted(dims) or saved_train != train or info.get("config") != vcfg.to_dict():
        raise RunDirError(
            f"{folder} holds a nested model trained for sizes {info.get('dims')} with other settings: "
            "resume with the same --dims and flags, or use --overwrite"
        )
    model = NestedVAE(vcfg, dims)
    try:
        model.load_state_dict(state)
        fitted = FitResult(
            history=list(info["history"]),
            best_epoch=int(info["best_epoch"]),
            best_val=float(info["best_val"]),
            stopped_early=bool(info["stopped_early"]),
            seconds=float(info["seconds"]),
        )
    except (RuntimeError, KeyError, TypeError, ValueError):
        return None
    return model.to(resolve_device(train.device)).eval(), fitted


def _save(folder: Path, model: NestedVAE, fitted: FitResult, dims: Sequence[int], train: TrainConfig) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    info = {
        "dims": sorted(dims),
        "train": train.to_dict(),
        "history": fitted.history,
        "best_epoch": fitted.best_epoch,
        "best_val": fitted.best_val,
        "stopped_early": fitted.stopped_early,
        "seconds": fitted.seconds,
    }
    save_model(model, folder, extra=info, stem=STEM)  # nested.json last: it marks the model complete


def nested_fit(
    data: Data,
    vcfg: VAEConfig,
    dims: Sequence[int],
    train: TrainConfig,
    folder: Path | None = None,
    *,
    callback: EpochCallback | None = None,
    on_train: Callable[[], None] | None = None,
) -> tuple[NestedVAE, FitResult]:
    """The nested model serving ``dims`` for one seed (``train.seed``), trained at most once.

    Looked up in this process, then in ``folder`` (the run directory's ``nested/seed-S``); trained (and
    saved there) only when absent.
    ``vcfg.latent_dim`` must be ``max(dims)``. ``on_train`` is called just before a training starts
    (e.g. to open a progress bar); ``callback`` is passed to ``fit``. A training that diverged is
    remembered, and raised again for every size of the seed, without training again.
    """
    key = _key(data, vcfg, dims, train)
    hit = _CACHE.get(key)
    if isinstance(hit, Exception):
        raise hit
    if hit is not None:
        return hit
    found = _load(folder, vcfg, dims, train) if folder is not None else None
    if found is None:
        if on_train is not None:
            on_train()
        torch.manual_seed(train.seed)
        model = NestedVAE(vcfg, dims)
        try:
            fitted = fit(model, data.train, data.val, train, callback=callback)
        except Exception as e:
            _remember(key, e)
            raise
        if folder is not None:
            _save(folder, model, fitted, dims, train)
        found = (model, fitted)
    _remember(key, found)
    return found


def _remember(key: str, value: tuple[NestedVAE, FitResult] | Exception) -> None:
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    _CACHE[key] = value


def clear_cache() -> None:
    """Forget the nested models held in this process (the run directory keeps its own)."""
    _CACHE.clear()


__all__ = ["nested_fit", "clear_cache"]
