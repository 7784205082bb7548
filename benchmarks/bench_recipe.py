"""Batch size and learning rate: time to a converged model, interleaved (issue #13, part 2).

For each data set, latent size and seed, every recipe (batch size, learning rate) trains the same model
from the same initial weights to early stopping (patience 10, cap 300 epochs), the recipes one after
the other in a rotated order, so drift in the machine's load falls on all of them alike. Printed per
training: wall time, epochs, and the held-out (test) NLL of the best weights (IWAE, k = 50). Then per
recipe: the median over trainings of its time over the default recipe's time, and the median of its NLL
minus the default's (negative: better). A recipe pays when its time ratio is clearly below 1 and its
NLL is no worse than the default's by more than the recommendation rule's tolerance (1% of the NLL).

Usage: ``.venv/bin/python benchmarks/bench_recipe.py [--quick]`` (one thread; ``--quick``: digits and a
planted manifold, 2 seeds, about 10 minutes on 2 cores; without it MNIST 5,000 images too).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import zdim  # noqa: E402  (sets OMP_WAIT_POLICY before torch)

# isort: split
import torch  # noqa: E402

from zdim.evaluation.metrics import evaluate  # noqa: E402
from zdim.sweeps.planning.config import SweepConfig, build_sweep_model  # noqa: E402
from zdim.testing import make_planted_data  # noqa: E402
from zdim.training.config import TrainConfig  # noqa: E402
from zdim.training.trainer import fit  # noqa: E402

MNIST = ROOT.parent / "shared" / "datasets" / "mnist"
RECIPES = ((128, 1e-3), (256, 2e-3), (512, 4e-3))  # the first is the default


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)
    sets = [("digits", "digits", (4, 16), {}), ("planted d=4", make_planted_data(4, 8, 4000, seed=0), (4, 8), {})]
    if not args.quick:
        sets.append(("MNIST 5k", str(MNIST), (16, 32), {"max_samples": 5000}))
    rows: list[tuple[str, int, int, tuple[int, float], float, int, float]] = []
    turn = 0
    print(f"recipes (batch, lr): {RECIPES}; hidden (512, 256); patience 10, cap 300; one thread", flush=True)
    for name, source, dims, opts in sets:
        for seed in range(args.seeds):
            data = zdim.load_data(source, seed=seed, **opts)
            for dim in dims:
                order = RECIPES[turn % len(RECIPES) :] + RECIPES[: turn % len(RECIPES)]
                turn += 1
                for bs, lr in order:
                    cfg = SweepConfig(dims=(dim,), train=TrainConfig(seed=seed, epochs=300, patience=10))
                    torch.manual_seed(seed)
                    model = build_sweep_model(data, dim, cfg)
                    t0 = time.perf_counter()
                    res = fit(model, data.train, data.val, TrainConfig(seed=seed, epochs=300, batch_size=bs, lr=lr))
                    secs = time.perf_counter() - t0
                    nll = float(evaluate(model, data.test, k=50, seed=0)["nll"])
                    rows.append((name, dim, seed, (bs, lr), secs, len(res.history), nll))
                    print(
                        f"{name:<12} size {dim:>2} seed {seed} batch {bs:>3} lr {lr:g}: {secs:6.1f} s, "
                        f"{len(res.history):3d} epochs, test NLL {nll:.3f}",
                        flush=True,
                    )
    print()
    base = RECIPES[0]
    for recipe in RECIPES[1:]:
        ratios, deltas, rel = [], [], []
        for r in rows:
            if r[3] != recipe:
                continue
            b = next(x for x in rows if x[:3] == r[:3] and x[3] == base)
            ratios.append(r[4] / b[4])
            deltas.append(r[6] - b[6])
            rel.append((r[6] - b[6]) / abs(b[6]))
        print(
            f"batch {recipe[0]}, lr {recipe[1]:g} vs batch {base[0]}, lr {base[1]:g}: time ratio median "
            f"{statistics.median(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f}), test NLL difference "
            f"median {statistics.median(deltas):+.3f} nats (worst {max(deltas):+.3f}, {max(rel):+.2%} of the NLL) "
            f"over {len(ratios)} trainings"
        )


if __name__ == "__main__":
    main()
