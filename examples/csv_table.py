"""Sweep latent sizes on a CSV table with a label column.

Writes a small CSV (a 3-D nonlinear manifold in 12 columns, plus a label column zdim keeps aside for
evaluation) to a temporary folder, then sweeps it as a user would sweep their own table:

    python examples/csv_table.py --epochs 1 --max-samples 300
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

import zdim
from zdim.testing import make_planted_data


def write_table(path: Path, n: int, seed: int = 0) -> None:
    """A CSV of ``n`` rows: columns f0..f11 on a 3-D manifold and an integer ``label`` column."""
    x = make_planted_data(3, 12, n, seed=seed, noise=0.05)
    df = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    df["label"] = (x[:, 0] > 0).astype(int)
    df.to_csv(path, index=False)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=3000, help="rows written to the CSV")
    p.add_argument("--dims", default="1,2,3,4,6,8")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument(
        "--epoch-steps", type=int, default=None, help="the fewest optimizer steps of an epoch (zdim's default: 100)"
    )
    p.add_argument("--max-samples", type=int, default=None)
    p.add_argument("--hidden", default="64,64")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "table.csv"
        write_table(csv, args.rows)
        config = zdim.SweepConfig(
            dims=tuple(int(d) for d in args.dims.split(",")),
            hidden=tuple(int(h) for h in args.hidden.split(",")),
            train=zdim.TrainConfig(epochs=args.epochs, epoch_steps=args.epoch_steps),
        )
        result = zdim.sweep(
            csv,
            config=config,
            out=Path(tmp) / "run",
            label_column="label",
            max_samples=args.max_samples,
            report=False,  # the run directory is a temporary folder
        )
        print(result.table[["dim", "nll", "kl", "active_units", "status"]].to_string(index=False))
        print(f"\nrecommended latent size: {result.recommended_dim} (the table has 3 latent factors)")


if __name__ == "__main__":
    main()
