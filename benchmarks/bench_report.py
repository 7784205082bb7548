"""How long `zdim report` takes on a 10-trial MNIST run (target: under 10 s).

    python benchmarks/bench_report.py                 # makes the run (sizes 2,5,10,20,50 x 2 seeds), then times
    python benchmarks/bench_report.py --run runs/X    # times an existing run directory

The run is trained briefly (the report's cost does not depend on the epochs: it loads every model,
decodes the saved held-out inputs and draws the figures). Prints the median of --repeats builds, each
in a fresh process (so the matplotlib import is counted, as a user running `zdim report` pays it).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT.parent / "shared" / "datasets" / "mnist"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help="existing run directory (default: make a 10-trial MNIST run)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.run) if args.run else Path(tmp) / "mnist"
        if not args.run:
            cmd = [
                sys.executable,
                "-m",
                "zdim",
                "sweep",
                str(MNIST),
                "--dims",
                "2,5,10,20,50",
                "--seeds",
                "2",
                "--epochs",
                "1",
                "--max-samples",
                "6000",
                "--k",
                "10",
                "--out",
                str(run),
                "--quiet",
            ]
            print("making the run:", " ".join(cmd[2:]), flush=True)
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        n_trials = len(list((run / "trials").glob("*/metrics.json")))
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "zdim", "report", str(run), "--out", str(Path(tmp) / "r.html")],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            times.append(time.perf_counter() - t0)
        size = (Path(tmp) / "r.html").stat().st_size
    print(
        f"zdim report on {n_trials} trials: median {statistics.median(times):.2f} s over {len(times)} builds "
        f"(min {min(times):.2f}, max {max(times):.2f}); report {size / 1e6:.2f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
