"""Stacked members: several VAEs of one shape trained as one batched model.

The members of a sweep that share an architecture (zdim's MLP ``VAE``, the same input size, hidden
widths and likelihood; latent sizes may differ) and a batch size train together: every weight of the
M members is one stacked tensor with a leading member axis, each ``nn.Linear`` of the M models is one
``torch.baddbmm`` over them, and one optimizer step updates every member at once. What the members
do not share they keep apart, so that each member is the model ``zdim.training.trainer.Trainer`` would have
trained alone (to float rounding, see below):

- its own ``TrainConfig`` (seed, lr, beta, warm-up, free bits, weight decay, patience, epochs);
- its own shuffling generator and permutation per epoch: the members see different batches, so the
  input of a step is (M, B, D), gathered from one training tensor shared by every member;
- its own noise stream: the reparameterization noise of a member is drawn, with its own latent size,
  from a generator that is the stream the plain ``Trainer`` swaps into the global RNG;
- its own Adam state (moments and step count), updated with ``torch.optim.Adam``'s formula
  (``zdim.training.adam``);
- its own epochs: the bookkeeping after the steps is ``Trainer``'s own (``zdim.training.epoch.Epochs``: early
  stopping, divergence, where a member whose loss is NaN fails alone, the history and best weights),
  ``state()``/``load_state()`` in ``Trainer.state()``'s format, ``finish()``.

The batched network (the stacked weights, latent sizes padded to the largest ``K_max`` and masked, the
forward passes and the scores) is ``zdim.training.stacknet.StackedVAE``, which ``StackedTrainer`` extends with
the training: the steps of an epoch, the members' noise streams and Adam moments, their validation.

Exactness: on the CPU the hidden layers are bit for bit ``nn.Linear`` (``baddbmm`` over a batch runs
the same GEMM per member, and the custom backward computes the weight gradient as ``nn.Linear`` does,
``grad^T @ x``); Adam is bit for bit ``torch.optim.Adam``'s single-tensor step. What is not bit for bit
is the padding (a GEMM over 2 K_max columns or a K_max-long contraction may round differently from
one over K) and reductions over the padded latent axis; those differences of one rounding are then
carried along by training, so a stacked member equals its plain training to float tolerance.

Usage::

    stack = StackedTrainer(models, configs, data.train, data.val)
    while not all(m.done for m in stack.members):
        stack.run_epoch()
        scores = stack.score(data.val[:1000])   # evaluate(model, subset, k=10, per_sample=True) per member
    results = [m.finish() for m in stack.members]
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, TrainingDiverged
from ..models.vae import VAE
from .adam import adam_schedule, adam_update
from .config import TrainConfig, beta_at, held_steps, passes, resolve_device
from .epoch import Epochs, FitResult
from .levers import noise_parameter, residual_log_sigma
from .stacknet import StackedVAE
from .trainer import CALIBRATION_FLOOR, _calibrates, prepare

# ----------------------------------------------------------------------------------- which can stack


def stackable(model: nn.Module) -> bool:
    """Whether ``model`` can be a member of a stack: zdim's own MLP ``VAE`` (not a subclass such as
    ``UserVAE`` or ``NestedVAE``, not ``arch="conv"``; with or without a linear path) with float32 weights."""
    return (
        type(model) is VAE and model.config.arch == "mlp" and all(p.dtype == torch.float32 for p in model.parameters())
    )


def _key(model: VAE, config: TrainConfig | None) -> tuple[Any, ...]:
    """What members of one stack share: the shape apart from the latent size, and the batch size and
    device of their training."""
    c = model.config
    shape = (c.input_dim, c.hidden, c.likelihood, c.linear)
    if config is None:
        return shape
    return (*shape, config.batch_size, config.min_epoch_steps, config.noise, str(resolve_device(config.device)))


def groups(models: Sequence[nn.Module], configs: Sequence[TrainConfig] | None = None) -> list[list[int]]:
    """The indices of ``models`` grouped into stacks, in order of first appearance.

    Models that can stack (``stackable``) with the same input size, hidden widths and likelihood (and,
    when ``configs`` are given, the same batch size and device) share a group; any other model is a
    group of its own (train it with ``zdim.training.trainer.Trainer``).
    """
    if configs is not None and len(configs) != len(models):
        raise ConfigError(f"got {len(models)} models but {len(configs)} training configs: give one per model")
    out: list[list[int]] = []
    where: dict[tuple[Any, ...], int] = {}
    for i, model in enumerate(models):
        if not isinstance(model, VAE) or not stackable(model) or _levers(model, configs, i):
            out.append([i])
            continue
        key = _key(model, configs[i] if configs is not None else None)
        if key not in where:
            where[key] = len(out)
            out.append([])
        out[where[key]].append(i)
    return out


STACKED_LEVERS = {"noise"}  # the levers a stack trains: a calibrated noise scale (and a hold from the start with it)


def _levers(model: VAE, configs: Sequence[TrainConfig] | None, i: int) -> bool:
    """Whether member ``i``'s recipe uses a wake-up lever the stack does not train (``TrainConfig.levers``):
    a noise-scale hold that is not from the start of a calibrated noise scale (a sleeper's hold after epoch
    ``sigma_after``, or one whose release sets a learned scale mid-epoch), a ``pca`` start, free bits for
    the first epochs, a learning-rate warm-up. A calibrated noise scale, held from the start or not, stacks."""
    if configs is None:
        return False
    c = configs[i].resolve(model.config.likelihood, model.config.linear)
    acting = set(c.levers(model.config.likelihood, model.config.linear))
    if c.noise == "calibrated" and c.sigma_after == 0 and not isinstance(c.sigma_init, str):
        acting -= {"sigma_init", "sigma_warmup_epochs"}  # a hold from the start of a calibrated scale: stacked
    return bool(acting - STACKED_LEVERS)


def can_stack(models: Sequence[nn.Module], configs: Sequence[TrainConfig] | None = None) -> bool:
    """Whether all of ``models`` (with ``configs``, when given) can train as one ``StackedTrainer``."""
    if not models or not all(isinstance(m, VAE) and stackable(m) for m in models):
        return False
    if configs is not None and any(_levers(m, configs, i) for i, m in enumerate(models)):  # type: ignore[arg-type]
        return False
    return len(groups(models, configs)) == 1


def _calibrated(model: VAE, config: TrainConfig) -> bool:
    """As ``Trainer``: whether ``model``'s noise scale is calibrated, not learned (``TrainConfig.noise``)."""
    return config.noise == "calibrated" and noise_parameter(model) is not None and _calibrates(model)


