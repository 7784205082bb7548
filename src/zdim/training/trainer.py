"""Training: ``Trainer`` and ``fit``, by a recipe (``zdim.training.config.TrainConfig``).

The loop runs over tensors held in memory: one random permutation per epoch, batches gathered by
index, no per-sample Python and no host sync per step (the epoch loss is summed on the device and read
once). Validation -ELBO is computed every epoch; early stopping restores the best weights.

What follows the steps of an epoch (divergence, the history, the best weights, early stopping) is
``zdim.training.epoch.Epochs``, the same for every stacked member (``zdim.training.stacked``); when a
training stops or has converged is ``zdim.training.stopping``; the noise-scale levers' arithmetic is
``zdim.training.levers``.
"""

from __future__ import annotations

import copy
import inspect
import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch

from ..errors import TrainingDiverged
from ..evaluation.metrics import neg_elbo
from ..likelihoods import MIN_LOG_SIGMA
from ..models.vae import VAE
from .config import (
    TrainConfig,
    beta_at,
    free_bits_at,
    held_steps,
    hold_steps,
    lever_value,
    lr_at,
    passes,
    resolve_device,
)
from .epoch import Epochs, divergence
from .epoch import FitResult as FitResult  # what fit returns, kept by zdim.training.epoch
from .levers import initial_log_sigma, noise_parameter, residual_log_sigma

EpochCallback = Callable[[int, dict[str, Any]], None]
CALIBRATION_FLOOR = math.exp(MIN_LOG_SIGMA)  # the smallest calibrated noise scale (the likelihood's own floor)


def _calibrates(model: torch.nn.Module) -> bool:
    """Whether ``model`` computes its ELBO with a calibrated noise scale when asked (``VAE.calibrates``, and
    an ``elbo_terms`` that takes ``calibrate``: a subclass may have its own)."""
    elbo_terms = getattr(model, "elbo_terms", None)
    if not getattr(model, "calibrates", False) or not callable(elbo_terms):
        return False
    return "calibrate" in inspect.signature(elbo_terms).parameters


def kl_term(kl_units: torch.Tensor, free_bits: float) -> torch.Tensor:
    """KL penalty from per-sample, per-unit KL (B, K): batch mean per unit, floored at free bits."""
    per_unit = kl_units.mean(0)  # (K,)
    if free_bits > 0:
        per_unit = per_unit.clamp(min=free_bits)
    return per_unit.sum()


@torch.no_grad()
def prepare(
    model: VAE, train: torch.Tensor, val: torch.Tensor, config: TrainConfig, calibrated: bool
) -> tuple[float, dict[str, torch.Tensor]] | None:
    """What a training does to ``model`` before its first step (``Trainer`` and every stacked member alike):
    start its linear paths at probabilistic PCA of ``train`` (``VAEConfig.linear``,
    ``Likelihood.linear_start``), with the noise scale calibrated on ``train`` where it is ``calibrated``;
    then give its noise scale ``config.sigma_init`` where a hold starts at once. Returns the start's
    validation -ELBO on ``val`` and a copy of its weights (a candidate for the best ones, taken before the
    hold sets the noise scale), or None where the model has no linear start."""
    out = None
    noise = noise_parameter(model)
    linear = getattr(getattr(model, "config", None), "linear", False)  # (a stand-in model may have no config)
    start = model.family.linear_start(train, model.latent_dim) if linear else None
    if start is not None:
        model.set_linear_start(start)
        if calibrated and noise is not None:
            noise.copy_(residual_log_sigma(model, train, config.seed, floor=CALIBRATION_FLOOR))
        out = neg_elbo(model, val, seed=config.seed), copy.deepcopy(model.state_dict())
    if noise is not None and config.sigma_init != 1.0 and config.sigma_after == 0:
        noise.copy_(initial_log_sigma(model, train, config.sigma_init))  # saved with the weights (resume-exact)
    return out


