"""Does the answer move with the budget? Settle mode against per-size sweeps, over seeds (issue #13).

For each data set and each of 3 seeds (the seed of the split, the initialization and the training), one
sweep per method, each with one seed per size and a run directory (so the answer uses the paired
standard errors and the bootstrap, as a user's sweep does):

- ``settle``: ``zdim.sweep(..., mode="settle")`` with its default epoch cap (500; it stops when the
  answer settles);
- ``per-size e5`` and ``per-size e20``: a per-size sweep at ``--epochs 5`` and ``--epochs 20``;
- ``careful``: what a careful user runs: per-size, ``--epochs 200 --patience 10``.

It prints each method's recommended size per seed and its wall time, then: on how many (data set,
seed) pairs settle mode gives the careful answer (target >= 90%), whether its sizes agree across seeds
where the careful ones do, and settle's wall time over careful's (target <= 1/4). The grid does not grow
(``extend=False``) so that every method sees the same sizes.

Usage: ``PYTHONPATH=src .venv/bin/python benchmarks/bench_stability.py --quick`` (hidden (128, 64);
digits and two planted manifolds; about half an hour on 2 cores); without ``--quick``: hidden (512, 256)
and 10,000 MNIST training images too (hours on 2 cores). ``--sets`` picks data sets by name.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import zdim  # noqa: E402
from zdim.sweeps.execute import sweep  # noqa: E402
from zdim.sweeps.planning.config import SweepConfig  # noqa: E402
from zdim.sweeps.planning.plan import SETTLE_EPOCHS  # noqa: E402
from zdim.testing import make_planted_data  # noqa: E402
from zdim.training.config import TrainConfig  # noqa: E402

MNIST = ROOT.parent / "shared" / "datasets" / "mnist"


SETS = {
    "digits": lambda: ("digits", "digits", (1, 2, 3, 4, 6, 8, 12, 16), {}),
    "planted4": lambda: ("planted d=4 (D=8)", make_planted_data(4, 8, 4000, seed=0), (1, 2, 3, 4, 6, 8), {}),
    "planted6": lambda: (
        "planted d=6 (D=32)",
        make_planted_data(6, 32, 4000, seed=1),
        (2, 4, 5, 6, 7, 8, 12, 16),
        {},
    ),
    "mnist10k": lambda: ("MNIST 10k", str(MNIST), (2, 4, 8, 16, 32, 64), {"max_samples": 10000}),
}


def datasets(names: list[str]) -> list[tuple[str, Any, tuple[int, ...], dict[str, Any]]]:
    """(name, source, sizes, load_data options) of each named set."""
    return [SETS[n]() for n in names]


def run(
    source: Any, dims: tuple[int, ...], seed: int, opts: dict[str, Any], hidden: tuple[int, ...], **kw: Any
) -> tuple[int | None, float, int]:
    """(recommended size, wall seconds, epochs of the longest training) of one sweep."""
    data = zdim.load_data(source, seed=seed, **opts)
    mode = kw.pop("mode", "per-size")
    cfg = SweepConfig(dims=dims, hidden=hidden, k=50, train=TrainConfig(seed=seed, **kw))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        r = sweep(data, config=cfg, mode=mode, extend=False, out=Path(tmp) / "run")
    epochs = max((t.epochs_run or 0) for t in r.trials)
    return r.recommended_dim, time.perf_counter() - t0, epochs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="hidden (128, 64); digits and two planted manifolds")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--sets", help=f"comma-separated data sets among {', '.join(SETS)}")
    args = ap.parse_args()
    names = args.sets.split(",") if args.sets else (["digits", "planted4", "planted6"] if args.quick else list(SETS))
    hidden = (128, 64) if args.quick else (512, 256)
    methods = {
        "settle": {"mode": "settle", "epochs": SETTLE_EPOCHS, "patience": 10},
        "per-size e5": {"epochs": 5, "patience": 10},
        "per-size e20": {"epochs": 20, "patience": 10},
        "careful": {"epochs": 200, "patience": 10},
    }
    rows = []
    print(f"hidden {hidden}, seeds 0..{args.seeds - 1}, k = 50, methods {methods}", flush=True)
    for name, source, dims, opts in datasets(names):
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
