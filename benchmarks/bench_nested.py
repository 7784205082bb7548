"""Nested sweep against per-size training: both curves, both recommendations, wall time (issue #5).

    .venv/bin/python benchmarks/bench_nested.py             # digits and planted manifolds, about 4 minutes
    .venv/bin/python benchmarks/bench_nested.py --epochs 30 # a smaller budget

For each data set the same ``zdim.sweeps.execute.sweep`` runs twice with the same grid, architecture and
training recipe (``--epochs`` maximum, patience 10, batch 128, Adam 1e-3; held-out NLL with k=100):
once per size (one VAE per size) and once nested (``nested=True``: one VAE of the largest size, every
size cut out of it). Printed: the held-out NLL and active units per size for both, each one's
recommended size (the default rule, combined), whether they agree within one grid step, and the
wall-time ratio. MNIST is in ``bench_sweep.py`` (its ``zdim sweep --nested`` contestant).

Data sets: scikit-learn's ``digits`` (64 features, sizes 1..32) and planted manifolds of known
intrinsic dimension d (``zdim.testing.make_planted_data``; sizes 1..16, hidden (64, 64)).
The two sweeps run one after the other on a shared machine: the ratio is of one run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import torch

import zdim  # first: it sets OMP_WAIT_POLICY=PASSIVE (unless set) before torch loads OpenMP
from zdim.sweeps.execute import sweep
from zdim.sweeps.planning.config import SweepConfig
from zdim.testing import make_planted_data
from zdim.training.config import TrainConfig

PLANTED = [(2, 16, 0.01, 2000), (4, 32, 0.01, 4000), (6, 32, 0.01, 4000)]  # (d, D, noise, n)


def run(data: zdim.Data, dims: tuple[int, ...], hidden: tuple[int, ...], epochs: int, nested: bool) -> Any:
    cfg = SweepConfig(
        dims=dims,
        hidden=hidden,
        k=100,
        train=TrainConfig(epochs=epochs, batch_size=128, patience=10),
    )
    t0 = time.perf_counter()
    r = sweep(data, config=cfg, mode="nested" if nested else "per-size")  # as the figures quoted were measured
    return r, time.perf_counter() - t0


def compare(name: str, data: zdim.Data, dims: tuple[int, ...], hidden: tuple[int, ...], epochs: int) -> bool:
    per, t_per = run(data, dims, hidden, epochs, nested=False)
    nest, t_nest = run(data, dims, hidden, epochs, nested=True)
    print(f"\n== {name}: sizes {list(dims)}, hidden {list(hidden)}, up to {epochs} epochs")
    print(f"{'size':>5} {'NLL per size':>13} {'NLL nested':>11} {'AU per size':>12} {'AU nested':>10}")
    per_t, nest_t = [t.to_dict() for t in per.trials], [t.to_dict() for t in nest.trials]
    rows = {t["dim"]: t for t in per_t}
    for t in nest_t:
        p = rows.get(t["dim"], {})
        print(
            f"{t['dim']:>5} {p.get('nll', float('nan')):>13.2f} {t.get('nll', float('nan')):>11.2f} "
            f"{p.get('active_units', '-'):>12} {t.get('active_units', '-'):>10}"
        )
    a, b = per.recommended_dim, nest.recommended_dim
    steps = abs(dims.index(a) - dims.index(b)) if a in dims and b in dims else None
    agree = steps is not None and steps <= 1
    epochs_per = sum(t.get("epochs_run", 0) for t in per_t)
    epochs_nest = nest_t[0].get("epochs_run", 0) if nest_t else 0
    print(
        f"recommended: per size {a}, nested {b} ({steps} grid step(s) apart: "
        f"{'agree' if agree else 'DISAGREE'}); epochs trained: per size {epochs_per} in all, nested {epochs_nest}"
    )
    print(f"wall: per size {t_per:.1f} s, nested {t_nest:.1f} s, ratio per size / nested {t_per / t_nest:.2f}x")
    sys.stdout.flush()
    return agree


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=60, help="maximum epochs of every training (default 60)")
    ap.add_argument("--skip-digits", action="store_true")
    ap.add_argument("--skip-planted", action="store_true")
    a = ap.parse_args()
    print(
        f"nested vs per-size sweeps; {os.cpu_count()} cores, {torch.get_num_threads()} threads, shared machine",
        flush=True,
    )
    verdicts = []
    if not a.skip_digits:
        verdicts.append(compare("digits", zdim.load_data("digits"), (1, 2, 4, 8, 16, 32), (512, 256), a.epochs))
    if not a.skip_planted:
        for d, big_d, noise, n in PLANTED:
            x = make_planted_data(d, big_d, n, noise=noise, seed=d * 100 + big_d)
            name = f"planted d={d} in D={big_d} (noise {noise}, n={n})"
            verdicts.append(compare(name, zdim.load_data(x), (1, 2, 4, 8, 16), (64, 64), a.epochs))
    print(f"\nagreement within one grid step: {sum(verdicts)}/{len(verdicts)} data sets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
