"""Shared pieces of the performance benchmarks (bench_train, bench_sweep, bench_memory).

- ``gemm_gflops``: fp32 ``torch.matmul`` throughput of this process, the machine's reference peak.
- ``mlp_flops``: analytic FLOPs per sample of a VAE MLP from its layer shapes.
- ``PlainVAE`` and ``plain_epoch``: a PyTorch-examples style VAE and training loop (``examples/vae``:
  ``DataLoader`` over a ``TensorDataset``, ``loss.item()`` every step), written here as the peer a user
  would write. ``PlainVAE`` also has the ``encode``/``decode``/``log_likelihood``/``mean`` methods that
  ``zdim.evaluation.metrics.evaluate`` calls, so both are evaluated by the same code.
- ``pythae_status`` and ``PythaeAdapter``: Pythae (a real peer) when it imports, else why not.
- ``sweep_members``: untrained members of a sweep grid, seeded as settle mode builds them (bench_stacked,
  bench_gpu).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zdim.data.dataset import Data
from zdim.models.vae import VAE
from zdim.sweeps.planning.config import SweepConfig, build_sweep_model

ROOT = Path(__file__).resolve().parents[1]
MNIST = Path("../shared/datasets/mnist")  # relative to the repository root (see default_mnist)


def default_mnist() -> str:
    """The MNIST IDX folder as ``../shared/datasets/mnist`` from the repository root."""
    return str((ROOT / MNIST).resolve())


def load_mnist(path: str) -> Any:
    """``zdim.load_data(path)`` of the MNIST IDX folder, or None after saying where it was looked for."""
    if not os.path.isdir(path):
        print(f"MNIST not found at {path}: pass --data DIR")
        return None
    import zdim

    return zdim.load_data(path)


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def gemm_gflops(n: int = 1024, reps: int = 20) -> float:
    """GFLOP/s of ``reps`` fp32 ``n x n`` matmuls (one timing; call it several times for a median)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)  # warm-up
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.matmul(a, b)
    return 2.0 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def mlp_flops(d: int, hidden: tuple[int, ...], k: int) -> float:
    """FLOPs per sample of one training step (forward + backward ~ 3x forward) of the VAE MLP:
    encoder d -> hidden -> 2k, decoder k -> reversed hidden -> d; 2*in*out per Linear forward."""
    enc = [d, *hidden, 2 * k]
    dec = [k, *hidden[::-1], d]
    fwd = sum(2 * a * b for sizes in (enc, dec) for a, b in zip(sizes[:-1], sizes[1:]))
    return 3.0 * fwd


class EvaluatedByZdim(nn.Module):
    """What ``zdim.evaluation.metrics.evaluate`` and ``neg_elbo`` call beyond a model's own ``encode``/``decode``/
    ``log_likelihood``/``mean``: sampling and the single-sample -ELBO terms, taken from ``zdim.models.vae.VAE``
    itself so that every contestant is evaluated by the same code."""

    reparameterize = VAE.reparameterize
    elbo_terms = VAE.elbo_terms


