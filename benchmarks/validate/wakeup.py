"""Wake-up levers on real-valued data (issue 22): which one gets every member of a sweep started at once?

A Gaussian VAE on standardized features starts where it decodes the feature means and ignores its
latents (MSE ~1, KL ~0); many members of a sweep stay there for a long time. For each data set and each
lever configuration (``LEVERS``: every lever alone, some combinations, today's training and the
current default) this runs a settle-mode sweep over fixed sizes, ``zdim.sweeps.execute.sweep(data,
config=SweepConfig(...), mode="settle", extend=False, refine=False)`` in a temporary run directory, and
prints one row:

- ``wake``: per member (grid order: sizes, then seeds), the first epoch whose training KL reached
  ``EMPTY_KL`` (0.5 nats; ``Trainer.awake``), ``-`` for never; then the largest of them;
- ``fell back``: members awake at some epoch whose training KL was below 0.5 nats at their last epoch;
- ``member-epochs``: the sum of ``epochs_run`` over the members (what settling cost);
- ``empty KL/MSE``: members that learned nothing by the fixed test zdim used before issue 22 (held-out
  KL < 0.5 nats and MSE >= 0.9);
- ``learned nothing``: members that learned nothing by ``zdim.answer.checks.learned_nothing``, measured: their
  held-out NLL does not beat the model that decodes the feature means (``zdim.evaluation.metrics.Reference``) by
  more than twice the paired standard error of the per-sample gain;
- ``lever stops``: members stopped (patience or settle mode) while a lever still acted (before
  ``TrainConfig.warm_epochs``): must be 0;
- the answer (``*``: not settled), the wall time, and the held-out NLL per size (mean over seeds).

Data: scikit-dimension's benchmark manifolds (``BenchmarkManifolds(random_state=0).generate(n=4000)``,
cut to ``--max-samples``), the planted manifolds of ``benchmarks/validate/run.py --quick``
(``zdim.testing.make_planted_data``) and scikit-learn's breast-cancer table (no download).

Usage: ``PYTHONPATH=src python benchmarks/validate/wakeup.py [--sets M4_Nonlinear,...] [--levers
today,default,...] [--seeds N] [--quick]``. ``--quick`` (under a minute) is a smoke test of tiny
budgets, not a measurement.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import zdim  # noqa: E402
from zdim.answer.checks import EMPTY_MSE, learned_nothing  # noqa: E402
from zdim.data.dataset import Data  # noqa: E402
from zdim.records import EMPTY_KL, TrialRecord  # noqa: E402
from zdim.sweeps.execute import sweep  # noqa: E402
from zdim.sweeps.planning.config import SweepConfig  # noqa: E402
from zdim.sweeps.records.runs import RunDir  # noqa: E402
from zdim.testing import make_planted_data  # noqa: E402
from zdim.training.config import TrainConfig  # noqa: E402

# every lever off: the training of zdim before issue 22
OFF: dict[str, Any] = {
    "warmup_epochs": 0.0,
    "free_bits": 0.0,
    "free_bits_epochs": 0.0,
    "sigma_init": 1.0,
    "sigma_warmup_epochs": 0.0,
    "sigma_after": 0,
    "lr_warmup_epochs": 0.0,
}
LEVERS: dict[str, dict[str, Any] | None] = {  # name: TrainConfig fields over OFF (None: TrainConfig's defaults)
    "today": {},
    "kl-warmup": {"warmup_epochs": 10.0},
    "sigma-0.3": {"sigma_init": 0.3},
    "sigma-pca": {"sigma_init": "pca"},
    "sigma-hold": {"sigma_init": 0.3, "sigma_warmup_epochs": 5.0},
    "free-bits": {"free_bits": 0.5, "free_bits_epochs": 10.0},
    "lr-warmup": {"lr_warmup_epochs": 5.0},
    "kl+lr": {"warmup_epochs": 10.0, "lr_warmup_epochs": 5.0},
    "kl+sigma-hold": {"warmup_epochs": 10.0, "sigma_init": 0.3, "sigma_warmup_epochs": 5.0},
    "fb+sigma-hold": {"free_bits": 0.5, "free_bits_epochs": 10.0, "sigma_init": 0.3, "sigma_warmup_epochs": 5.0},
    "default": None,
}

MANIFOLDS = {  # name: (intrinsic dimension, sizes)
    "M4_Nonlinear": (4, (1, 2, 3, 4, 6, 8)),
    "M6_Nonlinear": (6, (2, 4, 6, 8, 12, 16)),
    "M8_Nonlinear": (12, (4, 8, 12, 16, 24, 32)),
    "M1_Sphere": (10, (2, 4, 8, 10, 11)),  # a 10-sphere linearly embedded in 11 features: nearly full rank
    "M7_Roll": (2, (1, 2, 3)),  # the Swiss roll: curved, in 3 features
    "M9_Affine": (20, (4, 8, 16, 20)),  # an affine 20-d space in 20 features: full rank
}
PLANTED = {  # name: (d, D, noise, n, sizes): the cases of benchmarks/validate/run.py --quick
    "planted-1-16": (1, 16, 0.01, 2000, (1, 2, 4, 8, 16)),
    "planted-2-16": (2, 16, 0.01, 2000, (1, 2, 4, 8)),
    "planted-2-32": (2, 32, 0.05, 4000, (1, 2, 4, 8, 16, 32)),
    "planted-3-16": (3, 16, 0.01, 4000, (1, 2, 4, 8, 16)),
    "planted-4-32": (4, 32, 0.01, 4000, (1, 2, 4, 8, 16)),
}
TABLES = {"breast_cancer": (None, (1, 2, 4, 8, 16))}  # sklearn.datasets.load_breast_cancer: 569 x 30
SETS = [*MANIFOLDS, *PLANTED, *TABLES]
QUICK_SETS = ["M7_Roll", "planted-2-16"]


def load_set(name: str, max_samples: int) -> tuple[Data, int | None, tuple[int, ...]]:
    """The data (Gaussian, standardized), its true dimension (None: unknown) and the sizes to try."""
    if name in MANIFOLDS:
        import skdim

        d, dims = MANIFOLDS[name]
        x = np.asarray(skdim.datasets.BenchmarkManifolds(random_state=0).generate(n=4000)[name], dtype=np.float32)
    elif name in PLANTED:
        d, big_d, noise, n, dims = PLANTED[name]
        x = make_planted_data(d, big_d, n, noise=noise, seed=d * 100 + big_d)
    elif name in TABLES:
        from sklearn.datasets import load_breast_cancer

        d, dims = TABLES[name]
        x = np.asarray(load_breast_cancer().data, dtype=np.float32)
    else:
        raise SystemExit(f"unknown set {name!r}: choose among {', '.join(SETS)}")
    data = zdim.load_data(x, max_samples=max_samples if len(x) > max_samples else None, likelihood="gaussian")
    return data, d, tuple(k for k in dims if k <= data.n_features)


def train_config(lever: str, epochs: int) -> TrainConfig:
    over = LEVERS[lever]
    if over is None:
        return TrainConfig(epochs=epochs)
    return TrainConfig(epochs=epochs, **(OFF | over))


def empty_by_kl_mse(t: TrialRecord) -> bool:
    """The fixed learned-nothing test of zdim before issue 22: held-out KL < EMPTY_KL, MSE >= EMPTY_MSE."""
    kl, mse = t.metric("kl"), t.metric("mse")
    return kl is not None and mse is not None and kl < EMPTY_KL and mse >= EMPTY_MSE


def wake_epoch(history: list[dict[str, float]]) -> int:
    return next((int(r["epoch"]) for r in history if float(r["train_kl"]) >= EMPTY_KL), 0)


def warm_end(train: TrainConfig, history: list[dict[str, float]]) -> int:
    """The epoch until which a lever acted on a member: the end of the warm-ups from the start, or of
    the noise-scale hold of a member still asleep after epoch ``sigma_after``."""
    end = train.warm_epochs
    after = int(train.sigma_after)
    kicked = after and len(history) >= after and wake_epoch(history[:after]) == 0
    if kicked and (train.sigma_init != 1.0 or float(train.sigma_warmup_epochs)):
        end = max(end, after + math.ceil(float(train.sigma_warmup_epochs)))
    return end


def stopped(t: TrialRecord) -> bool:
    return bool(t.stopped_early) or "settle" in t.extra


def run_one(name: str, lever: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    data, d, dims = load_set(name, args.max_samples)
    train = train_config(lever, args.epochs)
    config = SweepConfig(dims=dims, seeds=args.seeds, hidden=args.hidden, k=args.k, train=train)
    out = tmp / f"{name}-{lever}-s{args.seeds}"
    t0 = time.perf_counter()
    r = sweep(data, config=config, out=out, mode="settle", extend=False, refine=False, overwrite=True)
    secs = time.perf_counter() - t0
    run = RunDir(out)
    trials = sorted((t for t in r.trials if t.complete), key=lambda t: (t.dim, t.seed))
    resolved = train.resolve("gaussian")
    wakes, fell, nll, lever_stops = [], 0, {}, 0
    for t in trials:
        hist = run.read_history(t.dim, t.seed)
        w = wake_epoch(hist)
        lever_stops += stopped(t) and int(t.epochs_run or 0) < warm_end(resolved, hist)
        wakes.append(w)
        fell += bool(w and hist and float(hist[-1]["train_kl"]) < EMPTY_KL)
        nll.setdefault(t.dim, []).append(float(t.nll or math.nan))
    rec = r.recommendation
    return {
        "set": name,
        "d": d,
        "lever": lever,
        "wake": wakes,
        "fell": fell,
        "member_epochs": sum(int(t.epochs_run or 0) for t in trials),
        "empty_kl": sum(empty_by_kl_mse(t) for t in trials),
        "empty_nll": sum(learned_nothing(t, "gaussian") for t in trials),
        "lever_stops": lever_stops,
        "answer": f"{rec.dim}{'' if rec.settled else '*'}" if rec is not None else "-",
        "seconds": secs,
        "nll": {k: float(np.mean(v)) for k, v in nll.items()},
        "members": len(trials),
        "failed": len(r.trials) - len(trials),
    }


HEAD = (
    "set (d) | lever | wake per member | max wake | fell back | member-epochs | empty KL/MSE | learned nothing | "
    "lever stops | answer | seconds | NLL by size"
)


def row(res: dict[str, Any]) -> str:
    wakes = res["wake"]
    never = sum(w == 0 for w in wakes)
    max_wake = "never" if never == len(wakes) else str(max(w for w in wakes if w))
    if never and never < len(wakes):
        max_wake += f" ({never} never)"
    nll = " ".join(f"{k}:{v:.2f}" for k, v in sorted(res["nll"].items()))
    failed = f" ({res['failed']} failed)" if res["failed"] else ""
    cells = (
        f"{res['set']} ({res['d'] if res['d'] is not None else '?'})",
        res["lever"],
        "/".join(str(w) if w else "-" for w in wakes),
        max_wake,
        res["fell"],
        res["member_epochs"],
        f"{res['empty_kl']}/{res['members']}{failed}",
        f"{res['empty_nll']}/{res['members']}",
        res["lever_stops"],
        res["answer"],
        f"{res['seconds']:.0f}",
        nll,
    )
    return " | ".join(str(c) for c in cells)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default=None, help="comma-separated, among " + ", ".join(SETS) + " (default all)")
    ap.add_argument("--levers", default=None, help="comma-separated, among " + ", ".join(LEVERS) + " (default all)")
    ap.add_argument("--seeds", type=int, default=1, help="seeds per size (default 1)")
    ap.add_argument("--max-samples", type=int, default=4000, help="samples kept of each set (default 4000)")
    ap.add_argument("--epochs", type=int, default=500, help="epoch cap of a member (default 500, settle's)")
    ap.add_argument("--hidden", default="512,256", help="hidden widths (default 512,256, zdim's)")
    ap.add_argument("--k", type=int, default=100, help="importance samples of the held-out NLL (default 100)")
    ap.add_argument("--out", default=None, help="keep the run directories here (default: a temporary folder)")
    ap.add_argument("--quick", action="store_true", help="tiny budgets (under a minute): a smoke test")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.quick:
        args.max_samples, args.epochs, args.hidden, args.k = 600, 30, "32", 5
    args.hidden = tuple(int(h) for h in args.hidden.split(","))
    sets = args.sets.split(",") if args.sets else (QUICK_SETS if args.quick else SETS)
    levers = args.levers.split(",") if args.levers else (["today", "default"] if args.quick else list(LEVERS))
    bad = [v for v in levers if v not in LEVERS] + [s for s in sets if s not in SETS]
    if bad:
        ap.error(
            f"unknown lever or set {bad[0]!r}: choose levers among {', '.join(LEVERS)}, sets among {', '.join(SETS)}"
        )
    print("## Wake-up levers on Gaussian data (settle mode, extend=False)")
    print(
        f"budget: up to {args.max_samples} samples per set, hidden {args.hidden}, {args.seeds} seed(s) per size, "
        f"epoch cap {args.epochs}, k = {args.k}, 1 torch thread"
    )
    for lever in levers:
        over = LEVERS[lever]
        print(
            f"  {lever}: "
            + (
                "TrainConfig defaults"
                if over is None
                else (", ".join(f"{k}={v}" for k, v in over.items()) or "every lever off")
            )
        )
    print(HEAD, flush=True)
    results = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(args.out) if args.out else Path(tmp)
        for name in sets:
            for lever in levers:
                res = run_one(name, lever, args, where)
                results.append(res)
                print(row(res), flush=True)
    by = {(r["set"], r["lever"]): r for r in results}
    for name in sets:
        if (name, "today") in by and (name, "default") in by:
            a, b = by[(name, "today")]["member_epochs"], by[(name, "default")]["member_epochs"]
            print(f"{name}: member-epochs to settle today {a}, default {b} ({b / max(a, 1):.0%} of today)")
    print(f"total {time.perf_counter() - t0:.0f} s")
    return results


if __name__ == "__main__":
    main()
