"""Stacked members on a GPU: the default MNIST sweep trained per member against one ``StackedTrainer``.

Full MNIST (the 60,000 training images, split by ``zdim.load_data`` into training and validation);
the members of ``zdim sweep`` on it: sizes from the intrinsic-dimension estimate
(``zdim.evaluation.intrinsic.dims_from_estimate``) unless ``--dims`` is given, 3 seeds, hidden 512,256, batch 128,
``--epochs`` epochs each (patience off: every member runs them all). Printed per arm: wall time,
member-epochs per second, peak GPU memory (``torch.cuda.max_memory_allocated``), and their ratios; the
largest weight difference between a member trained alone and stacked (float32). Then the stack again
with TF32 matmuls (``torch.backends.cuda.matmul.allow_tf32``) and with bf16 autocast, each with the
float32 validation -ELBO of its members after training against the float32 stack's.

With ``--sweep``, the whole default MNIST sweep in settle mode (``zdim.sweeps.execute.sweep``: sizes from the
intrinsic dimension, 3 seeds, until the answer settles, each arm capped by ``--sweep-budget`` seconds of
training) runs twice, members one after another (``stack=False``) and stacked (``stack=True``, the
default on CUDA); printed per arm: wall time, member-epochs and member-epochs per second, peak GPU
memory, the answer and whether it settled, and the ratios.

Usage: ``.venv/bin/python benchmarks/bench_gpu.py [--epochs 3] [--sweep]`` on a machine with CUDA (a few
minutes on one recent GPU, more with ``--sweep``). Without CUDA it prints one line and exits 0.
``--device cpu`` (with e.g. ``--max-samples 2000 --epochs 1``) runs the same code on the CPU, to check
the script, not to measure.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))  # _common

import zdim  # noqa: E402  # first: it sets OMP_WAIT_POLICY before torch loads OpenMP

# isort: split
import torch  # noqa: E402
from _common import sweep_members  # noqa: E402

from zdim.evaluation.intrinsic import dims_from_estimate, estimate_intrinsic_dim  # noqa: E402
from zdim.evaluation.metrics import neg_elbo  # noqa: E402
from zdim.models.vae import VAE  # noqa: E402
from zdim.training.config import TrainConfig  # noqa: E402
from zdim.training.stacked import StackedTrainer  # noqa: E402
from zdim.training.trainer import Trainer  # noqa: E402

MNIST = ROOT.parent / "shared" / "datasets" / "mnist"
HIDDEN = (512, 256)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_mib(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def build(data: zdim.Data, grid: list[tuple[int, int]]) -> list[VAE]:
    return sweep_members(data, grid, HIDDEN)


def per_member(data: zdim.Data, models: list[VAE], cfgs: list[TrainConfig]) -> None:
    for model, cfg in zip(models, cfgs):
        trainer = Trainer(model, data.train, data.val, cfg)
        while not trainer.done:
            trainer.run_epoch()


def stacked(
    data: zdim.Data,
    models: list[VAE],
    cfgs: list[TrainConfig],
    context: Callable[[], contextlib.AbstractContextManager[None]],
) -> list[VAE]:
    stack = StackedTrainer(models, cfgs, data.train, data.val)
    while not all(m.done for m in stack.members):
        with context():
            stack.run_epoch()
    return [m.model for m in stack.members]  # their current (last epoch's) weights


def timed(device: torch.device, fn: Callable[[], object]) -> tuple[float, float]:
    """Seconds and peak memory (MiB) of ``fn()``."""
    reset_peak(device)
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0, peak_mib(device)


@contextlib.contextmanager
def plain() -> Iterator[None]:
    yield


@contextlib.contextmanager
def tf32() -> Iterator[None]:
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def val_neg_elbo(models: list[VAE], data: zdim.Data, cfgs: list[TrainConfig]) -> list[float]:
    """The float32 validation -ELBO of each model (TF32 off, no autocast)."""
    with torch.no_grad():
        return [neg_elbo(m, data.val, seed=c.seed) for m, c in zip(models, cfgs)]


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3, help="epochs per member (default 3)")
    ap.add_argument("--data", default=str(MNIST), help="MNIST IDX folder (default ../shared/datasets/mnist)")
    ap.add_argument("--dims", default="", help="latent sizes, e.g. 2,4,8,16,32,64 (default: as zdim sweep)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--max-samples", type=int, default=None, help="fewer images (default: all)")
    ap.add_argument("--device", default="cuda", help="cuda (default), or cpu to check the script")
    ap.add_argument("--no-precision", action="store_true", help="leave out the TF32 and bf16 runs")
    ap.add_argument("--sweep", action="store_true", help="then the whole default sweep, per member and stacked")
    ap.add_argument("--sweep-budget", type=float, default=900.0, help="seconds of training per sweep arm")
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("bench_gpu: CUDA is not available here, nothing to measure (run it on a machine with a GPU)")
        return 0
    device = torch.device(args.device)
    data = zdim.load_data(args.data, max_samples=args.max_samples)
    if args.dims:
        dims = tuple(int(d) for d in args.dims.split(","))
    else:
        dims = dims_from_estimate(estimate_intrinsic_dim(data, seed=0).dim, data.n_features)
    grid = [(d, s) for d in dims for s in range(args.seeds)]
    cfgs = [
        TrainConfig(epochs=args.epochs, batch_size=args.batch_size, patience=0, seed=s, device=str(device))
        for _, s in grid
    ]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"{name}, torch {torch.__version__}: {len(grid)} members (sizes {list(dims)} x {args.seeds} seeds), "
        f"{data.n_features}-{'-'.join(map(str, HIDDEN))}-k, {data.train.shape[0]} train / {data.val.shape[0]} "
        f"validation, batch {args.batch_size}, {args.epochs} epochs"
    )
    # warm-up (CUDA context, cuBLAS handles, kernels) on a slice: not timed
    warm = dataclasses.replace(data, train=data.train[:1024], val=data.val[:256])
    per_member(warm, build(warm, grid[:1]), [cfgs[0]])
    stacked(warm, build(warm, grid[:2]), cfgs[:2], plain)

    member_epochs = len(grid) * args.epochs
    alone = build(data, grid)
    t_alone, m_alone = timed(device, lambda: per_member(data, alone, cfgs))
    fp32: list[VAE] = []
    t_stack, m_stack = timed(device, lambda: fp32.extend(stacked(data, build(data, grid), cfgs, plain)))
    diff = max(
        float((a - b).abs().max())
        for x, y in zip(alone, fp32)
        for a, b in zip(x.state_dict().values(), y.state_dict().values())
    )
    print(
        f"per member (Trainers one after another): {t_alone:8.1f} s, {member_epochs / t_alone:7.2f} "
        f"member-epochs/s, peak {m_alone:8.0f} MiB"
    )
    print(
        f"stacked (one StackedTrainer), float32:  {t_stack:8.1f} s, {member_epochs / t_stack:7.2f} "
        f"member-epochs/s, peak {m_stack:8.0f} MiB"
    )
    print(
        f"ratio per member / stacked: time {t_alone / t_stack:.2f}x, peak memory {m_alone / m_stack:.2f}x; "
        f"largest weight difference alone vs stacked {diff:.2g}"
    )
    if not args.no_precision:
        precision(data, grid, cfgs, fp32, device, t_stack, member_epochs)
    if args.sweep:
        whole_sweep(data, device, args.sweep_budget)
    return 0


def whole_sweep(data: zdim.Data, device: torch.device, budget: float) -> None:
    """The default settle-mode sweep of ``data``, per member and stacked, each capped at ``budget`` s."""
    from zdim.sweeps.execute import sweep

    got = {}
    for label, stack in (("per member", False), ("stacked", True)):
        reset_peak(device)
        t0 = time.perf_counter()
        r = sweep(data, seeds=3, stack=stack, time_budget=budget, train=TrainConfig(device=str(device)))
        sync(device)
        secs = time.perf_counter() - t0
        epochs = sum(t.epochs_run or 0 for t in r.trials)
        rec = r.recommendation
        got[label] = (secs, epochs, rec.dim if rec else None)
        print(
            f"sweep {label:<10}: {secs:8.1f} s, {epochs} member-epochs, {epochs / secs:7.2f} member-epochs/s, "
            f"peak {peak_mib(device):8.0f} MiB; answer {rec.confidence if rec else None}"
            f"{'' if rec is None or rec.settled else ' (not settled)'}"
        )
    (t_a, e_a, d_a), (t_s, e_s, d_s) = got["per member"], got["stacked"]
    print(
        f"sweep ratio per member / stacked: wall time {t_a / t_s:.2f}x, member-epochs per second "
        f"{(e_s / t_s) / (e_a / t_a):.2f}x; {'same' if d_a == d_s else 'DIFFERENT'} answer"
    )


def precision(
    data: zdim.Data,
    grid: list[tuple[int, int]],
    cfgs: list[TrainConfig],
    fp32: list[VAE],
    device: torch.device,
    t_stack: float,
    member_epochs: int,
) -> None:
    """The stack again with TF32 matmuls (CUDA) and with bf16 autocast, against the float32 stack."""
    ref = val_neg_elbo(fp32, data, cfgs)
    variants: list[tuple[str, Callable[[], contextlib.AbstractContextManager[None]]]] = [
        ("bf16 autocast", lambda: torch.autocast(device.type, dtype=torch.bfloat16))
    ]
    if device.type == "cuda":
        variants.insert(0, ("TF32 matmuls", tf32))
    for label, context in variants:
        out: list[VAE] = []

        def run(out: list[VAE] = out, context: Callable[[], contextlib.AbstractContextManager[None]] = context) -> None:
            out.extend(stacked(data, build(data, grid), cfgs, context))

        secs, mem = timed(device, run)
        got = val_neg_elbo(out, data, cfgs)
        worst = max(abs(a - b) for a, b in zip(got, ref))
        rel = max(abs(a - b) / max(abs(b), 1.0) for a, b in zip(got, ref))
        print(
            f"stacked, {label:<14}          {secs:8.1f} s, {member_epochs / secs:7.2f} member-epochs/s, "
            f"peak {mem:8.0f} MiB; time vs float32 stack {t_stack / secs:.2f}x; validation -ELBO (float32) "
            f"vs the float32 stack: largest difference {worst:.3g} nats ({rel:.2%})"
        )


if __name__ == "__main__":
    sys.exit(main())