# ----------------------------------------------------------------------------------- the stack


class StackedTrainer(StackedVAE):
    """Several VAEs of one shape trained as one batched model, an epoch at a time.

    Parameters
    ----------
    models : sequence of VAE
        The members (``can_stack(models, configs)``): zdim ``VAE`` s of the MLP architecture with the
        same input size, hidden widths and likelihood; latent sizes may differ. Each is moved to the
        device; its weights are copied into the stack, which trains the copies and writes them back into
        the module after every epoch (the best ones at ``finish()``).
    configs : sequence of TrainConfig
        One per member, with the same ``batch_size`` and device; everything else may differ.
    train : torch.Tensor
        (N, D) training samples, the same for every member: put on the device once, shared.
    val : torch.Tensor
        (N_val, D) validation samples of the per-epoch -ELBO (early stopping), put on the device once.

    Attributes
    ----------
    members : list of StackedMember
        One per model, in order: each behaves like a ``zdim.training.trainer.Trainer`` (``epoch``, ``done``,
        ``result``, ``asleep``, ``awake``, ``config``, ``model``, ``state()``, ``load_state()``,
        ``finish()``), and has ``failed`` (the divergence message, "" while it is fine). Its ``model``
        is the member's own ``VAE``, written back after every epoch.
    k_max : int
        The largest latent size: every member's latent axis is padded to it.
    """

    def __init__(
        self,
        models: Sequence[VAE],
        configs: Sequence[TrainConfig],
        train: torch.Tensor,
        val: torch.Tensor,
    ) -> None:
        models, configs = list(models), list(configs)
        if len(models) != len(configs):
            raise ConfigError(f"got {len(models)} models but {len(configs)} training configs: give one per model")
        if not can_stack(models, configs):
            raise ConfigError(
                "these models cannot train as one stack: they must be zdim MLP VAEs (not conv, nested or a "
                "custom --model) of the same input size, hidden widths and likelihood, trained with the same "
                "batch size on the same device and without the wake-up levers of TrainConfig.levers (on "
                "Gaussian data they are on by default); see zdim.training.stacked.groups"
            )
        if len({id(m) for m in models}) != len(models):
            raise ConfigError("a model appears twice in the stack: give each member its own VAE")
        device = resolve_device(configs[0].device)
        train, val = train.to(device), val.to(device)
        configs = [c.resolve(m.config.likelihood, m.config.linear) for m, c in zip(models, configs)]
        calibrated = [_calibrated(m, c) for m, c in zip(models, configs)]
        # as Trainer, before the first step: the linear start, the calibrated noise scale, the hold's start
        starts = []
        for model, config, cal in zip(models, configs, calibrated):
            model.to(device)
            starts.append(prepare(model, train, val, config, cal))
        super().__init__(models, device)
        self.train = train  # one tensor shared by every member
        self.val = val
        self.n = int(self.train.shape[0])
        self.bs = min(configs[0].batch_size, self.n)
        self.per_pass, self.passes = passes(self.n, self.bs, configs[0])  # as Trainer
        self.steps_per_epoch = self.passes * self.per_pass
        # best weights and Adam moments, stacked as ``params``: each (M, *padded member shape)
        self.best = {n: t.clone() for n, t in {**self.params, **self.buffers}.items()}
        self.exp_avg = {n: torch.zeros_like(t) for n, t in self.params.items()}
        self.exp_avg_sq = {n: torch.zeros_like(t) for n, t in self.params.items()}
        self.members = [StackedMember(self, i, models[i], configs[i], calibrated[i], starts[i]) for i in range(self.m)]
        # (M, N_val, K_max): the same every epoch, drawn once
        self._val_eps = self.validation_noise([m.config.seed for m in self.members], self.val.shape[0])

    # ------------------------------------------------------------------ one epoch

    def run_epoch(self, which: Iterable[int] | None = None) -> list[dict[str, Any] | None]:
        """Train every member still training (of ``which``, default all) for one epoch, validate them,
        keep their best weights; return one entry per member: the epoch's record (as
        ``Trainer.run_epoch``'s) for a member that trained, None for one that did not (done before, not
        in ``which``) or that diverged in this epoch: that member is ``failed`` (the message
        ``TrainingDiverged`` carries) and ``done``, and the others go on.
        """
        chosen = range(self.m) if which is None else sorted(set(which))
        active = [i for i in chosen if not self.members[i].done]
        records: list[dict[str, Any] | None] = [None] * self.m
        if not active:
            return records
        t0 = time.perf_counter()
        ms = [self.members[i] for i in active]
        for m in ms:
            m.epoch += 1
        full = len(active) == self.m
        idx = torch.tensor(active, device=self.device)

        # the members that train: the stacked tensors themselves, or copies of their rows (a stopped
        # member is not in the computation at all, so it cannot move)
        def rows(t: torch.Tensor) -> torch.Tensor:
            return t if full else t[idx]

        params = {n: rows(t).requires_grad_(True) for n, t in self.params.items()}
        buffers = {n: rows(t) for n, t in self.buffers.items()}
        exp_avg = {n: rows(t) for n, t in self.exp_avg.items()}
        exp_avg_sq = {n: rows(t) for n, t in self.exp_avg_sq.items()}
        mask = rows(self.mask)
        totals = self._train_epoch(ms, params, buffers, exp_avg, exp_avg_sq, mask)
        for n, t in params.items():
            t.requires_grad_(False)
            if not full:
                self.params[n][idx] = t
                self.exp_avg[n][idx] = exp_avg[n]
                self.exp_avg_sq[n][idx] = exp_avg_sq[n]
        if not full:
            for n, t in buffers.items():
                self.buffers[n][idx] = t
        for m in ms:  # each member's own VAE holds its current weights, as a Trainer's model does
            m._write(self.params | self.buffers)
            if m.calibrated and m.step >= m._release:  # as Trainer: calibrated on the training split
                m._calibrate()
        vals = self.neg_elbo(self.val, self._val_eps, active)
        seconds = (time.perf_counter() - t0) / len(active)  # the stack's time, shared out among its members
        for j, m in enumerate(ms):
            train_loss, train_kl, beta = totals[j]
            m._seconds += seconds
            try:  # the epoch's bookkeeping, Trainer's own (zdim.training.epoch)
                records[m.index] = m._end_epoch(train_loss, vals[j], train_kl, beta, seconds)
            except TrainingDiverged as e:  # this member fails alone: no record, done
                m.failed, m.done = str(e), True
        return records

    def _scored(self, i: int) -> bool:
        return not self.members[i].failed

    def _train_epoch(
        self,
        ms: list[StackedMember],
        params: dict[str, torch.Tensor],
        buffers: dict[str, torch.Tensor],
        exp_avg: dict[str, torch.Tensor],
        exp_avg_sq: dict[str, torch.Tensor],
        mask: torch.Tensor,
    ) -> list[tuple[float, float, float]]:
        """The optimizer steps of one epoch for the members ``ms`` (M' of them), whose rows of the
        stacked tensors are ``params`` etc.; returns per member (mean training loss, mean training KL,
        the KL weight of the last step)."""
        device, bs, steps = self.device, self.bs, self.steps_per_epoch
        mc = len(ms)
        # per-step, per-member scalars of the epoch, computed in float64 as Trainer and Adam do, sent once
        betas = [[beta_at(m.config, m.step + s, steps) for m in ms] for s in range(steps)]
        beta_t = torch.tensor(betas, dtype=torch.float32, device=device)  # (S, M')
        lrs = [m.config.lr * m.lr_scale for m in ms]  # each member's rate, lowered by its own plateaus
        neg_step, bc2_sqrt = adam_schedule(lrs, [m.adam_step for m in ms], steps, device)
        free_bits = torch.tensor([m.config.free_bits for m in ms], device=device)[:, None]  # (M', 1)
        fb_any, fb_all = bool((free_bits > 0).any()), bool((free_bits > 0).all())
        wds = [m.config.weight_decay for m in ms]
        wd_t = torch.tensor(wds, device=device)
        binarize = [j for j, m in enumerate(ms) if m.config.binarize]
        names = list(params)
        plist = [params[n] for n in names]
        shapes = {t.dim() for t in plist}
        noise_name = self.template.family.noise
        calibrating = torch.tensor([m.calibrated for m in ms], device=device)[:, None]  # (M', 1)
        # a calibrated or held noise scale is never moved by Adam (Trainer: it has no gradient)
        frozen = (~calibrating).float() if noise_name in params and bool(calibrating.any()) else None
        total = torch.zeros(mc, device=device)
        kl_total = torch.zeros(mc, device=device)
        for s in range(steps):
            i = s % self.per_pass
            if i == 0:  # a pass: one permutation per member from its own shuffling generator, (M', N)
                perm = torch.stack([torch.randperm(self.n, generator=m.gen) for m in ms]).to(device)
            x = self.train[perm[:, i * bs : (i + 1) * bs]]  # (M', B, D): each member its own batch
            for j in binarize:  # dynamic binarization, from the member's own stream (before its noise)
                x[j] = torch.bernoulli(x[j], generator=ms[j].noise)
            if self.is_count:
                self._track_library(buffers, x)
            use = None
            if frozen is not None:  # calibrated from this step on: the hold (if any) has ended
                use = calibrating & torch.tensor([m.step + s >= m._release for m in ms], device=device)[:, None]
            rec, kl_units = self.elbo_terms(params, x, self._noise(ms, x.shape[1]), mask, use)
            per_unit = kl_units.mean(1)  # (M', K_max)
            if fb_any:  # free bits per member; a member without them is left unclamped, as in kl_term
                clamped = per_unit.clamp(min=free_bits)
                per_unit = (clamped if fb_all else torch.where(free_bits > 0, clamped, per_unit)) * mask[:, 0]
            loss = rec.mean(1) + beta_t[s] * per_unit.sum(-1)  # (M',): each member's own loss
            # the members' parameters are disjoint: the gradient of the sum is each member's own gradient
            grads = [
                g if g is not None else torch.zeros_like(p)
                for g, p in zip(torch.autograd.grad(loss.sum(), plist, allow_unused=True), plist)
            ]
            with torch.no_grad():
                scal = {d: (neg_step[s].view(-1, *[1] * (d - 1)), bc2_sqrt[s].view(-1, *[1] * (d - 1))) for d in shapes}
                for n, p, g in zip(names, plist, grads):
                    if any(wds):  # L2 weight decay, as torch.optim.Adam's (coupled) weight_decay
                        g = (
                            g.add(p, alpha=wds[0])
                            if len(set(wds)) == 1
                            else g + p * wd_t.view(-1, *[1] * (p.dim() - 1))
                        )
                    if n == noise_name and frozen is not None:  # no step at all, weight decay included
                        g = g * frozen
                    step_size, bc2 = scal[p.dim()]
                    adam_update(p, g, exp_avg[n], exp_avg_sq[n], step_size, bc2)
            total += loss.detach()
            kl_total += kl_units.detach().sum(-1).mean(-1)
        for m in ms:
            m.step += steps
            m.adam_step += steps
        # one host sync per epoch, as Trainer (its float(total) / steps_per_epoch)
        return [(t / steps, k / steps, betas[-1][j]) for j, (t, k) in enumerate(zip(total.tolist(), kl_total.tolist()))]

    def _noise(self, ms: list[StackedMember], b: int) -> torch.Tensor:
        """Reparameterization noise (M', B, K_max): member j's (B, K_j) drawn from its own stream, as
        ``VAE.reparameterize`` draws it in the plain Trainer; zero at its masked units."""
        draws = [torch.randn((b, m.k), generator=m.noise, device=self.device) for m in ms]
        if all(m.k == self.k_max for m in ms):
            return torch.stack(draws)
        eps = torch.zeros((len(ms), b, self.k_max), device=self.device)
        for j, e in enumerate(draws):
            eps[j, :, : e.shape[1]] = e
        return eps


