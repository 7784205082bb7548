"""Peak resident memory (RSS) of zdim sweeps, each measured in a fresh process.

    .venv/bin/python benchmarks/bench_memory.py               # MNIST sweep, then a > 4 GiB memory-mapped .npy
    .venv/bin/python benchmarks/bench_memory.py --skip-big    # MNIST sweep only

1. MNIST: ``zdim.sweeps.execute.sweep`` over sizes 2,4,8,16,32,64 (``--epochs``, default 1: peak memory does
   not grow with epochs), held-out NLL with k=100, run directory in a temporary folder. Target < 1.5 GB.
2. Memory map: a float32 ``.npy`` of ``--gb`` GB (default 4.4 GB, i.e. over 4 GiB; MNIST training images
   tiled) is written into a temporary folder, then swept through ``zdim.load_data`` (``.npy`` is opened
   memory-mapped) over ``--big-dims`` for 1 epoch with 1% validation and test splits and k=5. Target
   < 3 GB. The folder is removed afterwards, also on error or Ctrl-C. Skipped, with the reason, when
   the disk holds less than twice the file plus 1 GB, or less than 4 GB of memory is available.

Each child process reports its peak RSS (``VmHWM``, which counts file pages of a memory map while they
are mapped) after loading the data and at the end, its RSS after loading, and the peak of its anonymous
memory (``RssAnon`` sampled every 50 ms: what has to fit in RAM; a memory map's clean file pages count
in RSS but the kernel reclaims them). A memory-mapped source this large has its splits spilled to an
unlinked file (``zdim.data.spill``) rather than copied into RAM. GB here is 10^9 bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zdim  # first: it sets OMP_WAIT_POLICY=PASSIVE (unless set) before torch loads OpenMP

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import contextlib

from _common import default_mnist  # noqa: E402

GB = 1e9


def _status(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024 / GB  # kB
    raise KeyError(key)


def peak_rss() -> float:
    """Peak RSS of this process: VmHWM on Linux. (``ru_maxrss`` is not used: Linux carries it over from
    the parent across fork and exec, so a child would report the parent's peak.)"""
    try:
        return _status("VmHWM")
    except (OSError, KeyError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB  # other Unix: no /proc


def current_rss() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / GB


def mem_available() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024 / GB
    return 0.0


class AnonPeak:
    """Samples this process's anonymous resident memory (RssAnon: what must fit in RAM, unlike clean
    file pages of a memory map, which the kernel reclaims) every ``period`` seconds; ``peak`` in GB."""

    def __init__(self, period: float = 0.05) -> None:
        import threading

        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(period,), daemon=True)
        self._thread.start()

    def _run(self, period: float) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, _status("RssAnon"))
            except (OSError, KeyError):
                return
            self._stop.wait(period)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def child(kind: str, source: str, dims: str, epochs: int, k: int) -> None:
    """Run one sweep in this (fresh) process and print one line of JSON with its memory figures."""
    from zdim.sweeps.execute import sweep
    from zdim.sweeps.planning.config import SweepConfig
    from zdim.training.config import TrainConfig

    anon = AnonPeak()
    base = peak_rss()
    t0 = time.perf_counter()
    kw = {"val_fraction": 0.01, "test_fraction": 0.01} if kind == "memmap" else {}
    data = zdim.load_data(source, **kw)
    load = {"peak_after_load": peak_rss(), "rss_after_load": current_rss(), "load_s": time.perf_counter() - t0}
    cfg = SweepConfig(dims=tuple(int(d) for d in dims.split(",")), train=TrainConfig(epochs=epochs), k=k)
    with tempfile.TemporaryDirectory(prefix="zdim-bench-mem-run-") as tmp:
        res = sweep(data, config=cfg, out=os.path.join(tmp, "run"), mode="per-size")
    print(
        json.dumps(
            {
                "kind": kind,
                "base": base,
                **load,
                "peak": peak_rss(),
                "peak_anon": anon.stop(),
                "spilled": bool(data.extra.get("spilled")),
                "seconds": time.perf_counter() - t0,
                "n_train": int(data.train.shape[0]),
                "recommended": res.recommended_dim,
                "status": [t.status.value for t in res.trials],
            }
        )
    )


