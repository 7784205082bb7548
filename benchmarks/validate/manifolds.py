"""Third-party manifolds of known dimension: does every model learn, and is the answer the dimension?

scikit-dimension's benchmark manifolds (``skdim.datasets.BenchmarkManifolds(random_state=0)``, 4,000
points each): M4_Nonlinear (d = 4 in 8 features), M6_Nonlinear (d = 6 in 36) and M8_Nonlinear (d = 12
in 72), the three on which issue #13 found zdim recommending 1, 10 and 24. For each, two sweeps:

- ``per-size e40``: the issue's command, ``zdim sweep X.npy --mode per-size --refine --epochs 40``;
- ``default``: ``zdim sweep X.npy`` as it runs by default (settle mode, 3 seeds, epoch cap 500),
  with ``--seeds`` from ``--settle-seeds``.

Printed per sweep: the recommended size and how sure (bootstrap), whether it is settled, the trials that
learned nothing (held-out KL < 0.5 nats and MSE >= 0.9 on standardized features), the sizes tried and
the wall time. Both sweeps keep the grid as given (``extend=False``) so that they see the same sizes
before ``--refine``.

Before the sweeps, each set's linear structure is printed: the numerical rank of its standardized
features (as zdim sees them) and the share of their variance in the first d and 2d principal components.
These generators place each angle and radius pair on a disk (``r cos 2 pi t, r sin 2 pi t``), so d
curved dimensions fill a flat space of 2d. zdim's intrinsic-dimension estimates (TwoNN, MLE) follow.
``--rank-only`` prints just that (seconds).

Usage: ``PYTHONPATH=src .venv/bin/python benchmarks/validate/manifolds.py`` (needs scikit-dimension,
in the dev extra; about half an hour on 2 cores).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402

import zdim  # noqa: E402
from zdim.rules import learned_nothing  # noqa: E402

SETS = {  # name: (true dimension, sizes)
    "M4_Nonlinear": (4, (1, 2, 3, 4, 6, 8)),
    "M6_Nonlinear": (6, (2, 4, 6, 8, 12, 16)),
    "M8_Nonlinear": (12, (4, 8, 12, 16, 24, 32)),
}


def linear_structure(name: str, d: int, x: np.ndarray) -> str:
    """One line: the numerical rank of the standardized features and the variance share of the first d
    and 2d principal components, and zdim's intrinsic-dimension estimates."""
    z = x.astype(np.float64)
    z = (z - z.mean(0)) / z.std(0)
    s = np.linalg.svd(z, compute_uv=False)
    share = s**2 / np.sum(s**2)
    rank = int((s > 1e-6 * s[0]).sum())
    est = zdim.estimate_intrinsic_dim(z.astype(np.float32))
    return (
        f"{name} (d = {d}, {x.shape[1]} features): linear rank {rank}; variance in the first d = {d} "
        f"principal components {share[:d].sum():.1%}, in the first 2d = {2 * d} {share[: 2 * d].sum():.1%}; "
        f"intrinsic dimension (zdim estimate-id) TwoNN {est.twonn:.1f}, MLE {est.mle:.1f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default=",".join(SETS), help="comma-separated names among " + ", ".join(SETS))
    ap.add_argument("--settle-seeds", type=int, default=3, help="seeds per size of the default sweep (default 3)")
    ap.add_argument("--rank-only", action="store_true", help="print each set's linear rank and stop")
    args = ap.parse_args()
    import skdim

    generated = skdim.datasets.BenchmarkManifolds(random_state=0).generate(n=4000)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets.split(","):
            d, dims = SETS[name]
            x = np.asarray(generated[name], dtype=np.float32)
            print(linear_structure(name, d, x), flush=True)
            if args.rank_only:
                continue
            path = Path(tmp) / f"{name}.npy"
            np.save(path, x)
            runs = {
                "per-size e40": dict(mode="per-size", refine=True, epochs=40),
                "default": dict(seeds=args.settle_seeds),
            }
            for label, kw in runs.items():
                t0 = time.perf_counter()
                out = Path(tmp) / f"{name}-{label}"
                r = zdim.sweep(str(path), dims=dims, out=out, extend=False, report=False, **kw)
                secs = time.perf_counter() - t0
                rec = r.recommendation
                assert rec is not None
                empty = sorted(t.trial for t in r.trials if learned_nothing(t, "gaussian"))
                tried = sorted({t.dim for t in r.trials})
                print(
                    f"{name} (d = {d}) {label:<13}: recommended {rec.confidence}"
                    f"{'' if rec.settled else ', not settled'}; learned nothing: {', '.join(empty) or 'none'}; "
                    f"sizes {tried}; {secs:.0f} s",
                    flush=True,
                )


if __name__ == "__main__":
    main()
