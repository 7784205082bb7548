"""Adam's implementation in zdim's training step on small models: single-tensor, foreach or fused.

On CPU PyTorch's ``torch.optim.Adam`` defaults to the single-tensor loop: about 7 small tensor ops per
parameter tensor and step. The models of a typical sweep are small (digits: 64-128-64-k), so one step
is dominated by per-op overhead, not arithmetic. This times ``zdim.training.trainer.Trainer.run_epoch`` with each
implementation (``foreach=True``, ``fused=True``) on three shapes, in interleaved rounds, and reports the
median epoch time, its ratio to the single-tensor default, and the largest difference of any weight from
the single-tensor run after the same epochs (0 means bit for bit the same training).

Usage: ``.venv/bin/python benchmarks/bench_adam.py [--rounds 5] [--epochs 3]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import zdim  # noqa: E402  # first: it sets OMP_WAIT_POLICY before torch loads OpenMP

# isort: split
import torch  # noqa: E402

from zdim.sweeps.planning.config import SweepConfig, build_sweep_model  # noqa: E402
from zdim.testing import make_planted_data  # noqa: E402
from zdim.training.config import TrainConfig  # noqa: E402
from zdim.training.trainer import Trainer  # noqa: E402

MNIST = ROOT.parent / "shared" / "datasets" / "mnist"
ADAM = torch.optim.Adam
KINDS = {"single-tensor": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def shapes() -> list[tuple[str, Any, int, tuple[int, ...]]]:
    out = [
        ("digits 64-128-64-4", "digits", 4, (128, 64)),
        ("planted 8-128-64-4", make_planted_data(4, 8, 4000, seed=0), 4, (128, 64)),
    ]
    if MNIST.is_dir():
        out.append(("MNIST 5k 784-512-256-16", str(MNIST), 16, (512, 256)))
    return out


def epoch_time(data: zdim.Data, dim: int, hidden: tuple[int, ...], kind: str, epochs: int) -> tuple[float, Any]:
    """Median seconds of one epoch after a warm-up epoch, and the weights after ``epochs + 1`` epochs."""
    opts = KINDS[kind]

    def adam(params: Any, **kw: Any) -> torch.optim.Optimizer:
        return ADAM(params, **kw, **opts)

    torch.optim.Adam = adam  # type: ignore[misc]  # zdim.training.trainer builds its optimizer as torch.optim.Adam(...)
    try:
        torch.manual_seed(0)
        model = build_sweep_model(data, dim, SweepConfig(dims=(dim,), hidden=hidden))
        tr = Trainer(model, data.train, data.val, TrainConfig(seed=0, epochs=epochs + 1, patience=0))
        tr.run_epoch()
        times = []
        for _ in range(epochs):
            t0 = time.perf_counter()
            tr.run_epoch()
            times.append(time.perf_counter() - t0)
    finally:
        torch.optim.Adam = ADAM  # type: ignore[misc]
    return statistics.median(times), [p.detach().clone() for p in model.parameters()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per run (after one warm-up epoch)")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.rounds} interleaved rounds")
    for name, source, dim, hidden in shapes():
        opts = {"max_samples": 5000} if "MNIST" in name else {}
        data = zdim.load_data(source, seed=0, **opts)
        res: dict[str, list[float]] = {k: [] for k in KINDS}
        weights: dict[str, Any] = {}
        for r in range(args.rounds):
            order = list(KINDS)[r % len(KINDS) :] + list(KINDS)[: r % len(KINDS)]  # rotate who goes first
            for kind in order:
                secs, w = epoch_time(data, dim, hidden, kind, args.epochs)
                res[kind].append(secs)
                weights[kind] = w
        base = statistics.median(res["single-tensor"])
        for kind, v in res.items():
            diff = max(float((a - b).abs().max()) for a, b in zip(weights[kind], weights["single-tensor"]))
            print(
                f"{name:<26} {kind:<14} epoch {statistics.median(v) * 1000:8.1f} ms (median), "
                f"ratio {statistics.median(v) / base:.2f}, largest weight difference {diff:.3g}",
                flush=True,
            )


if __name__ == "__main__":
    main()