def memory_cgroup(limit_gb: float) -> Path | str:
    """A fresh memory cgroup limited to ``limit_gb`` (cgroup v1 or v2, needs root), or why there is none."""
    name = f"zdim-bench-{os.getpid()}"
    last = "no memory cgroup hierarchy found"
    for root, limit_file in (
        (Path("/sys/fs/cgroup/memory"), "memory.limit_in_bytes"),  # v1
        (Path("/sys/fs/cgroup"), "memory.max"),  # v2, unified at the root
        (Path("/sys/fs/cgroup/unified"), "memory.max"),  # v2 beside v1
    ):
        if not (root / "cgroup.procs").exists():
            continue
        folder = root / name
        try:
            folder.mkdir()
            (folder / limit_file).write_text(str(int(limit_gb * GB)))
            return folder
        except OSError as e:
            with contextlib.suppress(OSError):
                folder.rmdir()
            last = f"{folder}: {e}"
    return last


def measure(
    kind: str,
    source: str,
    dims: str,
    epochs: int,
    k: int,
    cgroup: Path | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, object]:
    """Run one sweep in a fresh process (inside ``cgroup`` when given); its figures, or ``killed``."""
    prefix = ["sh", "-c", f'echo $$ > {cgroup}/cgroup.procs && exec "$0" "$@"'] if cgroup else []
    cmd = prefix + [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--source",
        source,
        "--dims",
        dims,
        "--epochs",
        str(epochs),
        "--k",
        str(k),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if cgroup is not None and out.returncode in (-9, 137):
        return {"killed": True, "stderr": out.stderr[-300:]}
    if out.returncode != 0:
        raise RuntimeError(f"child failed ({out.returncode}): {out.stderr[-2000:]}")
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def write_npy(path: Path, gb: float, mnist: str) -> tuple[int, int]:
    """A float32 (n, 784) .npy of at least ``gb`` GB: MNIST training images tiled, written in chunks."""
    import numpy as np

    tile = zdim.load_data(mnist).train.numpy()  # (54000, 784) float32 in [0, 1]
    d = tile.shape[1]
    n = int(gb * GB / (4 * d)) + 1
    with open(path, "wb") as f:  # plain writes: a memory map here would make this process's RSS the file's
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (n, d)})
        step = len(tile)
        for start in range(0, n, step):
            f.write(np.ascontiguousarray(tile[: min(step, n - start)], dtype="<f4").tobytes())
    return n, d


def report(label: str, r: dict[str, object], target: float) -> None:
    peak = float(r["peak"])  # type: ignore[arg-type]
    verdict = "met" if peak < target else f"MISSED by {peak - target:.2f} GB ({peak / target:.2f}x the target)"
    print(
        f"{label}: peak RSS {peak:.2f} GB (after loading the data {float(r['peak_after_load']):.2f} GB peak, "  # type: ignore[arg-type]
        f"{float(r['rss_after_load']):.2f} GB resident; interpreter + imports {float(r['base']):.2f} GB); "  # type: ignore[arg-type]
        f"target < {target:g} GB: {verdict}; {float(r['seconds']):.0f} s, {r['n_train']} training samples"
    )  # type: ignore[arg-type]
    anon = float(r["peak_anon"])  # type: ignore[arg-type]
    verdict = "met" if anon < target else f"MISSED by {anon - target:.2f} GB"
    where = "splits spilled to a file" if r.get("spilled") else "splits in RAM"
    print(
        f"  peak anonymous memory (RssAnon, sampled every 50 ms) {anon:.2f} GB, "
        f"target < {target:g} GB: {verdict}; {where}"
    )


