"""Does the answer move with the budget? Settle mode against per-size sweeps, over seeds (issue #13).

For each data set and each of 3 seeds (the seed of the split, the initialization and the training):

- ``settle``: ``zdim.sweep(..., mode="settle")`` with a high epoch cap (it stops when the answer settles);
- ``per-size e5`` and ``per-size e20``: today's per-size sweep at ``--epochs 5`` and ``--epochs 20``;
- ``careful``: what a careful user runs: per-size, a high epoch cap and ``--patience 10``.

It prints each method's recommended size per seed and its wall time, then: on how many (data set,
seed) pairs settle mode gives the careful answer (target >= 90%), whether its sizes agree across seeds
where the careful ones do, and settle's wall time over careful's (target <= 1/4). The grid does not grow
(``extend=False``) so that every method sees the same sizes.

Usage: ``PYTHONPATH=src .venv/bin/python benchmarks/bench_stability.py --quick`` (digits and one planted
manifold, smaller caps; tens of minutes on 2 cores); without ``--quick``: digits, two planted manifolds
and 10,000 MNIST training images (hours on 2 cores).
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

import zdim  # noqa: E402
from zdim.plan import SweepConfig  # noqa: E402
from zdim.search import sweep  # noqa: E402
from zdim.testing import make_planted_data  # noqa: E402
from zdim.train import TrainConfig  # noqa: E402

MNIST = ROOT.parent / "shared" / "datasets" / "mnist"


def datasets(quick: bool) -> list[tuple[str, Any, tuple[int, ...], dict[str, Any]]]:
    """(name, source, sizes, load_data options)."""
    out: list[tuple[str, Any, tuple[int, ...], dict[str, Any]]] = [("digits", "digits", (1, 2, 3, 4, 6, 8, 12, 16), {})]
    out.append(("planted d=4 (D=8)", make_planted_data(4, 8, 4000, seed=0), (1, 2, 3, 4, 6, 8), {}))
    if not quick:
        out.append(("planted d=6 (D=32)", make_planted_data(6, 32, 4000, seed=1), (2, 4, 5, 6, 7, 8, 12, 16), {}))
        out.append(("MNIST 10k", str(MNIST), (2, 4, 8, 16, 32, 64), {"max_samples": 10000}))
    return out


def run(
    source: Any, dims: tuple[int, ...], seed: int, opts: dict[str, Any], hidden: tuple[int, ...], **kw: Any
) -> tuple[int | None, float, int]:
    """(recommended size, wall seconds, epochs of the longest training) of one sweep."""
    data = zdim.load_data(source, seed=seed, **opts)
    mode = kw.pop("mode", "per-size")
    cfg = SweepConfig(dims=dims, hidden=hidden, k=50, train=TrainConfig(seed=seed, **kw))
    t0 = time.perf_counter()
    r = sweep(data, config=cfg, mode=mode, extend=False)
    epochs = max((t.epochs_run or 0) for t in r.trials)
    return r.recommended_dim, time.perf_counter() - t0, epochs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="digits and one planted manifold, smaller caps")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    cap = 100 if args.quick else 200
    hidden = (128, 64) if args.quick else (512, 256)
    methods = {
        "settle": {"mode": "settle", "epochs": cap, "patience": 10},
        "per-size e5": {"epochs": 5, "patience": 10},
        "per-size e20": {"epochs": 20, "patience": 10},
        "careful": {"epochs": cap, "patience": 10},
    }
    rows = []
    print(f"hidden {hidden}, epoch cap {cap}, seeds 0..{args.seeds - 1}, k = 50", flush=True)
    for name, source, dims, opts in datasets(args.quick):
        for method, kw in methods.items():
            for seed in range(args.seeds):
                dim, secs, epochs = run(source, dims, seed, opts, hidden, **dict(kw))
                rows.append((name, method, seed, dim, secs))
                print(
                    f"{name:<20} {method:<13} seed {seed}: size {dim}, {secs:7.1f} s, longest {epochs} epochs",
                    flush=True,
                )
    print()
    names = list(dict.fromkeys(r[0] for r in rows))
    print(f"{'data':<20} " + " ".join(f"{m:>18}" for m in methods))
    for n in names:
        cells = []
        for m in methods:
            sizes = [r[3] for r in rows if r[0] == n and r[1] == m]
            secs = sum(r[4] for r in rows if r[0] == n and r[1] == m)
            cells.append(f"{'/'.join(map(str, sizes)) + f' {secs:.0f}s':>18}")
        print(f"{n:<20} " + " ".join(cells))
    same = [
        (n, s)
        for n in names
        for s in range(args.seeds)
        if next(r[3] for r in rows if r[:3] == (n, "settle", s))
        == next(r[3] for r in rows if r[:3] == (n, "careful", s))
    ]
    pairs = len(names) * args.seeds
    print(
        f"\nsettle gives the careful answer on {len(same)} of {pairs} (data set, seed) pairs "
        f"({len(same) / pairs:.0%}; target >= 90%)"
    )
    for n in names:
        careful = {r[3] for r in rows if r[0] == n and r[1] == "careful"}
        settle = {r[3] for r in rows if r[0] == n and r[1] == "settle"}
        print(f"  {n}: careful sizes over seeds {sorted(careful, key=str)}, settle {sorted(settle, key=str)}")
    t_settle = sum(r[4] for r in rows if r[1] == "settle")
    t_careful = sum(r[4] for r in rows if r[1] == "careful")
    per = [
        sum(r[4] for r in rows if r[0] == n and r[1] == "settle")
        / sum(r[4] for r in rows if r[0] == n and r[1] == "careful")
        for n in names
    ]
    print(
        f"wall time: settle {t_settle:.0f} s, careful {t_careful:.0f} s, ratio {t_settle / t_careful:.2f} "
        f"(target <= 0.25); per data set median {statistics.median(per):.2f}"
    )


if __name__ == "__main__":
    main()
