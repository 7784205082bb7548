"""Where a settle-mode round goes: training, the trainer's validation -ELBO, and settle's paired score.

After every epoch, settle mode scores each training member on its validation subset (IWAE NLL, k = 10,
per sample, and active units: ``SettleExecutor._score``). That is work a per-size sweep does not do. This
script builds members as settle mode does (the sweep's default model), runs them epoch by epoch and times
``Trainer.run_epoch`` (training plus its validation -ELBO, which early stopping needs) and the score
separately, so the share of the score in a round is measured, not guessed.

Usage: ``.venv/bin/python benchmarks/bench_settle_epoch.py`` (digits and 5,000 MNIST images, about two
minutes on 2 cores); ``--epochs`` and ``--threads`` change the budget.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import zdim  # noqa: E402, F401  # first: it sets OMP_WAIT_POLICY before torch loads OpenMP

# isort: split
import torch  # noqa: E402

from zdim.data.dataset import load_data  # noqa: E402
from zdim.sweeps.executors.settle import DEFAULT_EVAL_SAMPLES, SettleExecutor  # noqa: E402
from zdim.sweeps.planning.config import SweepConfig, build_sweep_model  # noqa: E402
from zdim.training.config import TrainConfig  # noqa: E402
from zdim.training.trainer import Trainer  # noqa: E402

MNIST = ROOT.parent / "shared" / "datasets" / "mnist"
SETS = {
    "digits": ("digits", {}, (2, 4, 8, 16)),
    "mnist5k": (str(MNIST), {"max_samples": 5000}, (2, 5, 10, 20, 50)),
}


def measure(name: str, epochs: int) -> None:
    source, options, dims = SETS[name]
    data = load_data(source, **options)
    config = SweepConfig(dims=dims, train=TrainConfig(epochs=epochs + 1))
    subset = data.val[:DEFAULT_EVAL_SAMPLES]
    train_s: list[float] = []
    score_s: list[float] = []
    for d in dims:
        torch.manual_seed(0)
        model = build_sweep_model(data, d, config)
        trainer = Trainer(model, data.train, data.val, config.train)
        for _ in range(epochs):
            t0 = time.perf_counter()
            trainer.run_epoch()
            t1 = time.perf_counter()
            SettleExecutor._score(model, subset)
            t2 = time.perf_counter()
            train_s.append(t1 - t0)
            score_s.append(t2 - t1)
    t, s = statistics.median(train_s), statistics.median(score_s)
    shares = [b / (a + b) for a, b in zip(train_s, score_s)]
    print(
        f"{name:8s} sizes {dims}: {data.train.shape[0]} train, {data.val.shape[0]} validation, "
        f"{subset.shape[0]} scored; per member-epoch median: run_epoch {t * 1000:.1f} ms, score "
        f"{s * 1000:.1f} ms; score's share of a round {sum(score_s) / (sum(train_s) + sum(score_s)):.0%} "
        f"(per member-epoch {min(shares):.0%} to {max(shares):.0%}, {len(shares)} member-epochs)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=4, help="epochs per size (default 4)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--sets", default="digits,mnist5k", help="data sets: digits, mnist5k")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.sets.split(","):
        measure(name, args.epochs)


if __name__ == "__main__":
    main()
