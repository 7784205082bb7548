"""The Ray backend's overhead: settle mode on digits with its member groups in Ray actors, against worker
processes, side by side.

The same settle-mode sweep runs as ``zdim sweep digits`` (a fresh process each time, its own run
directory) in these configurations:

- ``ray, 2 actors``: ``--backend ray --address HOST:PORT --workers 2``, joining a Ray instance this
  script started once on this machine (``ray start --head --num-cpus C``), as a sweep joins a running
  cluster: the actors start (a process each, importing torch), the coordinator decides;
- ``2 workers``: ``--workers 2``, two spawned worker processes (the local backend);
- ``1 process``: ``--workers 1``, every core to torch's threads (the reference);
- ``ray, own instance`` (``--with-init``): ``--backend ray --workers 2`` without ``--address``, the sweep
  starting (and stopping) a local Ray instance itself: the cost of a one-off Ray sweep on a laptop.

The configurations alternate, ``--rounds`` times each; the median wall time of each is printed with the
answer each gave, and the overhead of the Ray backend against the worker processes
(``ray / workers - 1``).

    PYTHONPATH=src python benchmarks/bench_ray.py [--rounds 3] [--quick] [--with-init]

``--quick`` caps every member at 3 epochs (the machinery, not a converged answer).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def start_head(env: dict[str, str], cpus: int, temp: str) -> tuple[subprocess.Popen[bytes], str]:
    """``ray start --head --block`` in its own process group: (the process, its address)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = Path(temp) / "head.log"
    ray = str(Path(sys.executable).parent / "ray")
    cmd = [ray, "start", "--head", "--port", str(port), "--num-cpus", str(cpus), "--include-dashboard=false"]
    cmd += ["--temp-dir", temp, "--disable-usage-stats", "--block"]
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    end = time.monotonic() + 120
    while b"Ray runtime started" not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > end:
            raise SystemExit(f"bench_ray: the Ray head did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.5)
    return proc, f"127.0.0.1:{port}"


def run(args: list[str], out: Path, env: dict[str, str], quick: bool) -> tuple[float, int | None]:
    """One sweep in a fresh process: (wall seconds, the recommended size)."""
    cmd = [sys.executable, "-m", "zdim", "sweep", "digits", "--quiet", *args, "--out", str(out), "--overwrite"]
    cmd += ["--epochs", "3"] if quick else []
    t0 = time.perf_counter()
    done = subprocess.run(cmd, check=False, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t0
    try:
        dim = json.loads((out / "recommendation.json").read_text())["dim"]
    except (OSError, ValueError, KeyError):
        print(f"  failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
        dim = None
    return seconds, dim


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="runs of each configuration (median kept)")
    ap.add_argument("--quick", action="store_true", help="3 epochs per member: the machinery only")
    ap.add_argument("--with-init", action="store_true", help="also a sweep that starts its own Ray instance")
    a = ap.parse_args()
    if a.rounds < 1:
        raise SystemExit("bench_ray: --rounds must be >= 1")
    try:
        import ray  # noqa: F401
    except ImportError:
        raise SystemExit("bench_ray: Ray is not installed: pip install 'zdim[ray]'") from None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    env = dict(os.environ, PYTHONPATH=str(SRC), RAY_USAGE_STATS_ENABLED="0")
    env |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    temp = tempfile.mkdtemp(prefix="zdim-bench-ray-", dir="/tmp")  # short: Ray's socket paths live under it
    head, address = start_head(env, cores, temp)
    configs = {
        "ray, 2 actors": ["--backend", "ray", "--address", address, "--workers", "2"],
        "2 workers": ["--workers", "2"],
        "1 process": ["--workers", "1"],
    }
    if a.with_init:  # no --address, and no ray_current_cluster in /tmp/ray: the sweep starts its own
        configs["ray, own instance"] = ["--backend", "ray", "--workers", "2"]
    print(f"{cores} cores; digits, settle mode; {'--quick (3 epochs)' if a.quick else 'converged answers'}")
    times: dict[str, list[float]] = {c: [] for c in configs}
    dims: dict[str, set[int | None]] = {c: set() for c in configs}
    try:
        for r in range(a.rounds):
            for label, args in configs.items():
                seconds, dim = run(args, Path(temp) / label.replace(" ", "_").replace(",", ""), env, a.quick)
                times[label].append(seconds)
                dims[label].add(dim)
                print(f"  round {r + 1}: {label:18s} {seconds:7.1f} s  answer {dim}", flush=True)
    finally:
        os.killpg(head.pid, signal.SIGKILL)  # the head's process group: ours
        head.wait()
        shutil.rmtree(temp, ignore_errors=True)
    print(f"\n{'configuration':18s} {'median s':>9s}  runs  answer")
    med = {c: statistics.median(t) for c, t in times.items()}
    for label in configs:
        print(f"{label:18s} {med[label]:9.1f}  {len(times[label]):4d}  {sorted(dims[label], key=str)}")
    print(f"\nRay backend overhead against worker processes: {med['ray, 2 actors'] / med['2 workers'] - 1:+.1%}")
    if a.with_init:
        print(f"with its own Ray instance started per sweep: {med['ray, own instance'] / med['2 workers'] - 1:+.1%}")


if __name__ == "__main__":
    main()
