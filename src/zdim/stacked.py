"""Stacked members: several VAEs of one shape trained as one batched model.

The members of a sweep that share an architecture (zdim's MLP ``VAE``, the same input size, hidden
widths and likelihood; latent sizes may differ) and a batch size train together: every weight of the
M members is one stacked tensor with a leading member axis, each ``nn.Linear`` of the M models is one
``torch.baddbmm`` over them, and one optimizer step updates every member at once. What the members
do not share they keep apart, so that each member is the model ``zdim.train.Trainer`` would have
trained alone (to float rounding, see below):

- its own ``TrainConfig`` (seed, lr, beta, warm-up, free bits, weight decay, patience, epochs);
- its own shuffling generator and permutation per epoch: the members see different batches, so the
  input of a step is (M, B, D), gathered from one training tensor shared by every member;
- its own noise stream: the reparameterization noise of a member is drawn, with its own latent size,
  from a generator that is the stream the plain ``Trainer`` swaps into the global RNG;
- its own Adam state (moments and step count), updated with ``torch.optim.Adam``'s formula;
- its own early stopping (``zdim.train.stop_early``), divergence (a member whose loss is NaN fails
  alone), best weights, ``state()``/``load_state()`` in ``Trainer.state()``'s format, ``finish()``.

Latent sizes are made one shape by padding to the largest size ``K_max`` of the stack: the encoder's
last layer gets zero rows and the decoder's first layer zero columns for the units a member does not
have, and ``mu``/``logvar`` are multiplied by the member's 0/1 unit mask. A masked unit then has
``mu = logvar = 0``, zero noise, ``z = 0`` and a KL of exactly 0; it feeds nothing to the decoder, and
the gradients of the padding are exactly zero, so Adam leaves it at zero forever.

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

import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError
from .metrics import ACTIVE_UNIT_THRESHOLD, LOG_2PI, active_units
from .models import VAE, kl_per_unit
from .records import EMPTY_KL
from .train import FitResult, Progress, TrainConfig, beta_at, divergence, resolve_device

ADAM_BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults, which zdim.train uses
ADAM_EPS = 1e-8
VAL_BATCH = 4096  # rows per chunk of the validation -ELBO (as zdim.metrics.neg_elbo)
SCORE_ROWS = 4096  # rows of z decoded at once, all members together, in ``score`` (memory and cache)


# ----------------------------------------------------------------------------------- which can stack


def stackable(model: nn.Module) -> bool:
    """Whether ``model`` can be a member of a stack: zdim's own MLP ``VAE`` (not a subclass such as
    ``UserVAE`` or ``NestedVAE``, not ``arch="conv"``) with float32 weights."""
    return (
        type(model) is VAE and model.config.arch == "mlp" and all(p.dtype == torch.float32 for p in model.parameters())
    )


def _key(model: VAE, config: TrainConfig | None) -> tuple[Any, ...]:
    """What members of one stack share: the shape apart from the latent size, and the batch size and
    device of their training."""
    c = model.config
    shape = (c.input_dim, c.hidden, c.likelihood)
    if config is None:
        return shape
    return (*shape, config.batch_size, str(resolve_device(config.device)))


def groups(models: Sequence[nn.Module], configs: Sequence[TrainConfig] | None = None) -> list[list[int]]:
    """The indices of ``models`` grouped into stacks, in order of first appearance.

    Models that can stack (``stackable``) with the same input size, hidden widths and likelihood (and,
    when ``configs`` are given, the same batch size and device) share a group; any other model is a
    group of its own (train it with ``zdim.train.Trainer``).
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


def _levers(model: VAE, configs: Sequence[TrainConfig] | None, i: int) -> bool:
    """Whether member ``i``'s recipe uses a wake-up lever the stack does not train (``TrainConfig.levers``:
    the noise-scale hold of Gaussian data, free bits for the first epochs, a learning-rate warm-up)."""
    return configs is not None and bool(configs[i].levers(model.config.likelihood))


