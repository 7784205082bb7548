"""Wall time of one sweep with ``--workers 2`` against ``--workers 1``, measured side by side.

The same sweep (digits, 6 sizes, fixed epochs, ``--patience 0``) runs with 1 and with 2 worker processes,
alternating, ``--rounds`` times each; the best time of each is kept and their ratio printed. Both use
every core: 1 worker with ``cores`` threads, 2 workers with ``cores // 2`` threads each.

    PYTHONPATH=src python benchmarks/bench_workers.py [--epochs 8] [--rounds 1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def run(workers: int, epochs: int, out: Path) -> float:
    cmd = [
        sys.executable,
        "-m",
        "zdim",
        "sweep",
        "digits",
        "--dims",
        "1,2,4,8,16,32",
        "--epochs",
        str(epochs),
        "--patience",
        "0",
        "--hidden",
        "128,64",
        "--k",
        "20",
        "--quiet",
        "--workers",
        str(workers),
        "--out",
        str(out),
        "--overwrite",
    ]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=dict(os.environ, PYTHONPATH=str(SRC)), stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="zdim-bench-workers-"))
    times: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(a.rounds):
        for w in (1, 2):
            times[w].append(run(w, a.epochs, tmp / f"w{w}"))
            print(f"workers={w}: {times[w][-1]:.1f} s", flush=True)
    t1, t2 = min(times[1]), min(times[2])
    print(f"digits, 6 sizes x {a.epochs} epochs, {os.cpu_count()} cores (shared machine: other jobs may run)")
    print(
        f"wall time workers=1 {t1:.1f} s, workers=2 {t2:.1f} s; ratio workers2/workers1 = {t2 / t1:.2f} "
        f"(speed-up {t1 / t2:.2f}x)"
    )


if __name__ == "__main__":
    main()