class PlainVAE(EvaluatedByZdim):
    """The PyTorch-examples VAE (``fc1 -> (fc21, fc22)``, ``fc3 -> fc4``), any hidden widths.

    With ``hidden=(400,)`` and ReLU it is the example itself (784-400-20); with ``hidden=(512, 256)``
    and SiLU it has zdim's default MLP shapes.
    """

    def __init__(self, d: int, k: int, hidden: tuple[int, ...] = (400,), act: str = "relu") -> None:
        super().__init__()
        a: Callable[[], nn.Module] = nn.ReLU if act == "relu" else nn.SiLU
        enc: list[nn.Module] = []
        for i, o in zip((d, *hidden[:-1]), hidden):
            enc += [nn.Linear(i, o), a()]
        self.enc = nn.Sequential(*enc)
        self.fc21, self.fc22 = nn.Linear(hidden[-1], k), nn.Linear(hidden[-1], k)
        dec: list[nn.Module] = []
        for i, o in zip((k, *hidden[::-1][:-1]), hidden[::-1]):
            dec += [nn.Linear(i, o), a()]
        self.dec = nn.Sequential(*dec, nn.Linear(hidden[0], d))
        self.latent_dim = k

    # the example's interface
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        std = torch.exp(0.5 * logvar)
        z = mu + torch.randn_like(std) * std
        return torch.sigmoid(self.decode(z)), mu, logvar

    # the interface zdim.evaluation.metrics.evaluate / neg_elbo call (decode returns logits)
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.enc(x)
        return self.fc21(h), self.fc22(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        lead = z.shape[:-1]
        out: torch.Tensor = self.dec(z.reshape(-1, z.shape[-1]))
        return out.reshape(*lead, out.shape[-1])

    def log_likelihood(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return -F.binary_cross_entropy_with_logits(out, x.expand_as(out), reduction="none").sum(-1)

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(out)


def example_loss(recon_x: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The example's loss: BCE summed over pixels and the batch, plus the analytic KL."""
    bce = F.binary_cross_entropy(recon_x, x, reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def plain_loader(train: torch.Tensor, batch_size: int = 128, seed: int = 0) -> torch.utils.data.DataLoader[Any]:
    ds = torch.utils.data.TensorDataset(train)
    gen = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, generator=gen)


def plain_epoch(
    model: PlainVAE, loader: torch.utils.data.DataLoader[Any], opt: torch.optim.Optimizer, item: bool = True
) -> float:
    """One epoch of the example's ``train()``: returns the mean loss per sample. ``item=False`` (a
    lever): the loss is summed on the device and read once, not with ``loss.item()`` every step."""
    model.train()
    train_loss = 0.0
    total = torch.zeros(())
    for (data,) in loader:
        opt.zero_grad()
        recon_batch, mu, logvar = model(data)
        loss = example_loss(recon_batch, data, mu, logvar)
        loss.backward()  # type: ignore[no-untyped-call]
        if item:
            train_loss += loss.item()
        else:
            total += loss.detach()
        opt.step()
    return (train_loss if item else float(total)) / len(loader.dataset)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- Pythae (optional peer)


def pythae_status() -> str | None:
    """None when Pythae imports and trains here, else the reason it is skipped."""
    try:
        import pythae  # noqa: F401
        from pythae.models import VAE, VAEConfig  # noqa: F401
        from pythae.pipelines import TrainingPipeline  # noqa: F401
        from pythae.trainers import BaseTrainerConfig  # noqa: F401
    except Exception as e:  # ImportError, or an incompatibility with this torch
        return f"{type(e).__name__}: {e}"
    return None


def pythae_model(d: int, k: int) -> Any:
    """Pythae's ``VAE`` with its default MLP (784-512-k, decoder k-512-784, sigmoid) and a BCE loss."""
    from pythae.models import VAE, VAEConfig

    return VAE(VAEConfig(input_dim=(1, 28, 28) if d == 784 else (d,), latent_dim=k, reconstruction_loss="bce"))


def pythae_train(
    model: Any,
    train: torch.Tensor,
    val: torch.Tensor,
    epochs: int,
    out_dir: str,
    on_epoch: Callable[[int], None] | None = None,
    batch_size: int = 128,
    lr: float = 1e-3,
) -> None:
    """Train through Pythae's ``TrainingPipeline`` (its ``BaseTrainer``), ``on_epoch(epoch)`` after each
    epoch (it may raise to stop)."""
    import logging

    from pythae.pipelines import TrainingPipeline
    from pythae.trainers import BaseTrainerConfig
    from pythae.trainers.training_callbacks import TrainingCallback

    logging.getLogger("pythae").setLevel(logging.WARNING)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("pythae"):
            logging.getLogger(name).setLevel(logging.WARNING)

    class Hook(TrainingCallback):  # type: ignore[misc]
        epoch = 0

        def on_epoch_end(self, training_config: Any, **kwargs: Any) -> None:
            self.epoch += 1
            if on_epoch is not None:
                on_epoch(self.epoch)

    shape = (-1, 1, 28, 28) if train.shape[1] == 784 else (-1, train.shape[1])
    cfg = BaseTrainerConfig(
        output_dir=out_dir,
        num_epochs=epochs,
        learning_rate=lr,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=1000,
        steps_saving=None,
        no_cuda=True,
    )
    pipe = TrainingPipeline(training_config=cfg, model=model)
    with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):  # its progress bars, every epoch
        pipe(train_data=train.reshape(shape), eval_data=val.reshape(shape), callbacks=[Hook()])


class PythaeAdapter(EvaluatedByZdim):
    """A trained Pythae ``VAE`` seen through the methods ``zdim.evaluation.metrics.evaluate`` calls."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.m = model
        self.latent_dim = int(model.latent_dim)
        self.shape = (1, 28, 28) if model.input_dim == (1, 28, 28) else tuple(model.input_dim)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.m.encoder(x.reshape(-1, *self.shape))
        return out.embedding, out.log_covariance

    def decode(self, z: torch.Tensor) -> torch.Tensor:  # probabilities (Pythae's decoder ends in a sigmoid)
        lead = z.shape[:-1]
        p = self.m.decoder(z.reshape(-1, z.shape[-1])).reconstruction
        return p.reshape(*lead, -1)

    def log_likelihood(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return -F.binary_cross_entropy(out, x.expand_as(out), reduction="none").sum(-1)

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        return out


def sweep_members(data: Data, grid: list[tuple[int, int]], hidden: tuple[int, ...] = (512, 256)) -> list[VAE]:
    """The untrained (size, seed) members of ``grid`` as settle mode builds them (seeded, the sweep's
    default model of ``hidden`` widths)."""
    cfg = SweepConfig(dims=tuple(sorted({d for d, _ in grid})), hidden=hidden)
    models = []
    for d, s in grid:
        torch.manual_seed(s)
        models.append(build_sweep_model(data, d, cfg))
    return models
