"""Full MNIST in settle mode, 2 to 100 latent units, grey or dynamically binarized (issue #13).

Runs ``zdim.sweep`` in settle mode (every size and seed trained together until the answer settles) on
the IDX files of ``../shared/datasets/mnist`` and prints, for comparison with the literature:

- the held-out bound per latent size (whether it stops improving without degrading from extra units:
  the shape of Kingma & Welling 2014, Figure 2);
- the active units of the 50-unit model beside Burda et al. 2016, Table 1 (19 of 50, k = 1 VAE);
- the recommended size with its bootstrap uncertainty and how the training ended;
- the IWAE NLL of the best model with a larger k, beside Burda et al.'s 86.76 nats and Pythae's
  reproducibility table (VAE, latent 40: 89.78 nats), both on dynamically binarized MNIST.

Usage (from the repository root)::

    .venv/bin/python benchmarks/validate/mnist_settle.py                 # grey levels, Bernoulli decoder
    .venv/bin/python benchmarks/validate/mnist_settle.py --binarize      # dynamically binarized
    .venv/bin/python benchmarks/validate/mnist_settle.py --time-budget 1800 --seeds 1   # what fits in 30 min

Without a time budget it runs until the answer settles, which takes hours on 2 CPU cores. A run that
ends on its budget says so in its last lines: its figures are those of unconverged models. The run
directory (``--out``, default ``runs/mnist-settle[-binarized]``) keeps every trial and the report;
``--resume`` goes on from its last checkpoint.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from statistics import fmean

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from zdim import ZdimError, load_data, sweep  # noqa: E402
from zdim.evaluation.metrics import evaluate  # noqa: E402
from zdim.sweeps.records.runs import RunDir  # noqa: E402

BURDA_AU_50 = 19  # Burda et al. 2016, Table 1: VAE, one stochastic layer of 50 units, k = 1
BURDA_NLL = 86.76  # same row, nats, dynamically binarized MNIST
PYTHAE_NLL_40 = 89.78  # Pythae's reproducibility table: VAE, latent 40, dynamically binarized MNIST


def _mnist_dir() -> Path:
    src = ROOT.parent / "shared" / "datasets" / "mnist"
    return src if src.is_dir() else Path("/work/shared/datasets/mnist")


def _sizes(text: str) -> list[int]:
    """``--dims``: comma-separated positive integers (argparse reports anything else in one line)."""
    try:
        dims = [int(d) for d in text.split(",")]
    except ValueError:
        dims = []
    if not dims or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of latent sizes: give e.g. 2,5,10,20,50,100")
    return dims


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dims", type=_sizes, default="2,5,10,20,50,100", help="latent sizes (default 2,5,10,20,50,100)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per size (default 3, settle mode's default)")
    p.add_argument("--binarize", action="store_true", help="dynamically binarized MNIST, as in the literature")
    p.add_argument("--time-budget", type=float, default=None, help="seconds of training before every member stops")
    p.add_argument("--epochs", type=int, default=None, help="epoch cap (default: settle mode's, 500)")
    p.add_argument("--max-samples", type=int, default=None, help="fewer images (default: all 60,000 and 10,000)")
    p.add_argument("--k", type=int, default=100, help="importance samples of the sweep's test NLL (default 100)")
    p.add_argument("--k-final", type=int, default=1000, help="importance samples for the best model (default 1000)")
    p.add_argument("--k-final-n", type=int, default=1000, help="test images for the best model (default 1000)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--out", type=Path, default=None, help="run directory (default runs/mnist-settle[-binarized])")
    p.add_argument("--resume", action="store_true", help="go on from the run directory's last checkpoint")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = args.out or ROOT / "runs" / ("mnist-settle-binarized" if args.binarize else "mnist-settle")

    try:
        data = load_data(_mnist_dir(), max_samples=args.max_samples, binarize=args.binarize)
    except ZdimError as e:  # one line and exit code 2, as the zdim command does
        p.error(str(e))
    s = data.summary()
    kind = "dynamically binarized" if args.binarize else "grey levels in [0, 1], not binarized"
    print(f"## MNIST in settle mode ({s['n_train']} train, {s['n_val']} validation, {s['n_test']} test, {kind})")
    print(
        f"sizes {args.dims}, {args.seeds} seed(s) each, hidden (512, 256), batch 128, lr 1e-3, k = {args.k}, "
        f"epoch cap {args.epochs or 'settle default'}, time budget "
        f"{f'{args.time_budget:g} s' if args.time_budget else 'none'}, {args.threads} torch thread(s)"
    )
    t0 = time.perf_counter()
    try:
        r = sweep(
            data,
            dims=args.dims,
            seeds=args.seeds,
            mode="settle",
            epochs=args.epochs,
            k=args.k,
            time_budget=args.time_budget,
            extend=False,
            out=out,
            overwrite=not args.resume,
            resume=args.resume,
            progress=True,
            binarize=args.binarize,
        )
    except ZdimError as e:
        p.error(str(e))
    print(f"sweep took {time.perf_counter() - t0:.0f} s; run directory {out}")

    done = [t for t in r.trials if t.complete]
    print("latent | seeds | NLL (IWAE) | -ELBO | KL | active units | epochs | converged")
    by_dim: dict[int, list] = {}
    for t in done:
        by_dim.setdefault(t.dim, []).append(t)
    for d in sorted(by_dim):
        ts = by_dim[d]
        print(
            f"{d} | {len(ts)} | {fmean([t.nll for t in ts]):.2f} | {fmean([t.neg_elbo for t in ts]):.2f} | "
            f"{fmean([t.kl for t in ts]):.2f} | {'/'.join(str(t.active_units) for t in ts)} | "
            f"{'/'.join(str(t.epochs_run) for t in ts)} | {'/'.join('yes' if t.converged else 'no' for t in ts)}"
        )
    nlls = [fmean([t.nll for t in by_dim[d]]) for d in sorted(by_dim)]
    best_i = min(range(len(nlls)), key=nlls.__getitem__)
    worst_after = max(nlls[best_i:]) - nlls[best_i]
    print(
        f"Kingma & Welling shape (the bound stops improving and extra units cost at most 0.5 nats): "
        f"{'yes' if worst_after <= 0.5 else 'NO'} (best at {sorted(by_dim)[best_i]}; larger sizes at most "
        f"{worst_after:.2f} nats worse)"
    )
    if 50 in by_dim:
        au = "/".join(str(t.active_units) for t in by_dim[50])
        print(f"active units of the 50-unit VAE: {au} (Burda et al. 2016 Table 1: {BURDA_AU_50})")
    rec = r.recommendation
    if rec is not None:
        print(f"recommended latent size: {rec.confidence}; settled: {'yes' if rec.settled else 'NO'}")
        for w in rec.warnings:
            print(f"  warning: {w}")
        print(rec.rationale)
    best = min(done, key=lambda t: t.nll)
    model = RunDir(out).load_trial_model(best.dim, best.seed)
    n_eval = min(args.k_final_n, data.test.shape[0])
    t1 = time.perf_counter()
    ev = evaluate(model, data.test[:n_eval], k=args.k_final, seed=0)
    print(
        f"IWAE NLL of the best model (latent {best.dim}, seed {best.seed}), k = {args.k_final} on {n_eval} test "
        f"images: {ev['nll']:.2f} nats ({time.perf_counter() - t1:.0f} s); Burda et al. 2016: {BURDA_NLL} "
        f"(latent 50, k = 5000), Pythae: {PYTHAE_NLL_40} (latent 40), both dynamically binarized"
        + ("" if args.binarize else "; not comparable: this run models grey levels")
    )
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
