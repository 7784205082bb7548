"""Sweep latent sizes of 1-D signals with your own model, from the command line (``--model``).

Writes sine waves of 64 steps whose amplitude, frequency and phase vary (3 latent factors, plus a little
noise) to a ``.npy`` file, then runs

    zdim sweep signals.npy --model examples/signal_conv1d.py:Conv1dVAE ...

through ``zdim.cli.main`` (what the ``zdim`` command runs):

    python examples/signal_conv1d.py --epochs 1 --max-samples 300

``Conv1dVAE`` follows zdim's protocol (see docs/guide.md, "Your own model"): built as
``Conv1dVAE(latent_dim, data_info)``; ``encode(x)`` takes signals ``(B, 64)`` (a table: ``sample_shape``
is ``(64,)``) and gives ``(mu, logvar)``, each ``(B, latent_dim)``; ``decode(z)`` gives the means of the
Gaussian likelihood (zdim standardizes each step and learns the noise scale).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

import zdim
from zdim.cli import main as zdim_main
from zdim.models.custom import DataInfo


class Conv1dVAE(nn.Module):
    """Two stride-2 1-D convolutions (L -> L/2 -> L/4) and their mirror, for signals of length L."""

    def __init__(self, latent_dim: int, data_info: DataInfo) -> None:
        super().__init__()
        (length,) = data_info.sample_shape
        if length % 4:
            raise ValueError(f"Conv1dVAE needs a signal length divisible by 4, got {length}")
        self.grid = (32, length // 4)
        flat = 32 * (length // 4)
        self.encoder = nn.Sequential(
            nn.Conv1d(1, 16, 5, 2, 2), nn.SiLU(),
            nn.Conv1d(16, 32, 5, 2, 2), nn.SiLU(),
            nn.Flatten(), nn.Linear(flat, 128), nn.SiLU(), nn.Linear(128, 2 * latent_dim),
        )  # fmt: skip
        self.fc = nn.Sequential(nn.Linear(latent_dim, 128), nn.SiLU(), nn.Linear(128, flat), nn.SiLU())
        self.decoder = nn.Sequential(
            nn.ConvTranspose1d(32, 16, 4, 2, 1), nn.SiLU(),
            nn.ConvTranspose1d(16, 1, 4, 2, 1),
        )  # fmt: skip

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x.unsqueeze(1)).chunk(2, dim=-1)  # (B, L) -> (B, 1, L) -> (B, K) each
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.decoder(self.fc(z).view(-1, *self.grid)).squeeze(1)  # (B, L) Gaussian means
        return out


def write_signals(path: Path, n: int, length: int = 64, seed: int = 0) -> None:
    """``n`` sines ``a sin(2 pi f t + phase)`` with random amplitude, frequency and phase, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, length, endpoint=False)
    a = rng.uniform(0.5, 2.0, (n, 1))
    f = rng.uniform(1.0, 4.0, (n, 1))
    phase = rng.uniform(0.0, 2 * np.pi, (n, 1))
    x = a * np.sin(2 * np.pi * f * t + phase) + 0.05 * rng.standard_normal((n, length))
    np.save(path, x.astype(np.float32))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--signals", type=int, default=3000, help="signals written")
    p.add_argument("--dims", default="1,2,3,4,6,8")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument(
        "--epoch-steps", type=int, default=None, help="the fewest optimizer steps of an epoch (zdim's default: 100)"
    )
    p.add_argument("--max-samples", type=int, default=None)
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "signals.npy", Path(tmp) / "run"
        write_signals(data, args.signals)
        argv = ["sweep", str(data), "--model", f"{Path(__file__).resolve()}:Conv1dVAE", "--dims", args.dims]
        argv += ["--epochs", str(args.epochs), "--out", str(out), "--quiet", "--no-report"]  # a temporary folder
        if args.max_samples:
            argv += ["--max-samples", str(args.max_samples)]
        if args.epoch_steps:
            argv += ["--epoch-steps", str(args.epoch_steps)]
        code = zdim_main(argv)
        if code != 0:
            raise SystemExit(code)
        rec = zdim.RunDir(out).read_recommendation() or {}
        print(f"\nrecommended latent size: {rec.get('dim')}")


if __name__ == "__main__":
    main()
