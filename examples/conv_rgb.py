"""Sweep latent sizes with your own model: a deeper convolutional VAE for small RGB images.

Writes 16x16 RGB PNGs of one coloured shape (a disc or a square) on a dark background, whose position,
size, hue and kind vary (5 factors), then sweeps the folder with ``ConvRGBVAE`` below through the API
(``SweepConfig(model=ConvRGBVAE)``; from the command line it is ``--model examples/conv_rgb.py:ConvRGBVAE``):

    python examples/conv_rgb.py --epochs 1 --max-samples 300

The class follows zdim's protocol (see docs/guide.md, "Your own model"): built as
``ConvRGBVAE(latent_dim, data_info)``, ``encode(x)`` takes images ``(B, 3, 16, 16)`` and gives
``(mu, logvar)``, each ``(B, latent_dim)``; ``decode(z)`` gives Bernoulli logits ``(B, 3, 16, 16)``.
Everything else (prior, ELBO, training, metrics, report, saving) is zdim's.
"""

from __future__ import annotations

import argparse
import colorsys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

import zdim
from zdim.models.custom import DataInfo


class ConvRGBVAE(nn.Module):
    """Three stride-2 convolutions (16 -> 8 -> 4 -> 2) with batch-free SiLU blocks, and their mirror."""

    def __init__(self, latent_dim: int, data_info: DataInfo) -> None:
        super().__init__()
        c, h, w = data_info.sample_shape
        if h % 8 or w % 8:
            raise ValueError(f"ConvRGBVAE needs height and width divisible by 8, got {h}x{w}")
        self.grid = (128, h // 8, w // 8)
        flat = 128 * (h // 8) * (w // 8)
        self.encoder = nn.Sequential(
            nn.Conv2d(c, 32, 3, 1, 1), nn.SiLU(),
            nn.Conv2d(32, 32, 4, 2, 1), nn.SiLU(),
            nn.Conv2d(32, 64, 4, 2, 1), nn.SiLU(),
            nn.Conv2d(64, 128, 4, 2, 1), nn.SiLU(),
            nn.Flatten(), nn.Linear(flat, 256), nn.SiLU(), nn.Linear(256, 2 * latent_dim),
        )  # fmt: skip
        self.fc = nn.Sequential(nn.Linear(latent_dim, 256), nn.SiLU(), nn.Linear(256, flat), nn.SiLU())
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.SiLU(),
            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.SiLU(),
            nn.ConvTranspose2d(32, 32, 4, 2, 1), nn.SiLU(),
            nn.Conv2d(32, c, 3, 1, 1),
        )  # fmt: skip

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=-1)  # x: (B, 3, H, W) -> (B, K) each
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.decoder(self.fc(z).view(-1, *self.grid))  # (B, 3, H, W) Bernoulli logits
        return out


def write_images(folder: Path, n: int, size: int = 16, seed: int = 0) -> None:
    """``n`` RGB PNGs: a disc or a square of random hue, centre and size on a dark background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cy, cx = rng.uniform(4, size - 4, 2)
        r = rng.uniform(2, 4)
        square = rng.random() < 0.5
        mask = np.maximum(abs(yy - cy), abs(xx - cx)) <= r if square else (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        rgb = np.array(colorsys.hsv_to_rgb(rng.random(), 0.9, 1.0))
        img = np.zeros((size, size, 3)) + 0.05
        img[mask] = rgb
        Image.fromarray((img * 255).astype(np.uint8), mode="RGB").save(folder / f"{i:05d}.png")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=2000, help="PNGs written")
    p.add_argument("--dims", default="2,4,6,8,12")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument(
        "--epoch-steps", type=int, default=None, help="the fewest optimizer steps of an epoch (zdim's default: 100)"
    )
    p.add_argument("--max-samples", type=int, default=None)
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "shapes"
        write_images(folder, args.images)
        data = zdim.load_data(folder, max_samples=args.max_samples)
        print(f"read {data.summary()['n_train']} training images of shape {data.sample_shape}, {data.likelihood}")
        config = zdim.SweepConfig(
            dims=tuple(int(d) for d in args.dims.split(",")),
            model=ConvRGBVAE,
            train=zdim.TrainConfig(epochs=args.epochs, epoch_steps=args.epoch_steps),
        )
        result = zdim.sweep(data, config=config, out=Path(tmp) / "run", report=False)  # a temporary folder
        print(result.table[["dim", "nll", "kl", "active_units", "status"]].to_string(index=False))
        print(f"model: {config.model}")
        print(f"\nrecommended latent size: {result.recommended_dim}")


if __name__ == "__main__":
    main()
