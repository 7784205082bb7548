"""How fast the command line answers when nothing heavy is needed (issue #14: under a second).

Times ``zdim --help``, ``zdim datasets`` and an argument error (``zdim sweep x --workers zz``) in fresh
processes, interleaved, and prints the median of ``--repeats`` runs of each. ``--src PATH`` times the
``src`` folder of another checkout instead (e.g. an older commit, for a side-by-side figure).

Usage: ``.venv/bin/python benchmarks/bench_cli.py [--src /path/to/checkout/src] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {"--help": ["--help"], "datasets": ["datasets"], "argument error": ["sweep", "x", "--workers", "zz"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", default=str(ROOT / "src"), help="the src folder to time (default this checkout's)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=args.src)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.repeats):
        for name, argv in COMMANDS.items():
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "zdim", *argv], env=env, capture_output=True, check=False)
            times[name].append(time.perf_counter() - t0)
    print(f"zdim from {args.src}: median of {args.repeats} fresh processes")
    for name, ts in times.items():
        print(f"  zdim {name:<15} {statistics.median(ts):.2f} s (min {min(ts):.2f}, max {max(ts):.2f})")


if __name__ == "__main__":
    main()
