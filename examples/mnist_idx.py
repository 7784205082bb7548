"""Sweep latent sizes on MNIST read straight from its gzipped IDX files.

    python examples/mnist_idx.py                                  # full run: 60k images, 100 epochs
    python examples/mnist_idx.py --epochs 1 --max-samples 300     # a quick look

The folder holds train-images/labels and t10k-images/labels (.gz); zdim takes t10k as the test split.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import zdim

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "mnist"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of MNIST IDX files")
    p.add_argument("--dims", default="2,4,8,16,32", help="latent sizes, comma-separated")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument(
        "--epoch-steps", type=int, default=None, help="the fewest optimizer steps of an epoch (zdim's default: 100)"
    )
    p.add_argument("--max-samples", type=int, default=None, help="images per file (default all)")
    p.add_argument("--hidden", default="512,256", help="hidden widths, comma-separated")
    p.add_argument("--out", type=Path, default=None, help="run directory (default: a temporary folder)")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "mnist"
        config = zdim.SweepConfig(
            dims=tuple(int(d) for d in args.dims.split(",")),
            hidden=tuple(int(h) for h in args.hidden.split(",")),
            train=zdim.TrainConfig(epochs=args.epochs, epoch_steps=args.epoch_steps),
        )
        # report.html only where the run directory outlives the script (--out)
        result = zdim.sweep(
            args.data, config=config, out=out, max_samples=args.max_samples, report=args.out is not None
        )
        print(result.table[["dim", "nll", "neg_elbo", "kl", "active_units", "status"]].to_string(index=False))
        print(f"\nrecommended latent size: {result.recommended_dim}")
        print(result.recommendation.rationale if result.recommendation else "no trial completed")
        result.to_json(out / "result.json")  # the whole result, readable with SweepResult.from_json
        print(f"run directory: {out}")


if __name__ == "__main__":
    main()