def can_stack(models: Sequence[nn.Module], configs: Sequence[TrainConfig] | None = None) -> bool:
    """Whether all of ``models`` (with ``configs``, when given) can train as one ``StackedTrainer``."""
    if not models or not all(isinstance(m, VAE) and stackable(m) for m in models):
        return False
    if configs is not None and any(_levers(m, configs, i) for i, m in enumerate(models)):  # type: ignore[arg-type]
        return False
    return len(groups(models, configs)) == 1


# ----------------------------------------------------------------------------------- batched layers


class _BatchedLinear(torch.autograd.Function):
    """M linear layers at once: ``x`` (M, R, in), ``weight`` (M, out, in), ``bias`` (M, out) ->
    (M, R, out), ``x[m] @ weight[m].T + bias[m]`` for every member m.

    The backward is written out so that every gradient is computed as ``nn.Linear``'s own
    (``grad_w = grad^T @ x``, ``grad_x = grad @ w``, ``grad_b = grad.sum over rows``): autograd's
    backward of ``baddbmm`` over the transposed weight computes ``(x^T @ grad)^T``, the same numbers
    rounded differently.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        # under autocast the forward ran in bf16/fp16 and ``grad`` has that dtype while the saved
        # inputs are float32: compute in ``grad``'s dtype, as autocast did (a no-op in float32);
        # autograd casts each gradient back to its input's dtype
        x, weight = x.to(grad.dtype), weight.to(grad.dtype)
        gx = torch.bmm(grad, weight) if ctx.needs_input_grad[0] else None
        gw = torch.bmm(grad.transpose(1, 2), x) if ctx.needs_input_grad[1] else None
        gb = grad.sum(1) if ctx.needs_input_grad[2] else None
        return gx, gw, gb


def _silu(h: torch.Tensor) -> torch.Tensor:
    """SiLU, in place where no graph is kept (validation, scores): the activations of M members at once
    are M times larger than one member's, and not writing a second copy saves memory traffic."""
    return F.silu(h, inplace=not torch.is_grad_enabled())


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``_BatchedLinear`` on (M, ..., in): the middle axes are flattened to rows and restored."""
    lead = x.shape[1:-1]
    rows = x.reshape(x.shape[0], -1, x.shape[-1])
    if torch.is_grad_enabled() and (rows.requires_grad or weight.requires_grad or bias.requires_grad):
        out: torch.Tensor = _BatchedLinear.apply(rows, weight, bias)  # type: ignore[no-untyped-call]  # torch leaves Function.apply unannotated
    else:  # no graph needed (validation, scores): the same forward without autograd's bookkeeping
        out = torch.baddbmm(bias.unsqueeze(1), rows, weight.transpose(1, 2))
    return out.reshape(x.shape[0], *lead, out.shape[-1])


# ----------------------------------------------------------------------------------- the stack


class StackedTrainer:
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
        One per model, in order: each behaves like a ``zdim.train.Trainer`` (``epoch``, ``done``,
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
                "Gaussian data they are on by default); see zdim.stacked.groups"
            )
        if len({id(m) for m in models}) != len(models):
            raise ConfigError("a model appears twice in the stack: give each member its own VAE")
        self.device = device = resolve_device(configs[0].device)
        template = models[0]
        self.template = template  # one member: its likelihood code is every member's (same config)
        self.likelihood = template.config.likelihood
        self.is_count = template.is_count
        self.ks = [m.latent_dim for m in models]
        self.k_max = k_max = max(self.ks)
        self.m = n_members = len(models)
        self.train = train.to(device)  # one tensor shared by every member
        self.val = val.to(device)
        self.n = int(self.train.shape[0])
        self.bs = min(configs[0].batch_size, self.n)
        self.steps_per_epoch = max(1, self.n // self.bs)  # as Trainer: the ragged last batch is dropped
        for model in models:
            model.to(device)

        enc = [n for n, mod in template.encoder.named_children() if isinstance(mod, nn.Linear)]
        dec = [n for n, mod in template.decoder.named_children() if isinstance(mod, nn.Linear)]
        self._enc = [f"encoder.{n}" for n in enc]  # Linear layers in order; SiLU between them
        self._dec = [f"decoder.{n}" for n in dec]
        self._param_names = [n for n, _ in template.named_parameters()]  # Adam's parameter order
        self._buffer_names = [n for n, _ in template.named_buffers()]
        self._sd_names = list(template.state_dict())
        # stacked tensors: parameters (trained), buffers (library size of count models), best weights,
        # Adam moments; each (M, *padded member shape)
        self.params = {n: self._stack(n, [dict(m.named_parameters())[n] for m in models]) for n in self._param_names}
        self.buffers = {n: self._stack(n, [dict(m.named_buffers())[n] for m in models]) for n in self._buffer_names}
        self.best = {n: t.clone() for n, t in {**self.params, **self.buffers}.items()}
        self.exp_avg = {n: torch.zeros_like(t) for n, t in self.params.items()}
        self.exp_avg_sq = {n: torch.zeros_like(t) for n, t in self.params.items()}
        units = torch.arange(k_max, device=device)
        self.mask = (units < torch.tensor(self.ks, device=device)[:, None]).float().unsqueeze(1)  # (M, 1, K_max)
        self.members = [StackedMember(self, i, models[i], configs[i]) for i in range(n_members)]
        self._val_eps = self._validation_noise()  # (M, N_val, K_max): the same every epoch, drawn once

    # ------------------------------------------------------------------ layout of one member's tensors

    def _rows(self, k: int) -> torch.Tensor:
        """Rows of the padded encoder output layer that a size-``k`` member uses: its ``k`` means at
        ``0..k-1`` and its ``k`` log-variances at ``K_max..K_max+k-1`` (``chunk(2)`` still splits them)."""
        return torch.cat([torch.arange(k), self.k_max + torch.arange(k)])

    def pad(self, name: str, t: torch.Tensor, k: int) -> torch.Tensor:
        """A size-``k`` member's tensor ``name`` (its ``state_dict`` shape) in the stack's padded shape."""
        t = t.detach().to(self.device, torch.float32)
        if k == self.k_max:
            return t.clone()
        if name.startswith(self._enc[-1] + "."):  # weight (2k, h) -> (2K_max, h); bias (2k,) -> (2K_max,)
            out = t.new_zeros((2 * self.k_max, *t.shape[1:]))
            out[self._rows(k).to(t.device)] = t
            return out
        if name == self._dec[0] + ".weight":  # (h, k) -> (h, K_max)
            out = t.new_zeros((t.shape[0], self.k_max))
            out[:, :k] = t
            return out
        return t.clone()

    def cut(self, name: str, t: torch.Tensor, k: int) -> torch.Tensor:
        """The inverse of ``pad``: the stack's slice of tensor ``name`` (padded) -> the member's shape."""
        if k == self.k_max:
            return t
        if name.startswith(self._enc[-1] + "."):
            return t[self._rows(k).to(t.device)]
        if name == self._dec[0] + ".weight":
            return t[:, :k]
        return t

    def _stack(self, name: str, tensors: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack([self.pad(name, t, k) for t, k in zip(tensors, self.ks)])

    # ------------------------------------------------------------------ the batched model

    def _encode(
        self, w: dict[str, torch.Tensor], x: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (M', R, D) -> ``mu``, ``logvar`` (M', R, K_max), zero at each member's masked units.
        ``mask`` is (M', 1, K_max)."""
        h = self.template.family.encoder_input(x)
        for j, layer in enumerate(self._enc):
            h = _linear(h, w[layer + ".weight"], w[layer + ".bias"])
            if j < len(self._enc) - 1:
                h = _silu(h)
        # the mask makes the padded units exactly 0 and stops their gradient exactly (grad * 0)
        return h[..., : self.k_max] * mask, h[..., self.k_max :] * mask

    def _decode(self, w: dict[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
        """``z`` (M', ..., K_max) -> decoder output (M', ..., D)."""
        h = z
        for j, layer in enumerate(self._dec):
            h = _linear(h, w[layer + ".weight"], w[layer + ".bias"])
            if j < len(self._dec) - 1:
                h = _silu(h)
        return h

    def _log_likelihood(self, w: dict[str, torch.Tensor], x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``log p(x|z)`` summed over features: ``x`` broadcastable to ``out`` (M', ..., R, D) -> (M', ..., R).
        The member's own code (``VAE.log_likelihood``) with its noise scale (or NB dispersion) per member."""
        lead = (out.shape[0],) + (1,) * (out.dim() - 2)
        params = {name: w[name].reshape(*lead, -1) for name in self.template.family.params}
        return self.template.log_likelihood(x, out, params=params)

    def elbo_terms(
        self, w: dict[str, torch.Tensor], x: torch.Tensor, eps: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``VAE.elbo_terms`` of M' members at once: with stacked weights ``w`` (these members' rows of
        ``params``), their batches ``x`` (M', B, D), noise ``eps`` (M', B, K_max, zero at masked units)
        and unit masks ``mask`` (M', 1, K_max): ``-log p(x|z)`` (M', B) and KL per unit (M', B, K_max),
        exactly 0 at masked units."""
        mu, logvar = self._encode(w, x, mask)
        z = mu + torch.exp(0.5 * logvar) * eps  # a masked unit: 0 + 1 * 0
        return -self._log_likelihood(w, x, self._decode(w, z)), kl_per_unit(mu, logvar)

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
        vals = self._val_neg_elbo(active)
        seconds = (time.perf_counter() - t0) / len(active)  # the stack's time, shared out among its members
        for j, m in enumerate(ms):
            train_loss, train_kl, beta = totals[j]
            records[m.index] = m._end_epoch(train_loss, vals[j], train_kl, beta, seconds)
        return records

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
        # one permutation per member from its own shuffling generator: (M', N), indices into the shared data
        perm = torch.stack([torch.randperm(self.n, generator=m.gen) for m in ms]).to(device)
        # per-step, per-member scalars of the epoch, computed in float64 as Trainer and Adam do, sent once
        betas = [[beta_at(m.config, m.step + s, steps) for m in ms] for s in range(steps)]
        beta_t = torch.tensor(betas, dtype=torch.float32, device=device)  # (S, M')
        neg_step, bc2_sqrt = self._adam_schedule(ms, steps)  # (S, M') each
        free_bits = torch.tensor([m.config.free_bits for m in ms], device=device)[:, None]  # (M', 1)
        fb_any, fb_all = bool((free_bits > 0).any()), bool((free_bits > 0).all())
        wds = [m.config.weight_decay for m in ms]
        wd_t = torch.tensor(wds, device=device)
        binarize = [j for j, m in enumerate(ms) if m.config.binarize]
        names = list(params)
        plist = [params[n] for n in names]
        shapes = {t.dim() for t in plist}
        total = torch.zeros(mc, device=device)
        kl_total = torch.zeros(mc, device=device)
        for s in range(steps):
            x = self.train[perm[:, s * bs : (s + 1) * bs]]  # (M', B, D): each member its own batch
            for j in binarize:  # dynamic binarization, from the member's own stream (before its noise)
                x[j] = torch.bernoulli(x[j], generator=ms[j].noise)
            if self.is_count:
                self._track_library(buffers, x)
            rec, kl_units = self.elbo_terms(params, x, self._noise(ms, x.shape[1]), mask)
            per_unit = kl_units.mean(1)  # (M', K_max)
            if fb_any:  # free bits per member; a member without them is left unclamped, as in kl_term
                clamped = per_unit.clamp(min=free_bits)
                per_unit = (clamped if fb_all else torch.where(free_bits > 0, clamped, per_unit)) * mask[:, 0]
            loss = rec.mean(1) + beta_t[s] * per_unit.sum(-1)  # (M',): each member's own loss
            # the members' parameters are disjoint: the gradient of the sum is each member's own gradient
            grads = torch.autograd.grad(loss.sum(), plist)
            with torch.no_grad():
                scal = {d: (neg_step[s].view(-1, *[1] * (d - 1)), bc2_sqrt[s].view(-1, *[1] * (d - 1))) for d in shapes}
                for n, p, g in zip(names, plist, grads):
                    if any(wds):  # L2 weight decay, as torch.optim.Adam's (coupled) weight_decay
                        g = (
                            g.add(p, alpha=wds[0])
                            if len(set(wds)) == 1
                            else g + p * wd_t.view(-1, *[1] * (p.dim() - 1))
                        )
                    step_size, bc2 = scal[p.dim()]
                    _adam_update(p, g, exp_avg[n], exp_avg_sq[n], step_size, bc2)
            total += loss.detach()
            kl_total += kl_units.detach().sum(-1).mean(-1)
        for m in ms:
            m.step += steps
            m.adam_step += steps
        # one host sync per epoch, as Trainer (its float(total) / steps_per_epoch)
        return [(t / steps, k / steps, betas[-1][j]) for j, (t, k) in enumerate(zip(total.tolist(), kl_total.tolist()))]

    def _adam_schedule(self, ms: list[StackedMember], steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per step of the coming epoch and per member: ``-lr / (1 - beta1^t)`` and
        ``sqrt(1 - beta2^t)`` at the member's own Adam step ``t``, computed in float64 as
        ``torch.optim.Adam`` does (then used in float32, as Adam's scalars are): (S, M') each."""
        b1, b2 = ADAM_BETAS
        neg, bc2 = [], []
        for s in range(steps):
            ts = [float(m.adam_step + s + 1) for m in ms]
            neg.append([-(m.config.lr / (1 - b1**t)) for m, t in zip(ms, ts)])
            bc2.append([(1 - b2**t) ** 0.5 for t in ts])
        dev = self.device
        return torch.tensor(neg, dtype=torch.float32, device=dev), torch.tensor(bc2, dtype=torch.float32, device=dev)

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

    def _track_library(self, buffers: dict[str, torch.Tensor], x: torch.Tensor) -> None:
        """``VAE.track_library`` per member: fold each member's batch (M', B, D) into its mean library."""
        n = float(x.shape[1])
        mean, seen = buffers["library_mean"], buffers["library_seen"]
        new_seen = seen + n
        mean += (x.sum(-1).mean(-1).to(mean.dtype) - mean) * (n / new_seen)  # the same expression as VAE's
        seen.copy_(new_seen)

    # ------------------------------------------------------------------ validation

    def _validation_noise(self) -> torch.Tensor:
        """The noise of every member's validation -ELBO: ``neg_elbo(model, val, seed=config.seed)``
        draws it from a generator seeded afresh each epoch, so it is the same every epoch:
        (M, N_val, K_max), member m's drawn in chunks of ``VAL_BATCH`` rows with shape (rows, K_m)."""
        nv = self.val.shape[0]
        out = torch.zeros((self.m, nv, self.k_max), device=self.device)
        for i, m in enumerate(self.members):
            gen = torch.Generator(device=self.device).manual_seed(m.config.seed)
            for start in range(0, nv, VAL_BATCH):
                rows = min(VAL_BATCH, nv - start)
                out[i, start : start + rows, : m.k] = torch.randn(
                    (rows, m.k), generator=gen, device=self.device, dtype=torch.float32
                )
        return out

    @torch.no_grad()
    def _val_neg_elbo(self, members: list[int]) -> list[float]:
        """Single-sample validation -ELBO of ``members`` (indices): ``zdim.metrics.neg_elbo`` per member,
        all at once on the one shared validation tensor."""
        idx = torch.tensor(members, device=self.device)
        full = len(members) == self.m
        w = {n: (t if full else t[idx]) for n, t in self.params.items()}
        mask = self.mask if full else self.mask[idx]
        nv = self.val.shape[0]
        totals = torch.zeros(len(members), dtype=torch.float64, device=self.device)
        for start in range(0, nv, VAL_BATCH):
            xb = self.val[start : start + VAL_BATCH].float()
            x = xb.expand(len(members), *xb.shape)  # (M', R, D): a view, not a copy per member
            mu, logvar = self._encode(w, x, mask)
            eps = self._val_eps[:, start : start + VAL_BATCH]
            if not full:
                eps = eps[idx]
            z = mu + torch.exp(0.5 * logvar) * eps
            rec = -self._log_likelihood(w, xb, self._decode(w, z))  # (M', R)
            totals += (rec + kl_per_unit(mu, logvar).sum(-1)).double().sum(-1)
        return [v / nv for v in totals.tolist()]

    @torch.no_grad()
    def score(
        self,
        x: torch.Tensor,
        *,
        k: int = 10,
        seed: int = 0,
        threshold: float = ACTIVE_UNIT_THRESHOLD,
        which: Iterable[int] | None = None,
    ) -> list[dict[str, Any] | None]:
        """``zdim.metrics.evaluate(model, x, k=k, seed=seed, per_sample=True)`` of every member (of
        ``which``, default all) at once, to float rounding: per member a dict with ``nll`` (IWAE bound
        with ``k`` samples, negated, mean over ``x``), ``active_units`` and ``nll_per_sample`` ((N,)
        float64 on the CPU); None for a member not scored (failed, or not in ``which``).

        ``x`` (N, D) goes to the device once for all members. The noise is drawn as ``evaluate`` draws
        it: a generator seeded ``seed``, (k, B, K_m) per batch of ``20000 // k`` rows, so members of one
        latent size share it.
        """
        chosen = range(self.m) if which is None else sorted(set(which))
        members = [i for i in chosen if not self.members[i].failed]
        out: list[dict[str, Any] | None] = [None] * self.m
        if not members:
            return out
        dev = self.device
        x = x.to(dev)
        idx = torch.tensor(members, device=dev)
        full = len(members) == self.m
        w = {n: (t if full else t[idx]) for n, t in self.params.items()}
        mask = self.mask if full else self.mask[idx]
        ks = [self.ks[i] for i in members]
        mc, n = len(members), x.shape[0]
        bs = max(1, 20000 // max(k, 1))
        gens = {kk: torch.Generator(device=dev).manual_seed(seed) for kk in set(ks)}
        nll_sum = [0.0] * mc
        nlls, mus = [], []
        for start in range(0, n, bs):
            xb = x[start : start + bs].float()
            b = xb.shape[0]
            mu, logvar = self._encode(w, xb.expand(mc, *xb.shape), mask)  # (M', B, K_max)
            draws = {kk: torch.randn((k, b, kk), generator=g, device=dev, dtype=mu.dtype) for kk, g in gens.items()}
            eps = torch.zeros((mc, k, b, self.k_max), device=dev)
            for j, kk in enumerate(ks):
                eps[j, ..., :kk] = draws[kk]
            mu4, logvar4 = mu.unsqueeze(1), logvar.unsqueeze(1)
            z = mu4 + torch.exp(0.5 * logvar4) * eps  # (M', k, B, K_max)
            # decode a few of the k samples at a time: about SCORE_ROWS rows of all members together
            per = max(1, SCORE_ROWS // (mc * b))
            log_px_z = torch.cat(
                [self._log_likelihood(w, xb, self._decode(w, z[:, i : i + per])) for i in range(0, k, per)], 1
            )  # (M', k, B)
            m4 = mask.unsqueeze(1)  # (M', 1, 1, K_max): a masked unit is in neither log p(z) nor log q(z|x)
            log_pz = -0.5 * ((z.pow(2) + LOG_2PI) * m4).sum(-1)
            log_qz = -0.5 * (((z - mu4).pow(2) * torch.exp(-logvar4) + logvar4 + LOG_2PI) * m4).sum(-1)
            log_w = log_px_z + log_pz - log_qz
            bound = (torch.logsumexp(log_w, dim=1) - math.log(k)).double()  # (M', B)
            for j, v in enumerate(bound.sum(-1).tolist()):
                nll_sum[j] -= v
            nlls.append(-bound.cpu())
            mus.append(mu.float().cpu())
        per_sample = torch.cat(nlls, 1)
        mu_all = torch.cat(mus, 1)
        for j, i in enumerate(members):
            out[i] = {
                "nll": nll_sum[j] / n,
                "active_units": active_units(mu_all[j, :, : ks[j]], threshold),
                "nll_per_sample": per_sample[j].clone(),
            }
        return out


def _adam_update(
    p: torch.Tensor,
    g: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    neg_step_size: torch.Tensor,
    bc2_sqrt: torch.Tensor,
) -> None:
    """One ``torch.optim.Adam`` step (single-tensor, no amsgrad) of stacked ``p`` (M', ...) in place,
    with per-member ``-lr / (1 - beta1^t)`` and ``sqrt(1 - beta2^t)`` (M', 1, ...).

    Adam computes ``p += -step_size * exp_avg / denom`` as ``addcdiv_(exp_avg, denom, value=-step_size)``,
    i.e. ``p + (value * exp_avg) / denom``; the same operations in the same order with a per-member
    ``value`` give the same float32 numbers.
    """
    b1, b2 = ADAM_BETAS
    exp_avg.lerp_(g, 1 - b1)
    exp_avg_sq.mul_(b2).addcmul_(g, g, value=1 - b2)
    denom = (exp_avg_sq.sqrt() / bc2_sqrt).add_(ADAM_EPS)
    p.addcdiv_(exp_avg * neg_step_size, denom)


class StackedMember(Progress):
    """One member of a ``StackedTrainer``, seen as a ``zdim.train.Trainer``.

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

    def __init__(self, stack: StackedTrainer, index: int, model: VAE, config: TrainConfig) -> None:
        config = config.resolve(model.config.likelihood)  # as Trainer: no lever acts (can_stack)
        self.stack, self.index, self.config = stack, index, config
        self._model = model
        self.k = model.latent_dim
        device = stack.device
        self.gen = torch.Generator().manual_seed(config.seed)
        self.noise = torch.Generator(device=device).manual_seed(config.seed)
        # Trainer keeps the CPU RNG state beside the CUDA one; on CUDA nothing draws from it (its state
        # stays torch.manual_seed(seed)'s), on the CPU ``noise`` is that stream
        self._cpu_rng = torch.Generator().manual_seed(config.seed).get_state() if device.type == "cuda" else None
        self._start(config.warm_epochs)  # as Trainer: the stopping rules wait for the KL warm-up
        self.adam_step = 0
        self.failed = ""

    # ------------------------------------------------------------------ as Trainer

    @property
    def model(self) -> VAE:
        """The member's own ``VAE``: after every epoch (and ``load_state``) it holds the member's current
        weights, after ``finish()`` its best ones, as a ``Trainer``'s model does. The stack trains its
        own copies; writing into this module does not change them."""
        return self._model

    def _end_epoch(
        self, train_loss: float, val_loss: float, train_kl: float, beta: float, seconds: float
    ) -> dict[str, Any] | None:
        """The bookkeeping of ``Trainer.run_epoch`` after the steps: divergence, record, best weights,
        early stopping. Returns the record, or None when the member diverged (then it is ``failed``)."""
        epoch = self.epoch
        self._seconds += seconds
        diverged = divergence(epoch, self.config.lr, train_loss) or divergence(
            epoch, self.config.lr, train_loss, val_loss
        )
        if diverged:
            self.failed, self.done = diverged, True
            return None
        record = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_neg_elbo": val_loss,
            "train_kl": train_kl,
            "beta": beta,
            "seconds": seconds,
        }
        result = self.result
        if self._record(record):
            s = self.stack
            for n, t in (s.params | s.buffers).items():
                s.best[n][self.index].copy_(t[self.index])
        if not self.awake and train_kl >= EMPTY_KL:
            self.awake = epoch
        if self._stop_early(epoch):
            result.stopped_early = True
            self.done = True
        elif epoch >= self.config.epochs:
            self.done = True
        return record

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
        self._release = -1  # the stack holds no noise scale (can_stack)
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
