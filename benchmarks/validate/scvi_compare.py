"""Compare zdim with a scVI sweep on count data of known latent dimension (issue 15, part 3).

Data: ``simulate_counts`` of ``benchmarks/validate/counts.py`` (2000 cells x 100 genes, NB counts whose
mean depends on a d-dimensional latent variable), same seed (``100 + d``), split by ``zdim.load_data``
(likelihood ``nb``; 1600 training, 200 validation, 200 test cells).

- zdim: ``zdim.sweep`` (public API) over the sizes of counts.py's budget; its recommendation (default
  ``combined`` rule) and its ``nll-knee`` signal are printed.
- scVI: one ``scvi.model.SCVI(n_latent=size, gene_likelihood="nb")`` per size zdim tried (scVI's
  defaults otherwise: 128 hidden units, 1 layer, dropout 0.1, observed library size), trained on the
  same training and validation cells (``external_indexing``) with the same budget (``max_epochs``,
  batch 128, early stopping on validation ELBO with zdim's patience, no KL warm-up: zdim has none and
  scVI's default 400-epoch warm-up would keep the KL weight under 0.1 at this budget). Held-out NLL per
  cell is ``-model.get_marginal_ll(test cells, n_mc_samples=k)`` averaged over the test cells (the
  approach scvi-tools maintainers recommend in scvi-tools issue #730), with zdim's ``k``. The size is
  picked by zdim's own rule: ``zdim.answer.rules.recommend(records, rule="nll-knee")`` on
  ``TrialRecord(dim, seed=0, status="complete", nll=-marginal_ll_per_cell, n=test cells,
  active_units=None)`` records (scVI gives no active units, so the NLL-knee rule, not ``combined``).

Both NLLs are importance-sampled bounds on ``-log p(x | observed library size)`` in nats per cell, with
the same k, so the curves are on one scale; the models differ (architecture, scVI's batch norm and
dropout, zdim restores its best epoch's weights, scVI keeps the last).

Usage (scvi-tools must be importable; see INSTALL)::

    /tmp/scvi-venv/bin/python benchmarks/validate/scvi_compare.py [--quick]

Default budget: counts.py's ``--quick`` budget (d in {2, 4}, sizes 1-8, 30 epochs). ``--quick``: d = 2
only, 15 epochs, k = 20 (a smoke test). Everything printed is computed here.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from pathlib import Path

# Passive OpenMP waiting, set before scvi-tools imports torch (``import zdim`` sets it too, but too late
# here): spinning OpenMP threads train many times slower beside other busy jobs (docs/performance.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "src"))
sys.path.insert(0, str(HERE))

INSTALL = (
    "python3 -m venv /tmp/scvi-venv && /tmp/scvi-venv/bin/pip install -c constraints.txt torch==2.13.0 scvi-tools "
    "&& /tmp/scvi-venv/bin/pip install -c constraints.txt -e . (from the repository root)"
)

BUDGETS = {
    False: {"ds": (2, 4), "epochs": 30, "patience": 10, "k": 50, "dims": (1, 2, 3, 4, 5, 6, 8)},
    True: {"ds": (2,), "epochs": 15, "patience": 10, "k": 20, "dims": (1, 2, 3, 4, 5, 6, 8)},
}


def _quiet() -> None:
    """Keep Lightning's and scvi-tools' progress and info lines off the terminal."""
    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "scvi"):
        logging.getLogger(name).setLevel(logging.ERROR)


def scvi_sweep(data, dims, b, threads):  # type: ignore[no-untyped-def]
    """Train one SCVI per size on zdim's training/validation cells.

    Returns ({size: held-out NLL per cell}, {size: epochs run}, seconds)."""
    import anndata
    import numpy as np
    import scvi
    import torch

    scvi.settings.verbosity = logging.ERROR
    scvi.settings.num_threads = threads
    _quiet()
    t0 = time.perf_counter()
    train, val, test = (s.numpy().astype(np.float32) for s in (data.train, data.val, data.test))
    fit = anndata.AnnData(np.concatenate([train, val]))
    held_out = anndata.AnnData(test)
    scvi.model.SCVI.setup_anndata(fit)
    split = [np.arange(len(train)), np.arange(len(train), len(train) + len(val)), np.array([], dtype=np.int64)]
    nll, epochs = {}, {}
    for dim in dims:
        scvi.settings.seed = 0
        torch.set_num_threads(threads)
        model = scvi.model.SCVI(fit, n_latent=dim, gene_likelihood="nb")
        model.train(
            max_epochs=b["epochs"],
            batch_size=128,
            accelerator="cpu",
            devices=1,
            early_stopping=True,
            early_stopping_monitor="elbo_validation",
            early_stopping_patience=b["patience"],
            check_val_every_n_epoch=1,
            plan_kwargs={"n_epochs_kl_warmup": None, "n_steps_kl_warmup": None},
            datasplitter_kwargs={"external_indexing": [a.copy() for a in split]},
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        assert len(model.train_indices) == len(train) and len(model.validation_indices) == len(val)
        ll = model.get_marginal_ll(held_out, n_mc_samples=b["k"], return_mean=False)
        nll[dim] = -float(torch.as_tensor(ll).double().mean())
        history = getattr(model, "history", None) or {}
        epochs[dim] = len(history["elbo_train"]) if "elbo_train" in history else None
    return nll, epochs, time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="d = 2 only, 15 epochs, k = 20 (smoke test)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    try:
        import scvi
    except ImportError as e:
        print(f"scvi-tools is not importable ({e}); install it beside zdim with: {INSTALL}")
        return 0

    import torch
    from counts import simulate_counts

    from zdim import SweepConfig, TrainConfig, load_data, sweep
    from zdim.answer.rules import recommend
    from zdim.records import TrialRecord

    b = BUDGETS[args.quick]
    torch.set_num_threads(args.threads)
    print(
        f"## zdim vs scVI (scvi-tools {scvi.__version__}, torch {torch.__version__}) "
        "on NB counts of known latent dimension"
    )
    print(
        f"budget: 2000 cells x 100 genes (1600 train, 200 validation, 200 test), sizes {list(b['dims'])}, "
        f"{b['epochs']} epochs max (patience {b['patience']}), batch 128, 1 seed, k = {b['k']}, {args.threads} threads"
    )
    print("zdim: hidden (64, 64), recommendation by the default (combined) rule; nll-knee is its NLL-only signal")
    print(
        'scVI: SCVI(n_latent, gene_likelihood="nb"), scVI defaults otherwise (n_hidden 128, n_layers 1, dropout 0.1), '
        "no KL warm-up; NLL = -get_marginal_ll(test cells, n_mc_samples=k); size by zdim's nll-knee rule "
        "(zdim.answer.rules.recommend(rule='nll-knee') on TrialRecords)"
    )
    rows = []
    for d in b["ds"]:
        x = simulate_counts(d, seed=100 + d)
        data = load_data(x, likelihood="nb")
        cfg = SweepConfig(
            dims=b["dims"],
            seeds=1,
            hidden=(64, 64),
            k=b["k"],
            train=TrainConfig(epochs=b["epochs"], batch_size=128, patience=b["patience"]),
        )
        t0 = time.perf_counter()
        r = sweep(data, config=cfg, mode="per-size")
        zdim_s = time.perf_counter() - t0
        rec = r.recommendation
        zdim_nll = {int(row["dim"]): float(row["nll_mean"]) for row in (rec.per_dim if rec else [])}
        if not zdim_nll:
            zdim_nll = {t.dim: t.nll for t in r.trials if t.complete and t.nll is not None}
        tried = sorted({t.dim for t in r.trials if t.complete})

        scvi_nll, scvi_epochs, scvi_s = scvi_sweep(data, tried, b, args.threads)
        n_test = int(data.test.shape[0])
        records = [
            TrialRecord(dim=dim, seed=0, status="complete", nll=v, n=n_test, active_units=None)
            for dim, v in scvi_nll.items()
        ]
        scvi_rec = recommend(records, rule="nll-knee", likelihood="nb")
        zdim_knee = rec.signals.get("nll-knee") if rec else None
        rows.append((d, r.recommended_dim, zdim_knee, zdim_s, scvi_rec.dim, scvi_s))
        print(f"\nd = {d}: held-out NLL per cell (nats, IWAE bound, k = {b['k']}, {n_test} test cells)")
        print("size | zdim NLL | scVI NLL | zdim epochs run | scVI epochs run")
        zdim_epochs = {t.dim: t.epochs_run for t in r.trials if t.complete}
        for dim in tried:
            z, s = zdim_nll.get(dim), scvi_nll.get(dim)
            cells = ("-" if z is None else f"{z:.2f}", "-" if s is None else f"{s:.2f}")
            print(f"{dim} | {cells[0]} | {cells[1]} | {zdim_epochs.get(dim)} | {scvi_epochs.get(dim)}")
        print(
            f"zdim: recommended {r.recommended_dim} (nll-knee {zdim_knee}), {zdim_s:.0f} s; "
            f"scVI: recommended {scvi_rec.dim} (nll-knee, tolerance {scvi_rec.tolerance:.2f} nats), {scvi_s:.0f} s"
        )
        sys.stdout.flush()

    print(
        "\nd | zdim recommended | zdim nll-knee | zdim seconds | scVI recommended (nll-knee) | scVI seconds "
        "| within 1 of d (zdim, scVI)"
    )
    for d, zr, zk, zs, sr, ss in rows:
        ok = ", ".join("yes" if v is not None and abs(v - d) <= 1 else "NO" for v in (zr, sr))
        print(f"{d} | {zr} | {zk} | {zs:.0f} | {sr} | {ss:.0f} | {ok}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
