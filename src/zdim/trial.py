"""One trial: seed, build, fit and evaluate one VAE. The only place this is written.

``train`` (seed, build, fit) serves the sweep, ``zdim tune`` and the scikit-learn estimator alike, so
the same data, configuration and seed give the same weights everywhere. ``run_trial`` is the sweep's
trial: ``train`` (or a cut from the seed's nested model), then the held-out evaluation and generation
metrics into a ``TrialRecord``, persisted through the ``RunDir`` at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import optuna
import torch

from .custom import DataInfo, build_model
from .data import Data
from .errors import TrainingDiverged
from .generation import generation_metrics
from .metrics import evaluate
from .models import VAE, VAEConfig, count_parameters
from .nested import nested_fit
from .plan import SweepConfig, eval_data, model_config
from .progress import Progress
from .records import TrialRecord, TrialStatus, trial_name
from .runs import RunDir
from .train import EpochCallback, FitResult, TrainConfig, convergence, fit


def train(
    data: Data,
    vcfg: VAEConfig,
    tcfg: TrainConfig,
    *,
    callback: EpochCallback | None = None,
    model_spec: str | type | None = None,
) -> tuple[VAE, FitResult]:
    """Seed with ``tcfg.seed``, build a ``VAE(vcfg)`` (or the user's model ``model_spec``, see
    ``zdim.custom``), fit it (validation split for early stopping)."""
    torch.manual_seed(tcfg.seed)
    model = build_model(vcfg, DataInfo.from_data(data), model_spec)
    return model, fit(model, data.train, data.val, tcfg, callback=callback)


def evaluate_record(
    model: VAE, data: Data, fitted: FitResult, dim: int, seed: int, k: int, *, patience: int = 0, nested: bool = False
) -> tuple[TrialRecord, torch.Tensor]:
    """The record of a trained model: held-out metrics on the test split, the training record, whether
    it converged, and generation quality (a metric that cannot be computed never fails the trial); and
    the (N,) held-out NLL of each test sample (paired across the sweep's trials, for the bootstrap)."""
    t0 = time.perf_counter()
    ev = evaluate(model, data.test, k=k, seed=seed, per_sample=True)
    nll_per_sample = ev.pop("nll_per_sample")
    converged, improvement = convergence(fitted.history, window=patience or 10)
    rec = TrialRecord(
        dim=dim,
        seed=seed,
        status=TrialStatus.COMPLETE,
        **ev,
        best_epoch=fitted.best_epoch,
        epochs_run=len(fitted.history),
        stopped_early=fitted.stopped_early,
        best_val_neg_elbo=fitted.best_val,
        converged=converged or fitted.stopped_early,
        window_improvement=improvement,
        train_seconds=fitted.seconds,
        n_params=count_parameters(model),
        nested=nested,
    )
    try:
        rec.generation.update(generation_metrics(model, data, seed=seed))
    except Exception as e:  # noqa: BLE001 - recorded, never fatal
        rec.generation["gen_error"] = f"{type(e).__name__}: {e}"
    rec.eval_seconds = time.perf_counter() - t0
    return rec, nll_per_sample


def saved_extra(data: Data) -> dict[str, Any]:
    """What a trial's ``model.json`` keeps of its data: the summary, and the preprocessing that
    ``zdim.load_model`` applies to raw inputs. One place, for every executor."""
    return {"data": data.summary(), "preprocessing": data.preprocessing.to_dict()}


def run_trial(
    data: Data,
    dim: int,
    seed: int,
    cfg: SweepConfig,
    run: RunDir | None,
    *,
    progress: Progress | None = None,
    callback: Callable[[int, dict[str, Any]], None] | None = None,
) -> TrialRecord:
    """Train and evaluate the (``dim``, ``seed``) trial of a sweep; persist it in ``run``; return its record.

    A diverged or failing trial gives a record with status FAILED and the reason; a trial stopped by
    ``callback(epoch, record)`` raising ``optuna.TrialPruned`` has status PRUNED.
    """
    name = trial_name(dim, seed)
    tcfg = replace(cfg.train, seed=seed)
    progress = progress or Progress(False)

    def on_epoch(epoch: int, r: dict[str, Any]) -> None:
        progress.epoch(r)
        if callback is not None:
            callback(epoch, r)

    model: VAE | None = None
    history: list[dict[str, Any]] = []
    per_sample: torch.Tensor | None = None
    try:
        if cfg.nested:
            big, fitted = nested_fit(
                data,
                model_config(data, max(cfg.dims), cfg),
                cfg.dims,
                tcfg,
                run.nested_folder(seed) if run is not None else None,
                callback=on_epoch,
                on_train=lambda: progress.training(f"nested sizes {list(cfg.dims)}, seed {seed}", tcfg.epochs),
            )
            model = big.prefix_model(dim)
        else:
            progress.training(name, tcfg.epochs)
            model, fitted = train(data, model_config(data, dim, cfg), tcfg, callback=on_epoch, model_spec=cfg.model)
        held_out = eval_data(data, cfg)
        progress.evaluating(name, f"IWAE k={cfg.k} on {held_out.test.shape[0]} held-out samples, generation")
        rec, per_sample = evaluate_record(
            model, held_out, fitted, dim, seed, cfg.k, patience=tcfg.patience, nested=cfg.nested
        )
        history = fitted.history
    except TrainingDiverged as e:
        rec = TrialRecord(dim=dim, seed=seed, status=TrialStatus.FAILED, reason=str(e))
    except optuna.TrialPruned as e:
        rec = TrialRecord(dim=dim, seed=seed, status=TrialStatus.PRUNED, reason=str(e) or "pruned")
    except Exception as e:  # noqa: BLE001 - any error in one trial is recorded; the sweep goes on
        rec = TrialRecord(dim=dim, seed=seed, status=TrialStatus.FAILED, reason=f"{type(e).__name__}: {e}")
    if run is not None:
        run.save_trial(
            rec,
            model if rec.complete else None,
            history,
            extra=saved_extra(data),
            per_sample=per_sample,
        )
    return rec


__all__ = ["train", "evaluate_record", "run_trial"]