def limited(path: str, dims: str, limit_gb: float) -> None:
    """The same memory-map sweep inside a memory cgroup of ``limit_gb``: splits spilled to a file
    (zdim's default for a source this large), then copied into RAM (``ZDIM_SPILL_BYTES=1e18``)."""
    for label, env in (("splits spilled to a file", {}), ("splits copied into RAM", {"ZDIM_SPILL_BYTES": "1e18"})):
        group = memory_cgroup(limit_gb)
        if isinstance(group, str):
            print(f"  under a {limit_gb:g} GB memory limit: not measured ({group}; needs root and a cgroup)")
            return
        try:
            r = measure("memmap", path, dims, 1, 5, cgroup=group, env=env)
        finally:
            with contextlib.suppress(OSError):
                group.rmdir()
        if r.get("killed"):
            print(f"  under a {limit_gb:g} GB memory limit (cgroup), {label}: killed for lack of memory")
        else:
            print(
                f"  under a {limit_gb:g} GB memory limit (cgroup), {label}: completed in {float(r['seconds']):.0f} s "  # type: ignore[arg-type]
                f"(peak RSS {float(r['peak']):.2f} GB, peak anonymous {float(r['peak_anon']):.2f} GB)"  # type: ignore[arg-type]
            )
        sys.stdout.flush()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=default_mnist(), help="MNIST IDX folder (default ../shared/datasets/mnist)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--gb", type=float, default=4.4, help="size of the generated .npy in GB (10^9 bytes)")
    ap.add_argument("--big-dims", default="16", help="latent sizes of the memory-map sweep")
    ap.add_argument("--tmp", default=None, help="folder for the generated .npy (default: the system's temp)")
    ap.add_argument("--skip-big", action="store_true")
    ap.add_argument(
        "--limit-gb",
        type=float,
        default=3.0,
        help="then rerun the memory-map sweep inside a memory cgroup of this size, spilled and in RAM "
        "(needs root; 0 skips; default 3)",
    )
    ap.add_argument("--child", choices=["mnist", "memmap"], help=argparse.SUPPRESS)
    ap.add_argument("--source", help=argparse.SUPPRESS)
    ap.add_argument("--dims", default="2,4,8,16,32,64", help="latent sizes of the MNIST sweep")
    ap.add_argument("--k", type=int, default=100)
    a = ap.parse_args()
    if a.child:
        child(a.child, a.source, a.dims, a.epochs, a.k)
        return 0
    if not os.path.isdir(a.data):
        print(f"MNIST not found at {a.data}: pass --data DIR")
        return 2
    print(f"Peak RSS of zdim sweeps, each in a fresh process ({os.cpu_count()} cores, shared machine)", flush=True)
    r = measure("mnist", a.data, a.dims, a.epochs, a.k)
    report(f"MNIST sweep (sizes {a.dims}, {a.epochs} epoch(s), k={a.k})", r, 1.5)
    if a.skip_big:
        return 0
    need = 2 * a.gb * GB  # the file, and zdim's spill file of its splits (same folder by default)
    tmp_root = a.tmp or tempfile.gettempdir()
    free = shutil.disk_usage(tmp_root).free
    if free < need + GB:
        print(
            f"memory-map sweep: skipped: {tmp_root} has {free / GB:.1f} GB free, the file and zdim's spill "
            f"file need 2 x {a.gb:g} GB plus 1 GB to spare: pass --tmp DIR on a larger disk"
        )
        return 0
    avail = mem_available()
    if avail < 4.0:
        print(f"memory-map sweep: skipped: {avail:.1f} GB of memory available, below 4 GB")
        return 0
    folder = Path(tempfile.mkdtemp(prefix="zdim-bench-memmap-", dir=tmp_root))
    try:
        path = folder / "big.npy"
        t0 = time.perf_counter()
        n, d = write_npy(path, a.gb, a.data)
        size = path.stat().st_size
        print(
            f"wrote {path} ({n} x {d} float32, {size / GB:.2f} GB = {size / 2**30:.2f} GiB) in "
            f"{time.perf_counter() - t0:.0f} s",
            flush=True,
        )
        r = measure("memmap", str(path), a.big_dims, 1, 5)
        report(f"memory-mapped .npy sweep (sizes {a.big_dims}, 1 epoch, k=5)", r, 3.0)
        print(f"  file {size / GB:.2f} GB; peak RSS / file size = {float(r['peak']) / (size / GB):.2f}")  # type: ignore[arg-type]
        if a.limit_gb:
            limited(str(path), a.big_dims, a.limit_gb)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        print(f"removed {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
