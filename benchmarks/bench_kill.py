"""kill -9 of a sweep worker at several moments of a trial, round after round: is any point lost?

Each round runs issue 32's scenario (``tests/kill_scenario.py``): two run directories sweep one 12-point
grid on one fresh study in a shared storage; ``a`` is killed -9 at a moment of a trial (just taken,
half-way, while its folder is written, once written, just told; after 0, 1 or 3 finished trials; reaped at once in even
rounds, left a zombie in odd ones), then resumed next to ``b``. One line per round: points complete in
each run directory's results.csv (of 12), points recorded in the study, duplicate records, points
finished in both folders or retrained, the moment hit, seconds; then a summary line.

    PYTHONPATH=src python benchmarks/bench_kill.py [--rounds 10] [--storage journal|postgres]

``--storage postgres`` starts a throwaway PostgreSQL cluster on loopback (tests/pg_cluster.py) and uses one
fresh study of it per round.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the scenario and the cluster live in the tests package

from tests.kill_scenario import MOMENTS, POINTS, kill_round  # noqa: E402
from tests.pg_cluster import Unavailable, throwaway_postgres  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=10, help="rounds in a row (default 10)")
    ap.add_argument("--storage", choices=("journal", "postgres"), default="journal")
    a = ap.parse_args()
    if a.rounds < 1:
        raise SystemExit("bench_kill: --rounds must be >= 1")
    tmp = Path(tempfile.mkdtemp(prefix="zdim-bench-kill-"))
    t0, good = time.monotonic(), 0
    with ExitStack() as stack:
        if a.storage == "postgres":
            try:
                url = stack.enter_context(throwaway_postgres())
            except Unavailable as e:
                print(f"bench_kill: no PostgreSQL here: {e}")
                return 2
        for r in range(a.rounds):
            base = tmp / f"round{r}"
            storage = url if a.storage == "postgres" else str(tmp / f"round{r}.journal")
            moment, finished, reap = MOMENTS[r % len(MOMENTS)], (0, 1, 3)[r % 3], r % 2 == 0
            res = kill_round(base, storage, f"kill{r}", finished=finished, moment=moment, reap=reap)
            good += res.ok
            print(
                f"round {r + 1:2d} {a.storage}: kill at {moment:<6} after {finished} "
                f"{'reaped' if reap else 'zombie'}: a {res.complete.get('a', 0)}/{POINTS} "
                f"b {res.complete.get('b', 0)}/{POINTS} complete, {res.recorded}/{POINTS} recorded, "
                f"{res.duplicates} duplicates, {len(res.twice)} trained twice, {len(res.retrained)} retrained "
                f"[{res.moment}] {res.seconds:.1f} s {'ok' if res.ok else 'FAILED'}",
                flush=True,
            )
            for err in res.errors:
                print(f"    {err}")
            if res.twice or res.retrained:
                print(f"    trained twice {res.twice}, retrained {res.retrained}")
            if res.ok:
                shutil.rmtree(base, ignore_errors=True)
    print(
        f"{a.storage}: {good} of {a.rounds} rounds with 12 of 12 points in both run directories, each recorded once, "
        f"none trained twice; {time.monotonic() - t0:.0f} s"
        + ("" if good == a.rounds else f" (failed rounds kept in {tmp})")
    )
    if good == a.rounds:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if good == a.rounds else 1


if __name__ == "__main__":
    raise SystemExit(main())
