"""The whole MNIST bottleneck search, zdim against a per-size loop at equal epochs, to a recommendation.

    .venv/bin/python benchmarks/bench_sweep.py            # sizes 2,4,8,16,32,64 x 5 epochs, k=100
    .venv/bin/python benchmarks/bench_sweep.py --quick    # 2 epochs, k=20

Each contestant trains one VAE per size for ``--epochs`` epochs (batch 128, Adam 1e-3) and is then
evaluated on the held-out t10k split by the same code (``zdim.evaluation.metrics.evaluate``, IWAE NLL with ``--k``
samples); the recommendation rule (``zdim.answer.rules.recommend`` with its defaults: the combined rule,
1% tolerance) is applied to each one's numbers. Wall time covers training, each loop's own per-epoch
validation and the held-out evaluation (zdim's also its per-trial generation metrics).

- zdim: ``zdim.sweeps.execute.sweep`` with its defaults except ``epochs`` (``patience`` cannot act within so
  few epochs), writing its run directory (trial folders, study journal) to a temporary folder; the HTML
  report is not built (the peers draw nothing).
- zdim nested: the same with ``nested=True`` (``zdim sweep --nested``): one VAE of the largest size,
  trained once for ``--nested-epochs`` (default ``--epochs``) with a random latent prefix per sample,
  every size cut out of it and evaluated like the others.
- zdim settle (opt-in, ``--settle`` or ``--only settle``): ``zdim.sweeps.execute.sweep(..., mode="settle")``
  with one seed per size and its own stop (epoch cap ``--settle-epochs``, default 500): every size
  trains together until the answer settles. It does not run at equal epochs: its wall time and answer
  are what a user of the default mode gets, beside the fixed-epoch contestants (issue #13).
  ``--settle-budget S`` caps its training at S seconds (``--time-budget``).
- plain: the PyTorch-examples loop (``DataLoader``, ``loss.item()`` per step, ``test()`` each epoch)
  around a model of zdim's shapes (784-512-256-k), once per size.
- Pythae: its ``VAE`` (default MLP 784-512-k, BCE) through ``TrainingPipeline``, once per size, when
  ``import pythae`` works.

The contestants run one after the other on a shared machine: the ratio is of one run; rerun to see
its spread.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Any

import torch

import zdim  # first: it sets OMP_WAIT_POLICY=PASSIVE (unless set) before torch loads OpenMP

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    PlainVAE,
    PythaeAdapter,
    default_mnist,
    example_loss,
    load_mnist,
    plain_epoch,
    plain_loader,
    pythae_model,
    pythae_status,
    pythae_train,
)

from zdim.answer.rules import Recommendation, recommend  # noqa: E402
from zdim.evaluation.metrics import evaluate  # noqa: E402
from zdim.records import TrialRecord  # noqa: E402
from zdim.sweeps.execute import sweep  # noqa: E402
from zdim.sweeps.planning.config import SweepConfig  # noqa: E402
from zdim.sweeps.planning.plan import SETTLE_EPOCHS  # noqa: E402
from zdim.training.config import TrainConfig  # noqa: E402


def record(dim: int, model: Any, data: zdim.Data, k: int) -> dict[str, Any]:
    ev = evaluate(model, data.test, k=k, seed=0)
    return {
        "dim": dim,
        "seed": 0,
        "status": "complete",
        "nll": ev["nll"],
        "neg_elbo": ev["neg_elbo"],
        "active_units": ev["active_units"],
    }


def run_zdim(
    data: zdim.Data,
    dims: list[int],
    epochs: int,
    k: int,
    workers: int,
    nested: bool = False,
    mode: str = "",
    time_budget: float | None = None,
) -> list[dict[str, Any]]:
    cfg = SweepConfig(dims=tuple(dims), train=TrainConfig(epochs=epochs), k=k)
    with tempfile.TemporaryDirectory(prefix="zdim-bench-sweep-") as tmp:
        res = sweep(
            data,
            config=cfg,
            out=os.path.join(tmp, "run"),
            workers=workers,
            mode=mode or ("nested" if nested else "per-size"),
            extend=False,
            time_budget=time_budget,
        )
    if mode == "settle":
        longest = max(t.epochs_run or 0 for t in res.trials)
        why = res.recommendation.rationale.split("Settle mode: ")[-1].split(". ")[0] if res.recommendation else ""
        print(f"  settle: longest member {longest} epochs; {why}", flush=True)
    return [t.to_dict() for t in res.trials]


def run_plain(data: zdim.Data, dims: list[int], epochs: int, k: int) -> list[dict[str, Any]]:
    recs = []
    for dim in dims:
        torch.manual_seed(0)
        model = PlainVAE(data.n_features, dim, (512, 256), "silu")
        loader = plain_loader(data.train, 128)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for _ in range(epochs):
            plain_epoch(model, loader, opt)
            with torch.no_grad():  # the example's test() each epoch
                model.eval()
                for i in range(0, data.val.shape[0], 128):
                    xb = data.val[i : i + 128]
                    r, mu, lv = model(xb)
                    example_loss(r, xb, mu, lv).item()
        recs.append(record(dim, model, data, k))
    return recs


def run_pythae(data: zdim.Data, dims: list[int], epochs: int, k: int) -> list[dict[str, Any]]:
    recs = []
    with tempfile.TemporaryDirectory(prefix="zdim-bench-pythae-") as tmp:
        for dim in dims:
            torch.manual_seed(0)
            model = pythae_model(data.n_features, dim)
            pythae_train(model, data.train, data.val, epochs, tmp)
            recs.append(record(dim, PythaeAdapter(model.eval()), data, k))
    return recs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=default_mnist(), help="MNIST IDX folder (default ../shared/datasets/mnist)")
    ap.add_argument("--dims", default="2,4,8,16,32,64")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--k", type=int, default=100, help="importance samples of the held-out NLL (all contestants)")
    ap.add_argument("--workers", type=int, default=1, help="zdim --workers")
    ap.add_argument("--quick", action="store_true", help="2 epochs, k=20")
    ap.add_argument("--no-pythae", action="store_true")
    ap.add_argument(
        "--only",
        help="comma-separated contestants to run, of zdim,nested,settle,plain,pythae (default: all but settle)",
    )
    ap.add_argument("--settle", action="store_true", help="add zdim in settle mode (its own stop; long)")
    ap.add_argument("--settle-epochs", type=int, default=SETTLE_EPOCHS, help="epoch cap of the settle contestant")
    ap.add_argument("--settle-budget", type=float, help="seconds of training before settle stops (--time-budget)")
    ap.add_argument(
        "--nested-epochs", type=int, help="epochs of the one nested training (default: --epochs, equal epochs)"
    )
    a = ap.parse_args()
    if a.quick:
        a.epochs, a.k = min(a.epochs, 2), min(a.k, 20)
    a.nested_epochs = a.nested_epochs or a.epochs
    dims = [int(d) for d in a.dims.split(",")]
    data = load_mnist(a.data)
    if data is None:
        return 2
    print(
        f"MNIST bottleneck search: sizes {dims}, {a.epochs} epochs each, batch 128, Adam 1e-3, held-out "
        f"NLL with k={a.k}; {os.cpu_count()} cores, {torch.get_num_threads()} threads, shared machine",
        flush=True,
    )
    contestants: dict[str, Any] = {
        f"zdim sweep (workers={a.workers})": lambda: run_zdim(data, dims, a.epochs, a.k, a.workers),
        f"zdim sweep --nested ({a.nested_epochs} epochs)": lambda: run_zdim(
            data, dims, a.nested_epochs, a.k, 1, nested=True
        ),
        "plain per-size loop (784-512-256-k)": lambda: run_plain(data, dims, a.epochs, a.k),
    }
    if a.settle or (a.only and "settle" in a.only.split(",")):
        contestants[f"zdim settle (own stop, cap {a.settle_epochs})"] = lambda: run_zdim(
            data, dims, a.settle_epochs, a.k, 1, mode="settle", time_budget=a.settle_budget
        )
    why = pythae_status() if not a.no_pythae else "--no-pythae"
    if why is None:
        contestants["Pythae per-size loop (784-512-k)"] = lambda: run_pythae(data, dims, a.epochs, a.k)
    if a.only:
        keys = dict(
            zip(
                ("zdim", "nested", "settle", "plain", "pythae"),
                ("zdim sweep (", "zdim sweep --nested", "zdim settle", "plain", "Pythae"),
            )
        )
        wanted = [keys[w.strip()] for w in a.only.split(",") if w.strip() in keys]
        contestants = {n: f for n, f in contestants.items() if any(n.startswith(w) for w in wanted)}
        if not contestants:
            print(f"--only {a.only!r} names no contestant: use zdim, nested, settle, plain or pythae")
            return 2
    results: dict[str, tuple[float, list[dict[str, Any]], Recommendation]] = {}
    for name, fn in contestants.items():
        t0 = time.perf_counter()
        recs = fn()
        secs = time.perf_counter() - t0
        results[name] = (secs, recs, recommend([TrialRecord.from_dict(r) for r in recs]))
        print(f"  {name}: {secs:.1f} s, recommends {results[name][2].dim}", flush=True)
    if why is not None:
        print(f"Pythae: skipped ({why})")
    names = list(results)
    print("\nheld-out NLL (nats) per size")
    print(f"{'size':>5} " + " ".join(f"{n.split(' (')[0]:>22}" for n in names))
    print(f"{'':>5} " + " ".join(f"{'(' + n.split(' (')[1]:>22}" if " (" in n else " " * 22 for n in names))
    for dim in dims:
        cells = []
        for n in names:
            r = next((t for t in results[n][1] if t["dim"] == dim and t["status"] == "complete"), None)
            cells.append(f"{r['nll']:>22.2f}" if r else f"{'failed':>22}")
        print(f"{dim:>5} " + " ".join(cells))
    print()
    for n in names:
        secs, _, rec = results[n]
        print(f"{n:<42} wall {secs:7.1f} s   recommended size {rec.dim:>3}   (best NLL at {rec.best_dim})")
    zdims = [n for n in names if n.startswith("zdim")]
    for i, z in enumerate(zdims):  # zdim per size, then zdim nested, against every other contestant
        for n in names:
            if n == z or n in zdims[:i]:
                continue
            print(
                f"wall-time ratio {n} / {z}: {results[n][0] / results[z][0]:.2f}x; "
                f"recommended sizes {results[n][2].dim} vs {results[z][2].dim}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
