"""Validate zdim's recommendation against known answers (issue 6).

1. Planted manifolds (``zdim.testing.make_planted_data``: a random smooth map of d uniform variables
   into D dimensions plus Gaussian noise) for several d, D, noise levels and sample sizes: the
   intrinsic-dimension estimate, the grid built from it, each rule's pick and the active units of the
   largest (over-sized) model, next to d.
2. MNIST, one sweep over latent sizes up to 50: the bound against latent size (the shape of Kingma &
   Welling 2014, Figure 2: better with more units, no degradation from superfluous ones), the active
   units of the 50-unit model next to Burda et al. 2016 Table 1, and the IWAE NLL of the best model
   re-evaluated with a larger k next to their 86.76 nats.

Usage: ``PYTHONPATH=src python benchmarks/validate/run.py --quick`` (about 10 minutes on 2 busy
cores); without ``--quick`` the budgets are larger (see BUDGETS). Everything printed is computed here.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from zdim import SweepConfig, TrainConfig, estimate_intrinsic_dim, load_data, sweep  # noqa: E402
from zdim.answer.rules import recommend  # noqa: E402
from zdim.evaluation.intrinsic import dims_from_estimate  # noqa: E402
from zdim.evaluation.metrics import evaluate  # noqa: E402
from zdim.models.checkpoints import load_vae  # noqa: E402
from zdim.records import trial_name  # noqa: E402
from zdim.sweeps.execute import sweep as search_sweep  # noqa: E402  # takes the estimate the grid came from
from zdim.testing import make_planted_data  # noqa: E402

BUDGETS = {
    True: {
        "planted": [
            (1, 16, 0.01, 2000),
            (2, 16, 0.01, 2000),
            (2, 32, 0.05, 4000),
            (3, 16, 0.01, 4000),
            (4, 32, 0.01, 4000),
        ],
        "planted_epochs": 40,
        "mnist_samples": 10000,
        "mnist_epochs": 15,
        "mnist_dims": (2, 5, 10, 20, 50),
        "k": 100,
        "k_final": 1000,
        "k_final_n": 1000,
    },
    False: {
        "planted": [(d, D, nz, n) for d in (1, 2, 4, 6) for D in (16, 64) for nz in (0.01, 0.05) for n in (2000, 8000)],
        "planted_epochs": 100,
        "mnist_samples": None,
        "mnist_epochs": 100,
        "mnist_dims": (2, 3, 5, 10, 20, 50, 100),
        "k": 500,
        "k_final": 5000,
        "k_final_n": 10000,
    },
}
BURDA_AU_50 = 19  # Burda et al. 2016, Table 1: VAE, one stochastic layer of 50 units, k = 1
BURDA_NLL = 86.76  # same row, nats, dynamically binarized MNIST


def planted(b: dict) -> None:
    print("## Planted manifolds (recommended size and active units vs the true d)")
    print(f"budget: hidden (64, 64), {b['planted_epochs']} epochs max (patience 10), 1 seed, k = {b['k']}")
    print(
        "combined: the default rule with --refine (bisection to an exact size); the other rule columns "
        "are each rule's pick over the same trials"
    )
    head = (
        "d",
        "D",
        "noise",
        "n",
        "ID TwoNN/MLE",
        "grid",
        "tried",
        "combined",
        "nll-knee",
        "act.units",
        "generation",
        "AU(largest)",
        "rec ok",
        "AU ok",
    )
    print(" | ".join(head))
    within = {"combined": 0, "nll-knee": 0, "active-units": 0, "generation": 0, "AU(largest)": 0}
    for d, D, noise, n in b["planted"]:
        x = make_planted_data(d, D, n, noise=noise, seed=d * 100 + D)
        data = load_data(x)
        est = estimate_intrinsic_dim(data)
        dims = dims_from_estimate(est.dim, D)
        cfg = SweepConfig(
            dims=dims,
            hidden=(64, 64),
            k=b["k"],
            train=TrainConfig(epochs=b["planted_epochs"], batch_size=128, patience=10),
        )
        r = search_sweep(data, config=cfg, intrinsic=est, refine=True, mode="per-size")
        rec, s = r.recommendation, r.recommendation.signals
        au = rec.largest_active_units
        tried = sorted({t.dim for t in r.trials})
        picks = {
            "combined": rec.dim,
            "nll-knee": s["nll-knee"],
            "active-units": s["active-units"],
            "generation": s["generation"],
            "AU(largest)": au,
        }
        for key, v in picks.items():
            within[key] += v is not None and abs(v - d) <= 1
        print(
            " | ".join(
                str(v)
                for v in (
                    d,
                    D,
                    noise,
                    n,
                    f"{est.twonn:.1f}/{est.mle:.1f}",
                    list(dims),
                    tried,
                    rec.dim,
                    s["nll-knee"],
                    s["active-units"],
                    s["generation"],
                    f"{au:g}",
                    "yes" if abs(rec.dim - d) <= 1 else "NO",
                    "yes" if abs(au - d) <= 1 else "NO",
                )
            )
        )
        sys.stdout.flush()
    m = len(b["planted"])
    print("within 1 of d: " + ", ".join(f"{k} {v}/{m}" for k, v in within.items()))


def mnist(b: dict) -> None:
    src = ROOT.parent / "shared" / "datasets" / "mnist"
    if not src.is_dir():
        src = Path("/work/shared/datasets/mnist")
    data = load_data(src, max_samples=b["mnist_samples"])
    s = data.summary()
    print(
        f"\n## MNIST ({s['n_train']} train, {s['n_test']} test, {data.likelihood} likelihood on grey "
        "levels in [0, 1], not binarized)"
    )
    print(
        f"budget: hidden (512, 256), {b['mnist_epochs']} epochs max (patience 10), batch 128, 1 seed, "
        f"k = {b['k']} for the sweep"
    )
    cfg = SweepConfig(
        dims=b["mnist_dims"],
        hidden=(512, 256),
        k=b["k"],
        train=TrainConfig(epochs=b["mnist_epochs"], batch_size=128, patience=10),
    )
    t0 = time.perf_counter()
    tmp = tempfile.mkdtemp(prefix="zdim-validate-")
    r = sweep(data, config=cfg, out=Path(tmp) / "run", mode="per-size")
    print(f"sweep took {time.perf_counter() - t0:.0f} s")
    trials = [t.to_dict() for t in r.trials]
    feats = trials[0].get("gen_features", "?")
    acc = trials[0].get("gen_feature_acc")
    print(f"generation features: {feats}" + (f" (classifier accuracy on the test split {acc:.3f})" if acc else ""))
    print(f"latent | NLL (IWAE) | -ELBO | active units | FD ({feats}) | precision | recall | probe acc")
    for t in sorted(trials, key=lambda t: t["dim"]):
        print(
            f"{t['dim']} | {t['nll']:.2f} | {t['neg_elbo']:.2f} | {t['active_units']} | {t['gen_fd']:.2f} | "
            f"{t['gen_precision']:.2f} | {t['gen_recall']:.2f} | {t.get('gen_probe_acc', float('nan')):.2f}"
        )
    nlls = [t["nll"] for t in sorted(trials, key=lambda t: t["dim"])]
    mono = all(b2 <= a + 0.5 for a, b2 in zip(nlls, nlls[1:]))
    print(
        f"Kingma & Welling shape (bound improves with size, no degradation > 0.5 nats from extra units): "
        f"{'yes' if mono else 'NO'}"
    )
    t50 = next(t for t in trials if t["dim"] == 50)
    print(f"active units of the 50-unit VAE: {t50['active_units']} (Burda et al. 2016 Table 1: {BURDA_AU_50})")
    rec = recommend(r.trials)
    print(f"recommendation (combined rule): {rec.dim}; signals {rec.signals}")
    best = min(trials, key=lambda t: t["nll"])
    model = load_vae(Path(tmp) / "run" / "trials" / trial_name(best["dim"], best["seed"]))
    n_eval = min(b["k_final_n"], data.test.shape[0])
    t0 = time.perf_counter()
    ev = evaluate(model, data.test[:n_eval], k=b["k_final"], seed=0)
    print(
        f"IWAE NLL of the best model (latent {best['dim']}), k = {b['k_final']} on {n_eval} test images: "
        f"{ev['nll']:.2f} nats ({time.perf_counter() - t0:.0f} s) vs Burda et al. {BURDA_NLL} "
        "(dynamically binarized MNIST, 3280 epochs: not the same likelihood or budget)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small budgets (about 10 minutes on 2 cores)")
    p.add_argument("--skip-mnist", action="store_true", help="planted manifolds only")
    p.add_argument("--skip-planted", action="store_true", help="MNIST only")
    args = p.parse_args()
    torch.set_num_threads(2)
    b = BUDGETS[args.quick]
    t0 = time.perf_counter()
    if not args.skip_planted:
        planted(b)
    if not args.skip_mnist:
        mnist(b)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s ({'--quick' if args.quick else 'full'} budgets)")


if __name__ == "__main__":
    main()
