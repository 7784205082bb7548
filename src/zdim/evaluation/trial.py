"""One trial's held-out evaluation, the same for every executor: a trained model's ``TrialRecord`` and
its per-sample held-out NLL (``evaluate_trial``).

The record holds the held-out metrics on the test split, what the model's latents buy over the reference
models (``zdim.evaluation.metrics.Reference``), generation quality, and what its training said of it
(``zdim.training.trial.training_record``, given as ``trained``: this wing sits below training).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..data.dataset import Data
from ..models.vae import VAE, count_parameters
from ..records import TrialRecord, TrialStatus
from .generation import generation_metrics
from .metrics import Reference, evaluate, reference


def evaluate_trial(
    model: VAE,
    data: Data,
    dim: int,
    seed: int,
    k: int,
    *,
    trained: Mapping[str, Any] | None = None,
    nested: bool = False,
    ref: Reference | None = None,
) -> tuple[TrialRecord, np.ndarray]:
    """The record of a trained model: held-out metrics on the test split of ``data``, the training record
    (``trained``: ``zdim.training.trial.training_record``), what its latents buy over ``ref``
    (``zdim.evaluation.metrics.reference`` of ``data``, computed here when not given), and generation
    quality (a metric that cannot be computed never fails the trial); and the (N,) float64 held-out NLL
    of each test sample (paired across the sweep's trials)."""
    t0 = time.perf_counter()
    ev = evaluate(model, data.test, k=k, seed=seed, per_sample=True)
    nll_per_sample = ev.pop("nll_per_sample")
    ref = ref if ref is not None else reference(data.train, data.test, data.likelihood)
    rec = TrialRecord(
        dim=dim,
        seed=seed,
        status=TrialStatus.COMPLETE,
        **ev,
        **dict(trained or {}),
        n_params=count_parameters(model),
        nested=nested,
    )
    per = nll_per_sample.numpy()
    if ref is not None and len(ref.baseline) == len(per):
        rec.baseline_nll, rec.baseline_se = _paired(ref.baseline, per)
        linear, full = ref.linear(dim), ref.full()
        if linear is not None:
            rec.linear_nll, rec.linear_se = _paired(linear, per)
        if full is not None:
            rec.full_nll = float(full.mean())
    try:
        rec.generation.update(generation_metrics(model, data, seed=seed))
    except Exception as e:  # noqa: BLE001 - recorded, never fatal
        rec.generation["gen_error"] = f"{type(e).__name__}: {e}"
    rec.eval_seconds = time.perf_counter() - t0
    return rec, nll_per_sample.numpy()


def _paired(ref: np.ndarray, nll: np.ndarray) -> tuple[float, float]:
    """The mean of ``ref`` over the test samples, and the standard error of its per-sample gap to ``nll``."""
    gap = ref - nll
    return float(ref.mean()), float(gap.std(ddof=1) / math.sqrt(len(gap))) if len(gap) > 1 else 0.0


__all__ = ["evaluate_trial"]
