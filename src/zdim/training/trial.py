"""One trial's training, the same for every caller: seed, build, fit (``train``), and what the training
says of the trial (``training_record``: its best epoch, whether it converged, ...).

``train`` serves the sweep's executors, ``zdim tune`` and the scikit-learn estimator alike, so the same
data, configuration and seed give the same weights everywhere. The held-out evaluation of the trained
model is ``zdim.evaluation.trial.evaluate_trial``, which takes ``training_record`` into the trial's record.
"""

from __future__ import annotations

from typing import Any

import torch

from ..data.dataset import Data
from ..models.custom import DataInfo, build_model
from ..models.vae import VAE, VAEConfig
from .config import TrainConfig
from .stopping import CONVERGENCE_WINDOW, RelativeGain, StoppingRule
from .trainer import EpochCallback, FitResult, fit


def train(
    data: Data,
    vcfg: VAEConfig,
    tcfg: TrainConfig,
    *,
    callback: EpochCallback | None = None,
    model_spec: str | type | None = None,
) -> tuple[VAE, FitResult]:
    """Seed with ``tcfg.seed``, build a ``VAE(vcfg)`` (or the user's model ``model_spec``, see
    ``zdim.models.custom``), fit it (validation split for early stopping)."""
    torch.manual_seed(tcfg.seed)
    model = build_model(vcfg, DataInfo.from_data(data), model_spec)
    return model, fit(model, data.train, data.val, tcfg, callback=callback)


def training_record(fitted: FitResult, patience: int = 0, rule: type[StoppingRule] = RelativeGain) -> dict[str, Any]:
    """What a finished training says of its trial (``TrialRecord`` fields): its best epoch, the epochs it
    ran, whether it stopped early, its best validation -ELBO, whether it converged and by how much its
    score still fell (``rule`` over ``patience`` epochs, ``CONVERGENCE_WINDOW`` when patience is off: the
    plan's ``--stopping``), and its seconds."""
    judge, scores = rule(window=patience or CONVERGENCE_WINDOW), RelativeGain.scores(fitted.history)
    return {
        "best_epoch": fitted.best_epoch,
        "epochs_run": len(fitted.history),
        "stopped_early": fitted.stopped_early,
        "best_val_neg_elbo": fitted.best_val,
        "converged": judge.converged(scores, stopped_early=fitted.stopped_early),
        "window_improvement": judge.improvement(scores),
        "train_seconds": fitted.seconds,
    }


__all__ = ["train", "training_record"]
