"""The arithmetic of a stack: M zdim MLP VAEs of one shape as one batched network.

Every weight of the M members is one stacked tensor with a leading member axis, and each ``nn.Linear``
of the M models is one ``torch.baddbmm`` over them (``_BatchedLinear``, whose backward is
``nn.Linear``'s own). Latent sizes are made one shape by padding to the largest size ``K_max``: the
encoder's last layer gets zero rows and the decoder's first layer zero columns for the units a member
does not have (``pad``, ``cut``), and ``mu``/``logvar`` are multiplied by the member's 0/1 unit mask, so
a masked unit has ``mu = logvar = 0``, zero noise, ``z = 0``, a KL of exactly 0 and zero gradients.

``StackedVAE`` owns that layout and the batched forward passes: the ELBO's terms of a training step,
the validation -ELBO and the IWAE scores (``score``). ``zdim.training.stacked.StackedTrainer`` trains it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..evaluation.metrics import ACTIVE_UNIT_THRESHOLD, EVAL_K, LOG_2PI, active_units
from ..likelihoods import MIN_LOG_SIGMA
from ..models.vae import VAE, kl_per_unit

VAL_BATCH = 4096  # rows per chunk of the validation -ELBO (as zdim.evaluation.metrics.neg_elbo)
SCORE_ROWS = 4096  # rows of z decoded at once, all members together, in ``score`` (memory and cache)


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


class StackedVAE:
    """The members ``models`` (zdim MLP ``VAE`` s of one input size, hidden widths and likelihood; latent
    sizes may differ) as one batched network on ``device``: their weights copied into stacked, padded
    tensors (``params``, ``buffers``: each (M, *padded member shape)), with the unit masks ``mask``
    (M, 1, K_max). Each model is moved to ``device``; the stack computes with its own copies."""

    def __init__(self, models: Sequence[VAE], device: torch.device) -> None:
        self.device = device
        template = models[0]
        self.template = template  # one member: its likelihood code is every member's (same config)
        self.likelihood = template.config.likelihood
        self.is_count = template.is_count
        self.ks = [m.latent_dim for m in models]
        self.k_max = k_max = max(self.ks)
        self.m = len(models)
        for model in models:
            model.to(device)
        enc = [n for n, mod in template.encoder.named_children() if isinstance(mod, nn.Linear)]
        dec = [n for n, mod in template.decoder.named_children() if isinstance(mod, nn.Linear)]
        self._enc = [f"encoder.{n}" for n in enc]  # Linear layers in order; SiLU between them
        self._dec = [f"decoder.{n}" for n in dec]
        self.linear = bool(template.config.linear)  # a linear path beside each MLP (VAEConfig.linear)
        # the layers that output the K means and K log-variances (padded by rows), and those that read z
        # (padded by columns)
        self._out_rows = (self._enc[-1] + ".", *(("enc_lin.",) if self.linear else ()))
        self._in_cols = (self._dec[0] + ".weight", *(("dec_lin.weight",) if self.linear else ()))
        self._numbers = template.family.numbers(template.config.input_dim)  # the columns a noise scale acts on
        self._param_names = [n for n, _ in template.named_parameters()]  # Adam's parameter order
        self._buffer_names = [n for n, _ in template.named_buffers()]
        self._sd_names = list(template.state_dict())
        # stacked tensors: parameters (trained) and buffers (library size of count models)
        self.params = {n: self._stack(n, [dict(m.named_parameters())[n] for m in models]) for n in self._param_names}
        self.buffers = {n: self._stack(n, [dict(m.named_buffers())[n] for m in models]) for n in self._buffer_names}
        units = torch.arange(k_max, device=device)
        self.mask = (units < torch.tensor(self.ks, device=device)[:, None]).float().unsqueeze(1)  # (M, 1, K_max)

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
        if name.startswith(self._out_rows):  # weight (2k, h) -> (2K_max, h); bias (2k,) -> (2K_max,)
            out = t.new_zeros((2 * self.k_max, *t.shape[1:]))
            out[self._rows(k).to(t.device)] = t
            return out
        if name in self._in_cols:  # (h, k) -> (h, K_max)
            out = t.new_zeros((t.shape[0], self.k_max))
            out[:, :k] = t
            return out
        return t.clone()

    def cut(self, name: str, t: torch.Tensor, k: int) -> torch.Tensor:
        """The inverse of ``pad``: the stack's slice of tensor ``name`` (padded) -> the member's shape."""
        if k == self.k_max:
            return t
        if name.startswith(self._out_rows):
            return t[self._rows(k).to(t.device)]
        if name in self._in_cols:
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
        xin = h = self.template.family.encoder_input(x)
        for j, layer in enumerate(self._enc):
            h = _linear(h, w[layer + ".weight"], w[layer + ".bias"])
            if j < len(self._enc) - 1:
                h = _silu(h)
        if self.linear:  # as VAE.encode: the MLP's output plus the linear path's
            h = h + _linear(xin, w["enc_lin.weight"], w["enc_lin.bias"])
        # the mask makes the padded units exactly 0 and stops their gradient exactly (grad * 0)
        return h[..., : self.k_max] * mask, h[..., self.k_max :] * mask

    def _decode(self, w: dict[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
        """``z`` (M', ..., K_max) -> decoder output (M', ..., D)."""
        h = z
        for j, layer in enumerate(self._dec):
            h = _linear(h, w[layer + ".weight"], w[layer + ".bias"])
            if j < len(self._dec) - 1:
                h = _silu(h)
        if self.linear:  # as VAE.decode
            h = h + _linear(z, w["dec_lin.weight"], w["dec_lin.bias"])
        return h

    def _log_likelihood(
        self, w: dict[str, torch.Tensor], x: torch.Tensor, out: torch.Tensor, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``log p(x|z)`` summed over features: ``x`` broadcastable to ``out`` (M', ..., R, D) -> (M', ..., R).
        The member's own code (``VAE.log_likelihood``) with its noise scale (or NB dispersion) per member;
        ``noise`` (M', D), where given, replaces the noise scale (a calibrated one)."""
        lead = (out.shape[0],) + (1,) * (out.dim() - 2)
        own = dict(w)
        noise_name = self.template.family.noise
        if noise is not None and noise_name is not None:
            own[noise_name] = noise
        params = {name: own[name].reshape(*lead, -1) for name in self.template.family.params}
        return self.template.log_likelihood(x, out, params=params)

    def calibrated(self, x: torch.Tensor, out: torch.Tensor, param: torch.Tensor, use: torch.Tensor) -> torch.Tensor:
        """Each member's noise scale for a step, (M', D): where ``use`` (M', 1) is true, the one that maximizes
        the likelihood of its batch ``x`` given its decoded means ``out`` (both (M', B, D); as
        ``Likelihood.calibrate``: per numeric column, the log root mean squared residual, at least
        ``MIN_LOG_SIGMA``, detached); elsewhere its own ``param`` (M', D)."""
        g = self._numbers
        with torch.no_grad():
            sq = (x[..., :g] - out[..., :g]).pow(2).mean(1)  # (M', g)
            log_sigma = param.detach().clone()
            log_sigma[:, :g] = 0.5 * sq.clamp(min=math.exp(2.0 * MIN_LOG_SIGMA)).log()
        return torch.where(use, log_sigma, param)

    def elbo_terms(
        self,
        w: dict[str, torch.Tensor],
        x: torch.Tensor,
        eps: torch.Tensor,
        mask: torch.Tensor,
        calibrate: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``VAE.elbo_terms`` of M' members at once: with stacked weights ``w`` (these members' rows of
        ``params``), their batches ``x`` (M', B, D), noise ``eps`` (M', B, K_max, zero at masked units)
        and unit masks ``mask`` (M', 1, K_max): ``-log p(x|z)`` (M', B) and KL per unit (M', B, K_max),
        exactly 0 at masked units. ``calibrate`` (M', 1) bool: the members whose noise scale is calibrated
        on this batch (``VAE.elbo_terms(calibrate=True)``)."""
        mu, logvar = self._encode(w, x, mask)
        z = mu + torch.exp(0.5 * logvar) * eps  # a masked unit: 0 + 1 * 0
        out = self._decode(w, z)
        noise = None
        name = self.template.family.noise
        if calibrate is not None and name is not None:
            noise = self.calibrated(x, out, w[name], calibrate)
        return -self._log_likelihood(w, x, out, noise), kl_per_unit(mu, logvar)

    def _track_library(self, buffers: dict[str, torch.Tensor], x: torch.Tensor) -> None:
        """``VAE.track_library`` per member: fold each member's batch (M', B, D) into its mean library."""
        n = float(x.shape[1])
        mean, seen = buffers["library_mean"], buffers["library_seen"]
        new_seen = seen + n
        mean += (x.sum(-1).mean(-1).to(mean.dtype) - mean) * (n / new_seen)  # the same expression as VAE's
        seen.copy_(new_seen)

    # ------------------------------------------------------------------ validation

    def validation_noise(self, seeds: Sequence[int], nv: int) -> torch.Tensor:
        """The noise of every member's validation -ELBO on ``nv`` rows: ``neg_elbo(model, val,
        seed=seeds[m])`` draws it from a generator seeded afresh each epoch, so it is the same every
        epoch: (M, nv, K_max), member m's drawn in chunks of ``VAL_BATCH`` rows with shape (rows, K_m)."""
        out = torch.zeros((self.m, nv, self.k_max), device=self.device)
        for i, (seed, k) in enumerate(zip(seeds, self.ks)):
            gen = torch.Generator(device=self.device).manual_seed(seed)
            for start in range(0, nv, VAL_BATCH):
                rows = min(VAL_BATCH, nv - start)
                out[i, start : start + rows, :k] = torch.randn(
                    (rows, k), generator=gen, device=self.device, dtype=torch.float32
                )
        return out

    @torch.no_grad()
    def neg_elbo(self, val: torch.Tensor, noise: torch.Tensor, members: list[int]) -> list[float]:
        """Single-sample -ELBO of ``members`` (indices) on ``val`` (N_val, D), with ``noise`` from
        ``validation_noise``: ``zdim.evaluation.metrics.neg_elbo`` per member, all at once on the one shared tensor."""
        idx = torch.tensor(members, device=self.device)
        full = len(members) == self.m
        w = {n: (t if full else t[idx]) for n, t in self.params.items()}
        mask = self.mask if full else self.mask[idx]
        nv = val.shape[0]
        totals = torch.zeros(len(members), dtype=torch.float64, device=self.device)
        for start in range(0, nv, VAL_BATCH):
            xb = val[start : start + VAL_BATCH].float()
            x = xb.expand(len(members), *xb.shape)  # (M', R, D): a view, not a copy per member
            mu, logvar = self._encode(w, x, mask)
            eps = noise[:, start : start + VAL_BATCH]
            if not full:
                eps = eps[idx]
            z = mu + torch.exp(0.5 * logvar) * eps
            rec = -self._log_likelihood(w, xb, self._decode(w, z))  # (M', R)
            totals += (rec + kl_per_unit(mu, logvar).sum(-1)).double().sum(-1)
        return [v / nv for v in totals.tolist()]

    def _scored(self, i: int) -> bool:
        """Whether member ``i`` can be scored (a subclass leaves out a failed one)."""
        return True

    @torch.no_grad()
    def score(
        self,
        x: torch.Tensor,
        *,
        k: int = EVAL_K,
        seed: int = 0,
        threshold: float = ACTIVE_UNIT_THRESHOLD,
        which: Iterable[int] | None = None,
    ) -> list[dict[str, Any] | None]:
        """``zdim.evaluation.metrics.evaluate(model, x, k=k, seed=seed, per_sample=True)`` of every member (of
        ``which``, default all) at once, to float rounding: per member a dict with ``nll`` (IWAE bound
        with ``k`` samples, negated, mean over ``x``), ``active_units`` and ``nll_per_sample`` ((N,)
        float64 on the CPU); None for a member not scored (failed, or not in ``which``).

        ``x`` (N, D) goes to the device once for all members. The noise is drawn as ``evaluate`` draws
        it: a generator seeded ``seed``, (k, B, K_m) per batch of ``20000 // k`` rows, so members of one
        latent size share it.
        """
        chosen = range(self.m) if which is None else sorted(set(which))
        members = [i for i in chosen if self._scored(i)]
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


__all__ = ["StackedVAE", "VAL_BATCH", "SCORE_ROWS"]
