"""Nested mode: one ``NestedVAE`` per seed serves every latent size of the grid.

A per-size sweep trains one VAE per (size, seed). A nested sweep trains, per seed, one VAE with the
largest size whose every sample draws a random latent prefix (see ``zdim.models.nested.NestedVAE``); the
size-k trial of the sweep is then the model's first k units, cut out as a plain ``VAE``, evaluated and
finished like any other trial (``zdim.sweeps.records.ledger.Ledger``). The training is paid once per seed instead of
once per (size, seed).

The trained nested model of each seed is saved in the run directory (``RunDir.nested_folder(seed)``:
``nested.safetensors`` and ``nested.json``, the JSON written last), so a resumed sweep cuts the missing
sizes out of it instead of training again. A training that diverged fails every size of its seed once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ...data.dataset import Data
from ...errors import ModelFileError, RunDirError
from ...evaluation.trial import evaluate_trial
from ...models.checkpoints import read_saved, save_model
from ...models.nested import NestedVAE
from ...models.vae import VAEConfig
from ...records import trial_name
from ...training.config import TrainConfig, resolve_device
from ...training.trainer import EpochCallback, FitResult, fit
from ...training.trial import training_record
from ..planning.config import model_config
from ..planning.plan import SweepPlan
from ..records.ledger import Ledger, Outcome, failed

STEM = "nested"  # nested.safetensors (weights) and nested.json (config, checksum, training record)


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
    """The nested model serving ``dims`` for one seed (``train.seed``): read from ``folder`` (the run
    directory's ``nested/seed-S``) when it was trained there with these settings, else trained (and
    saved there). ``vcfg.latent_dim`` must be ``max(dims)``. ``on_train`` is called just before a
    training starts (e.g. to open a progress bar); ``callback`` is passed to ``fit``."""
    found = _load(folder, vcfg, dims, train) if folder is not None else None
    if found is not None:
        return found
    if on_train is not None:
        on_train()
    torch.manual_seed(train.seed)
    model = NestedVAE(vcfg, dims)
    fitted = fit(model, data.train, data.val, train, callback=callback)
    if folder is not None:
        _save(folder, model, fitted, dims, train)
    return model, fitted


@dataclass
class NestedExecutor:
    """Nested mode (see the module docstring). Each finished size is a trial of the run directory."""

    ledger: Ledger

    def run(self, plan: SweepPlan) -> Outcome:
        ledger, cfg, rule = self.ledger, plan.config, plan.stopping_rule()
        data, run, progress = ledger.data, ledger.run, ledger.progress
        grid = cfg.grid()
        done = ledger.done(grid)
        progress.set_total(len(grid))
        progress.set_done(len(done))
        for seed in sorted({s for _, s in grid}):
            missing = [d for d, s in grid if s == seed and (d, s) not in done]
            if not missing:
                continue
            tcfg = replace(cfg.train, seed=seed)
            what = f"nested sizes {list(cfg.dims)}, seed {seed}"

            def on_train(what: str = what, epochs: int = tcfg.epochs) -> None:
                progress.training(what, epochs)

            try:
                big, fitted = nested_fit(
                    data,
                    model_config(data, max(cfg.dims), cfg),
                    cfg.dims,
                    tcfg,
                    run.nested_folder(seed) if run is not None else None,
                    callback=lambda _e, r: progress.epoch(r),
                    on_train=on_train,
                )
            except RunDirError:
                raise
            except Exception as e:  # noqa: BLE001 - the seed's training failed: every size of it fails, once
                for dim in missing:
                    ledger.finish(failed(dim, seed, e))
                continue
            held_out, ref = ledger.held_out(cfg)
            for dim in missing:
                name = trial_name(dim, seed)
                progress.evaluating(name, f"IWAE k={cfg.k} on {held_out.test.shape[0]} held-out samples")
                model = big.prefix_model(dim)
                trained = training_record(fitted, tcfg.patience, rule)
                rec, per_sample = evaluate_trial(
                    model, held_out, dim, seed, cfg.k, trained=trained, nested=True, ref=ref
                )
                ledger.finish(rec, model, fitted.history, per_sample)
        return ledger.outcome(cfg)


__all__ = ["nested_fit", "NestedExecutor"]
