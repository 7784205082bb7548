"""Lending threads in a one-member phase of settle mode: one member on 2 worker processes, with and without.

Refinement's phases train one new member (one seed per size) while the other worker has nothing to
train. ``zdim.sweeps.engines.WorkerEngine`` then gives the busy worker the idle worker's threads
(``LEND_THREADS``). This times such a phase directly: one member of size ``--dim`` trained ``--epochs``
epochs by a ``WorkerEngine`` of 2 workers, lending on and off alternately (``--rounds`` each, median
kept), and prints the seconds per epoch of each, and how far the member's validation NLL moved (the
float noise of another thread count).

    PYTHONPATH=src python benchmarks/bench_lending.py [--set mnist|digits] [--epochs 5] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from zdim.data.dataset import Data, load_data
from zdim.sweeps import engines
from zdim.sweeps.config import SweepConfig
from zdim.sweeps.engines import WorkerEngine
from zdim.sweeps.plan import Options, resolve

MNIST = (Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "mnist").resolve()


def phase(data: Data, config: SweepConfig, subset: torch.Tensor, epochs: int, lend: bool) -> tuple[float, float]:
    """(seconds per epoch, the member's last validation NLL) of one member trained by 2 workers."""
    engines.LEND_THREADS = lend  # read by the coordinator (this process)
    engine = WorkerEngine(data, config, subset, None, False, 2)
    try:
        key = (config.dims[0], 0)
        engine.add([key])
        engine.step([key])  # the first epoch pays the workers' start: not timed
        t0 = time.perf_counter()
        for _ in range(epochs):
            status = engine.step([key])[key]
        seconds = (time.perf_counter() - t0) / epochs
    finally:
        engine.close()
    assert status.val_nll is not None
    return seconds, status.val_nll


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", default="mnist", choices=("mnist", "digits"))
    ap.add_argument("--dim", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    data = load_data(str(MNIST), max_samples=5000) if a.set == "mnist" else load_data("digits")
    config = resolve(data, Options(dims=(a.dim,), seeds=1)).config
    subset = data.val[:1000]
    print(f"{a.set}: one member of size {a.dim}, {a.epochs} epochs on 2 workers; torch {torch.__version__}")
    times: dict[bool, list[float]] = {True: [], False: []}
    nll: dict[bool, float] = {}
    for r in range(a.rounds):
        for lend in (False, True):
            seconds, nll[lend] = phase(data, config, subset, a.epochs, lend)
            times[lend].append(seconds)
            print(f"  round {r + 1}: {'lent' if lend else 'not lent'}: {seconds:.3f} s/epoch", flush=True)
    lent, kept = statistics.median(times[True]), statistics.median(times[False])
    print(f"  median s/epoch: not lent {kept:.3f}, lent {lent:.3f}: lending is {kept / lent:.2f}x")
    print(f"  validation NLL after {a.epochs + 1} epochs: not lent {nll[False]:.6f}, lent {nll[True]:.6f}")


if __name__ == "__main__":
    main()