class StackedMember(Epochs):
    """One member of a ``StackedTrainer``, seen as a ``zdim.training.trainer.Trainer``.

    Attributes
    ----------
    index : int
        The member's row in the stack.
    config : TrainConfig
    k : int
        The member's latent size.
    epoch, step : int
        Epochs done; optimizer steps done (the KL warm-up counts them).
    done : bool
        Finished: early-stopped, at its epoch cap, failed, or ``finish()`` ed.
    failed : str
        The ``TrainingDiverged`` message when its loss became NaN or infinite ("" otherwise).
    awake : int
        First epoch whose training KL reached ``EMPTY_KL`` (0: not yet).
    result : FitResult
        History and best epoch, as ``Trainer.result``.
    gen : torch.Generator
        Its shuffling generator (CPU), seeded ``config.seed`` as ``Trainer.gen``.
    noise : torch.Generator
        Its reparameterization (and binarization) noise on the stack's device: the stream the plain
        ``Trainer`` keeps as the global RNG state, seeded ``config.seed`` as ``torch.manual_seed`` seeds it.
    """

    def __init__(
        self,
        stack: StackedTrainer,
        index: int,
        model: VAE,
        config: TrainConfig,
        calibrated: bool = False,
        start: tuple[float, dict[str, torch.Tensor]] | None = None,
    ) -> None:
        config = config.resolve(model.config.likelihood, model.config.linear)  # as Trainer (can_stack)
        self.stack, self.index, self.config = stack, index, config
        self.calibrated = calibrated  # its noise scale is calibrated (TrainConfig.noise), not learned
        self._model = model
        self.k = model.latent_dim
        device = stack.device
        self.gen = torch.Generator().manual_seed(config.seed)
        self.noise = torch.Generator(device=device).manual_seed(config.seed)
        # Trainer keeps the CPU RNG state beside the CUDA one; on CUDA nothing draws from it (its state
        # stays torch.manual_seed(seed)'s), on the CPU ``noise`` is that stream
        self._cpu_rng = torch.Generator().manual_seed(config.seed).get_state() if device.type == "cuda" else None
        self._start(config.warm_epochs)  # as Trainer: the stopping rules wait for the warm-ups
        if noise_parameter(model) is not None:
            self._release = held_steps(config, stack.steps_per_epoch, stack.per_pass)  # a hold from the start
        self.adam_step = 0
        self.failed = ""
        if start is not None:  # as Trainer: the linear start is a candidate for the best weights
            self._start_candidate(*start)

    def _calibrate(self) -> None:
        """As ``Trainer._calibrate``: the noise scale on the training split, in the member's own model and its
        row of the stack."""
        noise = noise_parameter(self._model)
        assert noise is not None
        value = residual_log_sigma(self._model, self.stack.train, self.config.seed, floor=CALIBRATION_FLOOR)
        with torch.no_grad():
            noise.copy_(value)
            name = self._model.family.noise
            assert name is not None
            self.stack.params[name][self.index] = self.stack.pad(name, value, self.k)

    def _restore_start(self) -> None:
        s, i = self.stack, self.index
        assert self._start_state is not None
        with torch.no_grad():
            for n in s._sd_names:
                s.best[n][i] = s.pad(n, self._start_state[n], self.k)

    # ------------------------------------------------------------------ as Trainer

    @property
    def model(self) -> VAE:
        """The member's own ``VAE``: after every epoch (and ``load_state``) it holds the member's current
        weights, after ``finish()`` its best ones, as a ``Trainer``'s model does. The stack trains its
        own copies; writing into this module does not change them."""
        return self._model

    def _keep_best(self) -> None:
        s, i = self.stack, self.index
        for n, t in (s.params | s.buffers).items():
            s.best[n][i].copy_(t[i])

    def run_epoch(self) -> dict[str, Any] | None:
        """Train this member alone for one epoch (in its stack): its record, or None when it diverged.
        To advance several members, call ``StackedTrainer.run_epoch`` once instead."""
        return self.stack.run_epoch([self.index])[self.index]

    def _tensors(self, source: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The member's ``state_dict`` from stacked tensors ``source`` (current or best), cut to its size."""
        s, i = self.stack, self.index
        return {n: s.cut(n, source[n][i], self.k) for n in s._sd_names}

    def _write(self, source: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for n, t in self._model.state_dict(keep_vars=True).items():
                t.copy_(self.stack.cut(n, source[n][self.index], self.k))

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """As ``Trainer.state()``, in its format: ``(tensors, meta)`` with ``model.*``, ``best.*``,
        ``opt.{i}.exp_avg/exp_avg_sq/step`` (``i`` the parameter's index in ``model.parameters()``),
        ``rng`` (``cuda_rng`` on CUDA) and ``gen``; meta has the counters and the history, and
        ``failed``. A ``Trainer`` can load it, and this member can load a ``Trainer``'s."""
        s, i = self.stack, self.index

        def cpu(t: torch.Tensor) -> torch.Tensor:
            return t.detach().cpu().clone()

        tensors = {f"model.{n}": cpu(t) for n, t in self._tensors(s.params | s.buffers).items()}
        tensors |= {f"best.{n}": cpu(t) for n, t in self._tensors(s.best).items()}
        if self.adam_step:  # torch.optim.Adam has no state before its first step
            for j, n in enumerate(s._param_names):
                tensors[f"opt.{j}.step"] = torch.tensor(float(self.adam_step))
                tensors[f"opt.{j}.exp_avg"] = cpu(s.cut(n, s.exp_avg[n][i], self.k))
                tensors[f"opt.{j}.exp_avg_sq"] = cpu(s.cut(n, s.exp_avg_sq[n][i], self.k))
        if self._start_state is not None and self.epoch < self._warm_end:  # as Trainer: still a candidate
            tensors |= {f"start.{k}": cpu(v) for k, v in self._start_state.items()}
        if self._cpu_rng is None:
            tensors["rng"] = self.noise.get_state()
        else:
            tensors["rng"], tensors["cuda_rng"] = self._cpu_rng.clone(), self.noise.get_state()
        tensors["gen"] = self.gen.get_state()
        meta = self._progress_meta() | {"failed": self.failed}
        return tensors, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Go on from a ``state()`` (this class's or a ``Trainer``'s) of the same configuration."""
        s, i = self.stack, self.index
        with torch.no_grad():
            for n in s._sd_names:
                target = s.params[n] if n in s.params else s.buffers[n]
                target[i] = s.pad(n, tensors[f"model.{n}"], self.k)
                s.best[n][i] = s.pad(n, tensors[f"best.{n}"], self.k)
            steps = 0
            for j, n in enumerate(s._param_names):
                if f"opt.{j}.exp_avg" in tensors:
                    s.exp_avg[n][i] = s.pad(n, tensors[f"opt.{j}.exp_avg"], self.k)
                    s.exp_avg_sq[n][i] = s.pad(n, tensors[f"opt.{j}.exp_avg_sq"], self.k)
                    steps = int(float(tensors[f"opt.{j}.step"]))
                else:
                    s.exp_avg[n][i] = 0.0
                    s.exp_avg_sq[n][i] = 0.0
        self.adam_step = steps
        if self._cpu_rng is None:
            self.noise.set_state(tensors["rng"].clone())
        else:
            self._cpu_rng = tensors["rng"].clone()
            if "cuda_rng" in tensors:
                self.noise.set_state(tensors["cuda_rng"].clone())
        self.gen.set_state(tensors["gen"].clone())
        self._load_progress(meta)
        start = {k[len("start.") :]: v.to(s.device) for k, v in tensors.items() if k.startswith("start.")}
        self._start_state = start or None
        if self._start_state is None:
            self._start_val = None
        self.failed = str(meta.get("failed", ""))
        self._write(s.params | s.buffers)

    def finish(self) -> FitResult:
        """As ``Trainer.finish``: the best validation weights into the member's own ``VAE``, evaluation
        mode, the record."""
        self.done = True
        self._write(self.stack.best)
        self._model.eval()
        self.result.seconds = self._seconds
        return self.result


__all__ = ["StackedTrainer", "StackedMember", "can_stack", "groups", "stackable"]
