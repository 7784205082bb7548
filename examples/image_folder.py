"""Sweep latent sizes on a folder of images (one subfolder per class).

Writes 16x16 grey PNGs of discs whose position and size vary (3 factors), in two subfolders whose names
zdim reads as labels, then sweeps the folder:

    python examples/image_folder.py --epochs 1 --max-samples 300
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

import zdim


def write_images(folder: Path, n: int, size: int = 16, seed: int = 0) -> None:
    """``n`` PNGs of a disc at a random centre and radius; small discs in ``small/``, large in ``large/``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        cy, cx = rng.uniform(4, size - 4, 2)
        r = rng.uniform(2, 4)
        img = (((yy - cy) ** 2 + (xx - cx) ** 2) <= r * r).astype(np.uint8) * 255
        sub = folder / ("small" if r < 3 else "large")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img, mode="L").save(sub / f"{i:05d}.png")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=2000, help="PNGs written")
    p.add_argument("--dims", default="1,2,3,4,8")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument(
        "--epoch-steps", type=int, default=None, help="the fewest optimizer steps of an epoch (zdim's default: 100)"
    )
    p.add_argument("--max-samples", type=int, default=None)
    p.add_argument("--hidden", default="128,64")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "discs"
        write_images(folder, args.images)
        data = zdim.load_data(folder, max_samples=args.max_samples)
        print(
            f"read {data.summary()['n_train']} training images of shape {data.sample_shape}, "
            f"{data.likelihood} likelihood, classes {data.extra.get('label_names')}"
        )
        config = zdim.SweepConfig(
            dims=tuple(int(d) for d in args.dims.split(",")),
            hidden=tuple(int(h) for h in args.hidden.split(",")),
            train=zdim.TrainConfig(epochs=args.epochs, epoch_steps=args.epoch_steps),
        )
        result = zdim.sweep(data, config=config, out=Path(tmp) / "run", report=False)  # a temporary folder
        print(result.table[["dim", "nll", "kl", "active_units", "status"]].to_string(index=False))
        print(f"\nrecommended latent size: {result.recommended_dim}")


if __name__ == "__main__":
    main()
