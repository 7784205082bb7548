"""Members that reach what their size can reach (issue 36): each size of a default run beside the same member
trained ten times longer and beside the linear model of its size.

For each set, one sweep as a user runs it (``zdim.sweep`` with every default but the options given here),
then, for every size of the run directory's own trials (the first fold of a folded run), per size:

- ``zdim``: the held-out NLL of the run's member (mean over its seeds), nats per sample;
- ``long``: the same member (same data split, seed, architecture and recipe) trained again for ten times
  its epochs with a learning rate decayed on a cosine from the recipe's to zero, the weights of its best
  validation epoch kept, evaluated on the same held-out samples with the same ``k``;
- ``linear``: probabilistic PCA of the size on the same training and held-out samples (Gaussian data; from
  D - 1 components on, the full-covariance Gaussian: ``zdim.likelihoods.Reference``), ``-`` where the data
  have none;
- the gaps ``zdim - long`` (the target: at most 0.3) and ``zdim - linear`` (at most 0.1).

Sets: scikit-learn's ``breast_cancer`` (569 x 30), ``wine`` (178 x 13), ``diabetes`` (442 x 10), the
``swiss_roll`` and ``s_curve`` (4,000 points, noise 0.05; d = 2 in 3 features), ``planted`` (a Gaussian
table of known dimension, ``zdim.testing.make_planted_data(3, 12, 3000)``) and ``digits`` (Bernoulli).

Usage: ``PYTHONPATH=src .venv/bin/python benchmarks/validate/reach.py [--sets a,b] [--seeds N] [--folds N]
[--times 10] [--dims 1,2,4]`` (``--times``: how much longer the long runs train; tens of minutes per set on 2
busy cores at the defaults).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import zdim  # noqa: E402
from zdim.data.dataset import Data  # noqa: E402
from zdim.data.folds import fold_splits  # noqa: E402
from zdim.evaluation.metrics import evaluate  # noqa: E402
from zdim.sweeps.planning.config import SweepConfig, build_sweep_model, eval_data  # noqa: E402
from zdim.sweeps.records.runs import RunDir  # noqa: E402
from zdim.testing import make_planted_data  # noqa: E402
from zdim.training.trainer import Trainer  # noqa: E402

SETS = ("breast_cancer", "wine", "diabetes", "swiss_roll", "s_curve", "planted", "digits")


def generate(name: str, where: Path) -> str:
    """The set as a file (or zdim's embedded name) a sweep reads."""
    from sklearn import datasets

    if name == "digits":
        return "digits"
    if name in ("breast_cancer", "wine", "diabetes"):
        x = getattr(datasets, f"load_{name}")().data
    elif name == "planted":
        x = make_planted_data(3, 12, 3000, noise=0.05, seed=0)
    else:
        x, _ = getattr(datasets, f"make_{name}")(4000, noise=0.05, random_state=0)
    path = where / f"{name}.npy"
    np.save(path, np.asarray(x, dtype=np.float32))
    return str(path)


def long_run(data: Data, cfg: SweepConfig, dim: int, seed: int, epochs: int) -> float:
    """The member ``(dim, seed)`` of a sweep of ``cfg`` trained for ``epochs`` epochs, its learning rate on a
    cosine from the recipe's to zero, no early stopping or plateaus, the best validation weights kept: its
    held-out NLL on the sweep's held-out samples."""
    torch.manual_seed(seed)  # as the sweep builds it
    model = build_sweep_model(data, dim, cfg)
    config = replace(cfg.train, seed=seed, epochs=epochs, patience=0, lr_patience=0)
    trainer = Trainer(model, data.train, data.val, config)
    while not trainer.done:
        trainer.lr_scale = 0.5 * (1.0 + math.cos(math.pi * trainer.epoch / epochs))
        trainer.run_epoch()
    trainer.finish()
    held_out = eval_data(data, cfg)
    return float(evaluate(model, held_out.test, k=cfg.k, seed=seed)["nll"])


def _value(text: str) -> object:
    """A keyword's value from the command line: an int, a float, a tuple of ints (``a,b``) or the text."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    if "," in text:
        return tuple(int(v) for v in text.split(","))
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default=",".join(SETS), help="comma-separated: " + ", ".join(SETS))
    ap.add_argument("--seeds", type=int, default=None, help="seeds per size (default: zdim's)")
    ap.add_argument("--folds", type=int, default=None, help="folds (default: zdim's)")
    ap.add_argument("--dims", default=None, help="sizes (default: zdim's grid, grown and refined)")
    ap.add_argument("--times", type=float, default=10.0, help="how many times longer the long runs train")
    ap.add_argument("--long-seeds", type=int, default=1, help="seeds per size trained again for long (default 1)")
    ap.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a zdim.sweep keyword (a number or a word)"
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"zdim {zdim.__version__}; long runs: {args.times:g}x the member's epochs, cosine-decayed learning rate")
    with tempfile.TemporaryDirectory() as tmp:
        for name in [s for s in args.sets.split(",") if s]:
            source = generate(name, Path(tmp))
            kw: dict[str, object] = {}
            for key in ("seeds", "folds", "dims"):
                if getattr(args, key) is not None:
                    kw[key] = getattr(args, key)
            for item in args.set:
                key, value = item.split("=", 1)
                kw[key] = _value(value)
            t0 = time.perf_counter()
            out = Path(tmp) / name
            r = zdim.sweep(source, out=out, report=False, **kw)
            secs = time.perf_counter() - t0
            rec = r.recommendation
            info = json.loads((out / "run.json").read_text())
            cfg = SweepConfig.from_dict(info["sweep"])
            data = zdim.load_data(source, seed=cfg.train.seed)
            folds = int(info["sweep"].get("folds", 1))
            if folds > 1:
                data = fold_splits(data, folds, seed=cfg.train.seed)[0]
            trials = [t for t in RunDir(out).records(verify=False) if t.complete]
            print(
                f"\n== {name}: {data.train.shape[0]} train x {data.n_features}, {data.likelihood}; answer "
                f"{rec.dim if rec else None}; sweep {secs:.0f} s; folds {folds} (this table: fold 1)"
            )
            print("size | seeds | zdim NLL | long NLL | linear | zdim - long | zdim - linear | epochs | long s")
            for dim in sorted({t.dim for t in trials}):
                ts = sorted((t for t in trials if t.dim == dim), key=lambda t: t.seed)
                nll = float(np.mean([t.nll for t in ts]))
                lin = [t.linear_nll for t in ts if t.linear_nll is not None]
                t1 = time.perf_counter()
                longs = [
                    long_run(data, cfg, dim, t.seed, max(1, round(args.times * (t.epochs_run or 1))))
                    for t in ts[: args.long_seeds]
                ]
                long_nll = float(np.mean(longs))
                short = float(np.mean([t.nll for t in ts[: args.long_seeds]]))
                linear = f"{lin[0]:.2f}" if lin else "-"
                gap_lin = f"{nll - lin[0]:+.2f}" if lin else "-"
                epochs = ",".join(str(t.epochs_run) for t in ts)
                print(
                    f"{dim} | {len(ts)} | {nll:.2f} | {long_nll:.2f} | {linear} | {short - long_nll:+.2f} | {gap_lin} "
                    f"| {epochs} | {time.perf_counter() - t1:.0f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
