"""Adam over stacked tensors: every member of a ``zdim.training.stacked.StackedTrainer`` with its own learning
rate and step count, in one in-place update per parameter.

Bit for bit ``torch.optim.Adam``'s single-tensor step (no amsgrad), which ``zdim.training.trainer.Trainer`` uses:
the per-member scalars are computed in float64 as Adam computes its own, then used in float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

ADAM_BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults, which zdim.training.trainer uses
ADAM_EPS = 1e-8


def adam_schedule(
    lrs: Sequence[float], done: Sequence[int], steps: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per step of the coming ``steps`` and per member (learning rate ``lrs[j]``, ``done[j]`` Adam steps
    taken so far): ``-lr / (1 - beta1^t)`` and ``sqrt(1 - beta2^t)`` at the member's own Adam step ``t``,
    computed in float64 as ``torch.optim.Adam`` does (then used in float32, as Adam's scalars are):
    (S, M') each."""
    b1, b2 = ADAM_BETAS
    neg, bc2 = [], []
    for s in range(steps):
        ts = [float(d + s + 1) for d in done]
        neg.append([-(lr / (1 - b1**t)) for lr, t in zip(lrs, ts)])
        bc2.append([(1 - b2**t) ** 0.5 for t in ts])
    return torch.tensor(neg, dtype=torch.float32, device=device), torch.tensor(bc2, dtype=torch.float32, device=device)


def adam_update(
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


__all__ = ["ADAM_BETAS", "ADAM_EPS", "adam_schedule", "adam_update"]
