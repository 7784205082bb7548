"""Settle mode on the hardware a user brings: one process against worker processes, side by side.

For each data set the same settle-mode sweep runs as ``zdim sweep`` (a fresh process each time, its own
run directory):

- ``1 process, 2 threads``: ``--workers 1`` with every core to torch's threads;
- ``2 workers, 1 thread``: ``--workers 2``, the members spread over two processes of one thread each;
- and, for the thread scaling of one process, ``1 process, 1 thread``.

The configurations alternate, ``--rounds`` times each; the median wall time of each is printed with
the answer each gave and the ratio of one process to two workers. Data: scikit-learn's digits (its
default sweep: ``zdim sweep digits``, 3 seeds, settle mode) and 5,000 MNIST images (the README's
example: sizes 2, 5, 10, 20, 50, one seed).

    PYTHONPATH=src python benchmarks/bench_workers.py [--sets digits,mnist] [--rounds 1] [--quick]

``--quick`` caps every member at 3 epochs (the timing of the machinery, not of a converged answer).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
MNIST = (ROOT / ".." / "shared" / "datasets" / "mnist").resolve()
SETS = {
    "digits": ["digits"],
    "mnist": [str(MNIST), "--max-samples", "5000", "--dims", "2,5,10,20,50", "--seeds", "1"],
}
CONFIGS = {  # label: (workers, torch threads of each process)
    "1 process, 2 threads": (1, 2),
    "2 workers, 1 thread": (2, 1),
    "1 process, 1 thread": (1, 1),
}


def run(source: list[str], workers: int, threads: int, out: Path, quick: bool) -> tuple[float, int | None]:
    """One sweep in a fresh process: (wall seconds, the recommended size)."""
    cmd = [sys.executable, "-m", "zdim", "sweep", *source, "--quiet", "--workers", str(workers)]
    cmd += ["--out", str(out), "--overwrite"] + (["--epochs", "3"] if quick else [])
    # a process of one worker keeps all its threads; each worker process sets its own share itself
    env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    t0 = time.perf_counter()
    subprocess.run(cmd, check=False, env=env, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    try:
        dim = json.loads((out / "recommendation.json").read_text())["dim"]
    except (OSError, ValueError, KeyError):
        dim = None
    return seconds, dim


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default="digits,mnist", help="comma-separated: digits, mnist")
    ap.add_argument("--rounds", type=int, default=1, help="runs of each configuration (median kept)")
    ap.add_argument("--quick", action="store_true", help="3 epochs per member: the machinery only")
    ap.add_argument("--configs", default=";".join(CONFIGS), help="';'-separated, which of: " + "; ".join(CONFIGS))
    a = ap.parse_args()
    sets = [s for s in a.sets.split(",") if s]
    unknown = [s for s in sets if s not in SETS]
    if unknown or (a.rounds < 1):
        raise SystemExit(f"bench_workers: unknown set {unknown} or --rounds < 1: use --sets digits,mnist")
    if "mnist" in sets and not MNIST.is_dir():
        print(f"MNIST not found at {MNIST}: skipping it")
        sets.remove("mnist")
    labels = [c.strip() for c in a.configs.split(";") if c.strip()]
    if not labels or any(c not in CONFIGS for c in labels):
        choices = "; ".join(CONFIGS)
        raise SystemExit(f"bench_workers: unknown --configs {a.configs!r}: choose ';'-separated among {choices}")
    print(f"{os.cpu_count()} cores; settle mode; {'--quick (3 epochs)' if a.quick else 'converged answers'}")
    tmp = Path(tempfile.mkdtemp(prefix="zdim-bench-workers-"))
    for name in sets:
        times: dict[str, list[float]] = {c: [] for c in labels}
        answers: dict[str, set[int | None]] = {c: set() for c in labels}
        for r in range(a.rounds):
            for label in labels:
                workers, threads = CONFIGS[label]
                seconds, dim = run(SETS[name], workers, threads, tmp / f"{name}-{r}-{workers}-{threads}", a.quick)
                times[label].append(seconds)
                answers[label].add(dim)
                print(f"  {name} round {r + 1}: {label}: {seconds:.1f} s, answer {dim}", flush=True)
        med = {c: statistics.median(v) for c, v in times.items()}
        print(f"{name}: median wall time over {a.rounds} round(s)")
        for label in labels:
            print(f"  {label:<22} {med[label]:8.1f} s   answer {sorted(answers[label], key=str)}")
        if "1 process, 2 threads" in med and "2 workers, 1 thread" in med:
            ratio = med["1 process, 2 threads"] / med["2 workers, 1 thread"]
            same = answers["1 process, 2 threads"] == answers["2 workers, 1 thread"]
            print(
                f"  2 workers against 1 process of 2 threads: {ratio:.2f}x ({'same' if same else 'DIFFERENT'} answer)"
            )
        if "1 process, 1 thread" in med and "1 process, 2 threads" in med:
            scale = med["1 process, 1 thread"] / med["1 process, 2 threads"]
            print(f"  thread scaling of one process: 2 threads are {scale:.2f}x 1 thread")


if __name__ == "__main__":
    main()