class Trainer(Epochs):
    """One VAE's training, an epoch at a time: ``run_epoch()`` until ``done``, then ``finish()``.

    ``fit`` is ``Trainer`` run to the end. Several trainers may be interleaved (settle mode): each keeps
    its optimizer, its shuffling generator and its own stream of the global torch RNG (the
    reparameterization noise), swapped in around each epoch, so a model trained interleaved is the
    model trained alone, bit for bit.
    """

    def __init__(
        self,
        model: VAE,
        train: torch.Tensor,
        val: torch.Tensor,
        config: TrainConfig | None = None,
        *,
        callback: EpochCallback | None = None,
    ) -> None:
        # the levers left at "auto" set for the model's likelihood (WAKEUP_DEFAULTS)
        likelihood = getattr(getattr(model, "config", None), "likelihood", None)
        linear = bool(getattr(getattr(model, "config", None), "linear", False))
        self.config = config = (config or TrainConfig()).resolve(likelihood, linear)
        self.device = resolve_device(config.device)
        self.model, self.val, self.callback = model, val, callback
        torch.manual_seed(config.seed)
        self._rng = torch.get_rng_state()
        self._cuda_rng = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        self.gen = torch.Generator().manual_seed(config.seed)
        model.to(self.device)
        self.train = train.to(self.device)
        self._noise = noise_parameter(model)  # the Gaussian noise scale, where the levers act on it
        if self._noise is None and config.sigma_warmup_epochs:  # no noise scale: nothing to hold or wait for
            self.config = config = replace(config, sigma_warmup_epochs=0.0)
        # calibrated: the noise scale in closed form from the residuals (TrainConfig.noise), not learned
        self._calibrated = config.noise == "calibrated" and self._noise is not None and _calibrates(model)
        start = prepare(model, self.train, self.val, config, self._calibrated)
        self.opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.n = self.train.shape[0]
        self.bs = min(config.batch_size, self.n)
        self.per_pass, self.passes = passes(self.n, self.bs, config)
        self.steps_per_epoch = self.passes * self.per_pass
        self._start(config.warm_epochs)
        if self._noise is not None:  # held from the start (a sleeper's hold moves it later)
            self._release = held_steps(config, self.steps_per_epoch, self.per_pass)
        self.best_state = copy.deepcopy(model.state_dict())
        if start is not None:  # the linear start is a candidate for the best weights (an ELBO, not a warm-up)
            self._start_candidate(*start)

    def _hold_steps(self, epochs: float) -> int:
        return hold_steps(epochs, self.steps_per_epoch, self.per_pass)

    @torch.no_grad()
    def _calibrate(self) -> None:
        """The noise scale that maximizes the expected reconstruction term on the training split (one draw
        of ``z`` per row, from the model's own seed): what the model is validated and saved with."""
        assert self._noise is not None
        self._noise.copy_(residual_log_sigma(self.model, self.train, self.config.seed, floor=CALIBRATION_FLOOR))

    def _validate(self) -> float:
        return neg_elbo(self.model, self.val, seed=self.config.seed)

    def _lr(self) -> float:
        """The learning rate of the next step: the warm-up's, lowered by the plateaus so far."""
        return lr_at(self.config, self.step, self.steps_per_epoch) * self.lr_scale

    def _apply_lr(self) -> None:
        for group in self.opt.param_groups:
            group["lr"] = self._lr()

    def run_epoch(self) -> dict[str, Any]:
        """Train one epoch, validate, keep the best weights; return the epoch's record. Sets ``done`` at
        the epoch cap or when early stopping triggers. Raises ``TrainingDiverged`` on a NaN/inf loss."""
        config, model, device = self.config, self.model, self.device
        t0 = time.perf_counter()
        torch.set_rng_state(self._rng)  # this training's own noise stream
        if self._cuda_rng is not None:
            torch.cuda.set_rng_state(self._cuda_rng, self.device)
        self.epoch += 1
        epoch = self.epoch
        model.train()
        te = time.perf_counter()
        total = torch.zeros((), device=device)
        kl_total = torch.zeros((), device=device)
        beta = config.beta
        bs = self.bs
        self._apply_lr()
        for _ in range(self.passes):
            perm = torch.randperm(self.n, generator=self.gen).to(device)
            for i in range(self.per_pass):
                x = self.train[perm[i * bs : (i + 1) * bs]]
                if config.binarize:
                    x = torch.bernoulli(x)  # dynamic binarization: a new binary sample each time
                beta = beta_at(config, self.step, self.steps_per_epoch)
                if config.lr_warmup_epochs > 0:
                    self._apply_lr()
                if self.step == self._release and self._noise is not None:  # the hold ends: from the residual
                    with torch.no_grad():
                        self._noise.copy_(residual_log_sigma(model, self.train, config.seed))
                held = self._noise is not None and self.step < self._release
                if self._calibrated and not held:
                    rec, kl_units = model.elbo_terms(x, calibrate=True)
                else:
                    rec, kl_units = model.elbo_terms(x)
                loss = rec.mean() + beta * kl_term(kl_units, free_bits_at(config, self.step, self.steps_per_epoch))
                self.opt.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
                if held:
                    self._noise.grad = None  # type: ignore[union-attr]  # held: Adam skips a parameter without one
                self.opt.step()
                total += loss.detach()
                kl_total += kl_units.detach().sum(1).mean()
                self.step += 1
        train_loss = float(total) / self.steps_per_epoch
        train_kl = float(kl_total) / self.steps_per_epoch
        diverged = divergence(epoch, config.lr, train_loss)
        if diverged:  # not validated: the epoch's tail would say the same
            raise TrainingDiverged(diverged)
        if self._calibrated and not (self._noise is not None and self.step < self._release):
            self._calibrate()
        val_loss = self._validate()
        seconds = time.perf_counter() - te
        self._rng = torch.get_rng_state()
        if self._cuda_rng is not None:
            self._cuda_rng = torch.cuda.get_rng_state(self.device)
        record = self._end_epoch(train_loss, val_loss, train_kl, beta, seconds)
        self._seconds += time.perf_counter() - t0
        if self.callback is not None:
            self.callback(epoch, record)
        return record

    def _keep_best(self) -> None:
        self.best_state = copy.deepcopy(self.model.state_dict())

    def _restore_start(self) -> None:
        self.best_state = copy.deepcopy(self._start_state)

    def _wake_up(self) -> None:
        """A model still asleep after epoch ``sigma_after``: its noise scale is set to ``sigma_init`` and
        held for ``sigma_warmup_epochs`` from here (then set from the residual)."""
        config, noise = self.config, self._noise
        if noise is None or (config.sigma_init == 1.0 and not config.sigma_warmup_epochs):
            return
        with torch.no_grad():
            noise.copy_(initial_log_sigma(self.model, self.train, config.sigma_init))
        hold = lever_value(config.sigma_warmup_epochs)
        if hold > 0:
            self._release = self.step + self._hold_steps(hold)
            self._warm_end = max(self._warm_end, self.epoch + math.ceil(hold))

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Everything needed to go on later exactly where this training is: ``(tensors, meta)`` (weights,
        best weights, optimizer moments, noise and shuffling streams; counters and the history)."""
        tensors = {f"model.{k}": v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        tensors |= {f"best.{k}": v.detach().cpu().clone() for k, v in self.best_state.items()}
        for i, st in self.opt.state_dict()["state"].items():
            tensors |= {f"opt.{i}.{k}": v.detach().cpu().clone() for k, v in st.items() if torch.is_tensor(v)}
        if self._start_state is not None and self.epoch < self._warm_end:  # the start is still a candidate
            tensors |= {f"start.{k}": v.detach().cpu().clone() for k, v in self._start_state.items()}
        tensors["rng"], tensors["gen"] = self._rng.clone(), self.gen.get_state()
        if self._cuda_rng is not None:
            tensors["cuda_rng"] = self._cuda_rng.cpu().clone()
        meta = self._progress_meta()
        return tensors, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Go on from a ``state()`` of the same configuration."""

        def part(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

        self.model.load_state_dict(part("model."))
        self.best_state = {k: v.to(self.device) for k, v in part("best.").items()}
        sd = self.opt.state_dict()
        moments: dict[int, dict[str, torch.Tensor]] = {}
        for k, v in part("opt.").items():
            i, name = k.split(".", 1)
            moments.setdefault(int(i), {})[name] = v.to(self.device) if name != "step" else v
        sd["state"] = moments
        self.opt.load_state_dict(sd)
        self._rng = tensors["rng"].clone()
        self.gen.set_state(tensors["gen"].clone())
        if self._cuda_rng is not None and "cuda_rng" in tensors:
            self._cuda_rng = tensors["cuda_rng"].clone()
        self._load_progress(meta)
        start = part("start.")
        self._start_state = {k: v.to(self.device) for k, v in start.items()} if start else None
        if self._start_state is None:
            self._start_val = None

    def finish(self) -> FitResult:
        """Restore the best validation weights, put the model in evaluation mode, return the record."""
        self.done = True
        self.model.load_state_dict(self.best_state)
        self.model.eval()
        self.result.seconds = self._seconds
        return self.result


def fit(
    model: VAE,
    train: torch.Tensor,
    val: torch.Tensor,
    config: TrainConfig | None = None,
    *,
    callback: EpochCallback | None = None,
) -> FitResult:
    """Train ``model`` on ``train`` (N, D), early-stopping on validation -ELBO of ``val`` (M, D).

    ``callback(epoch, record)`` is called after every epoch with the epoch's record (``train_loss``,
    ``val_neg_elbo``, ``beta``, ``seconds``); it may raise to stop training (e.g. Optuna pruning).
    Raises ``TrainingDiverged`` when the loss becomes NaN or infinite. On return the model holds the
    weights of its best validation epoch.
    """
    trainer = Trainer(model, train, val, config, callback=callback)
    while not trainer.done:
        trainer.run_epoch()
    return trainer.finish()
