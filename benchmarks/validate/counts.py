"""Validate zdim on count data of known latent dimension (issue 15, part 3).

Simulated single-cell-like counts: for each cell, ``z ~ N(0, I_d)``, gene proportions
``rho = softmax(W2 tanh(W1 z))`` (a random nonlinear d-dimensional factor model), a library size
``l ~ LogNormal(log 2000, 0.4)`` and counts ``x ~ NB(mean l * rho, theta)`` with a per-gene inverse
dispersion ``theta ~ LogNormal(log 5, 0.5)``. ``load_data`` infers the ``nb`` likelihood (raw integer
counts), and ``zdim.sweep`` trains one VAE per latent size and recommends one; the script prints the
recommendation per true d and whether it is within 1 of d.

Usage: ``PYTHONPATH=src python benchmarks/validate/counts.py --quick`` (few epochs, one seed);
without ``--quick`` the budget is larger (see BUDGETS). Everything printed is computed here.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# Passive OpenMP waiting, set before torch is imported (``import zdim`` sets it too, but after the torch
# import below): spinning OpenMP threads train many times slower beside other busy jobs
# (docs/performance.md, "Levers").
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from zdim import SweepConfig, TrainConfig, load_data, sweep  # noqa: E402

BUDGETS = {
    True: {"ds": (2, 4), "epochs": 30, "patience": 10, "seeds": 1, "k": 50, "dims": (1, 2, 3, 4, 5, 6, 8)},
    False: {"ds": (1, 2, 4, 6), "epochs": 200, "patience": 20, "seeds": 2, "k": 200, "dims": (1, 2, 3, 4, 5, 6, 8, 10)},
}


def simulate_counts(d: int, n: int = 2000, genes: int = 100, hidden: int = 32, seed: int = 0) -> np.ndarray:
    """``(n, genes)`` NB counts whose mean depends on a d-dimensional latent variable (see module doc)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, d))
    w1 = rng.normal(size=(d, hidden)) * 1.5 / np.sqrt(d)
    w2 = rng.normal(size=(hidden, genes)) * 2.0 / np.sqrt(hidden)
    logits = np.tanh(z @ w1) @ w2
    rho = np.exp(logits - logits.max(1, keepdims=True))
    rho /= rho.sum(1, keepdims=True)
    library = rng.lognormal(np.log(2000.0), 0.4, size=(n, 1))
    theta = rng.lognormal(np.log(5.0), 0.5, size=genes)
    mu = library * rho
    return rng.negative_binomial(theta, theta / (theta + mu)).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few epochs, one seed, d in {2, 4}")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    b = BUDGETS[args.quick]
    torch.set_num_threads(args.threads)
    print("## Count data of known latent dimension (NB decoder, library size from each cell)")
    print(
        f"budget: 2000 cells x 100 genes, sizes {list(b['dims'])}, hidden (64, 64), {b['epochs']} epochs max "
        f"(patience {b['patience']}), {b['seeds']} seed(s), k = {b['k']}"
    )
    print("d | likelihood | zeros | recommended | nll-knee | active-units | AU(largest) | within 1 | seconds")
    within = 0
    for d in b["ds"]:
        t0 = time.perf_counter()
        x = simulate_counts(d, seed=100 + d)
        data = load_data(x)
        cfg = SweepConfig(
            dims=b["dims"],
            seeds=b["seeds"],
            hidden=(64, 64),
            k=b["k"],
            train=TrainConfig(epochs=b["epochs"], batch_size=128, patience=b["patience"]),
        )
        r = sweep(data, config=cfg, mode="per-size")
        rec = r.recommendation
        signals = getattr(rec, "signals", {}) if rec is not None else {}
        au = getattr(rec, "largest_active_units", None)
        ok = r.recommended_dim is not None and abs(r.recommended_dim - d) <= 1
        within += ok
        print(
            " | ".join(
                str(v)
                for v in (
                    d,
                    data.likelihood,
                    f"{float((x == 0).mean()):.2f}",
                    r.recommended_dim,
                    signals.get("nll-knee"),
                    signals.get("active-units"),
                    "-" if au is None else f"{au:g}",
                    "yes" if ok else "NO",
                    f"{time.perf_counter() - t0:.0f}",
                )
            )
        )
        sys.stdout.flush()
    print(f"within 1 of d: {within}/{len(b['ds'])}")


if __name__ == "__main__":
    main()
