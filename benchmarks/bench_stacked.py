"""Stacked members (``zdim.training.stacked``) against one ``Trainer`` per member, on this CPU.

Two sets of members, as settle mode would train them:

- ``digits``: the default sweep of ``zdim sweep digits`` (sizes from the intrinsic-dimension estimate,
  ``zdim.evaluation.intrinsic.dims_from_estimate``; 3 seeds; hidden 512,256; batch 128);
- ``mnist5k``: 6 MNIST-size members, 784-512-256-k with k = 2, 4, 8, 16, 32, 64, on 5,000 images
  (``../shared/datasets/mnist`` from the repository root).

For each, in interleaved rounds (who goes first alternates): every member trained for ``--epochs``
epochs with its own ``zdim.training.trainer.Trainer``, one after another, against all of them in one
``StackedTrainer``; median wall times and their ratio, and the largest weight difference between the two
(the stack reproduces each member to float rounding). Then settle mode's per-epoch score (IWAE k=10 on
1,000 validation samples): ``evaluate`` per member against ``StackedTrainer.score``.

An engine section first compares, for one training step (forward and backward) of M equal-size members,
a loop over the members' own modules, the stack's batched matmuls (``baddbmm`` with its own backward) and
``torch.func.stack_module_state`` + ``vmap``: time per step and the largest gradient difference from the
loop (0.0: bit for bit).

Usage: ``.venv/bin/python benchmarks/bench_stacked.py [--epochs 3] [--rounds 3] [--threads 1]``
(about 5 minutes on 2 cores with the defaults).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))  # _common

import zdim  # noqa: E402  # first: it sets OMP_WAIT_POLICY before torch loads OpenMP

# isort: split
import torch  # noqa: E402
from _common import sweep_members  # noqa: E402
from torch.func import functional_call, stack_module_state, vmap  # noqa: E402

from zdim.evaluation.intrinsic import dims_from_estimate, estimate_intrinsic_dim  # noqa: E402
from zdim.evaluation.metrics import EVAL_K, evaluate  # noqa: E402
from zdim.models.vae import VAE, VAEConfig, kl_per_unit  # noqa: E402
from zdim.training.config import TrainConfig  # noqa: E402
from zdim.training.stacked import StackedTrainer  # noqa: E402
from zdim.training.trainer import Trainer  # noqa: E402

MNIST = ROOT.parent / "shared" / "datasets" / "mnist"
HIDDEN = (512, 256)
SCORE_SAMPLES = 1000  # settle mode's DEFAULT_EVAL_SAMPLES
SCORE_K = EVAL_K  # settle mode's


@dataclass
class Members:
    name: str
    data: zdim.Data
    grid: list[tuple[int, int]]  # (latent size, seed)


def member_sets(names: list[str]) -> list[Members]:
    out = []
    if "digits" in names:
        data = zdim.load_data("digits")
        dims = dims_from_estimate(estimate_intrinsic_dim(data, seed=0).dim, data.n_features)
        out.append(Members("digits", data, [(d, s) for d in dims for s in range(3)]))
    if "mnist5k" in names:
        if not MNIST.is_dir():
            print(f"MNIST not found at {MNIST}: the mnist5k set is skipped")
        else:
            data = zdim.load_data(str(MNIST), max_samples=5000)
            out.append(Members("mnist5k", data, [(d, 0) for d in (2, 4, 8, 16, 32, 64)]))
    return out


def build(data: zdim.Data, grid: list[tuple[int, int]]) -> list[VAE]:
    return sweep_members(data, grid, HIDDEN)


def configs(grid: list[tuple[int, int]], epochs: int) -> list[TrainConfig]:
    return [TrainConfig(epochs=epochs, patience=0, seed=s, device="cpu") for _, s in grid]


def run_plain(ms: Members, epochs: int) -> tuple[float, list[VAE]]:
    models = build(ms.data, ms.grid)
    t0 = time.perf_counter()
    for model, cfg in zip(models, configs(ms.grid, epochs)):
        trainer = Trainer(model, ms.data.train, ms.data.val, cfg)
        while not trainer.done:
            trainer.run_epoch()
    return time.perf_counter() - t0, models


def run_stacked(ms: Members, epochs: int) -> tuple[float, list[VAE]]:
    models = build(ms.data, ms.grid)
    t0 = time.perf_counter()
    stack = StackedTrainer(models, configs(ms.grid, epochs), ms.data.train, ms.data.val)
    while not all(m.done for m in stack.members):
        stack.run_epoch()
    seconds = time.perf_counter() - t0
    return seconds, [m.model for m in stack.members]


def largest_difference(a: list[VAE], b: list[VAE]) -> float:
    return max(
        float((va - vb).abs().max())
        for x, y in zip(a, b)
        for va, vb in zip(x.state_dict().values(), y.state_dict().values())
    )


def verdict(ratio: float) -> str:
    if ratio > 1.05:
        return f"stacking pays on this CPU ({ratio:.2f}x faster)"
    if ratio < 0.95:
        return f"stacking does not pay on this CPU ({1 / ratio:.2f}x slower)"
    return f"stacking breaks even on this CPU (ratio {ratio:.2f})"


def compare_training(ms: Members, epochs: int, rounds: int) -> None:
    n = ms.data.train.shape[0]
    steps = n // 128
    plain: list[float] = []
    stacked: list[float] = []
    diff = 0.0
    for r in range(rounds):
        order = ("plain", "stacked") if r % 2 == 0 else ("stacked", "plain")
        got: dict[str, list[VAE]] = {}
        for arm in order:
            secs, models = run_plain(ms, epochs) if arm == "plain" else run_stacked(ms, epochs)
            (plain if arm == "plain" else stacked).append(secs)
            got[arm] = models
        diff = max(diff, largest_difference(got["plain"], got["stacked"]))
    p, s = statistics.median(plain), statistics.median(stacked)
    member_epochs = len(ms.grid) * epochs
    print(
        f"{ms.name}: {len(ms.grid)} members {sorted({d for d, _ in ms.grid})} x seeds "
        f"{sorted({s for _, s in ms.grid})}, {ms.data.n_features}-{'-'.join(map(str, HIDDEN))}-k, {n} train "
        f"({steps} steps of 128 per epoch), {epochs} epochs, {rounds} rounds"
    )
    print(
        f"  Trainers one after another {p:7.2f} s (median; {member_epochs / p:6.1f} member-epochs/s)   "
        f"[{', '.join(f'{v:.2f}' for v in plain)}]"
    )
    print(
        f"  one StackedTrainer         {s:7.2f} s (median; {member_epochs / s:6.1f} member-epochs/s)   "
        f"[{', '.join(f'{v:.2f}' for v in stacked)}]"
    )
    print(f"  ratio plain / stacked {p / s:.2f}: {verdict(p / s)}; largest weight difference {diff:.2g}")


def compare_scores(ms: Members, rounds: int) -> None:
    """Settle mode's per-epoch score: ``evaluate`` per member against one ``StackedTrainer.score``."""
    models = build(ms.data, ms.grid)
    stack = StackedTrainer(models, configs(ms.grid, 1), ms.data.train, ms.data.val)
    subset = ms.data.val[:SCORE_SAMPLES]
    plain, stacked = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        want = [evaluate(m.model, subset, k=SCORE_K, seed=0, per_sample=True) for m in stack.members]
        t1 = time.perf_counter()
        got = stack.score(subset, k=SCORE_K)
        t2 = time.perf_counter()
        plain.append(t1 - t0)
        stacked.append(t2 - t1)
    worst = max(abs(w["nll"] - g["nll"]) for w, g in zip(want, got) if g is not None)
    same_au = all(g is not None and w["active_units"] == g["active_units"] for w, g in zip(want, got))
    p, s = statistics.median(plain), statistics.median(stacked)
    print(
        f"  score (IWAE k={SCORE_K} on {subset.shape[0]} validation samples, every member): evaluate per member "
        f"{p * 1000:.0f} ms, stack.score {s * 1000:.0f} ms, ratio {p / s:.2f}; largest NLL difference "
        f"{worst:.2g}, active units {'equal' if same_au else 'DIFFER'}"
    )


# ----------------------------------------------------------------------------- engines (one step)


def engine_step_times(d: int, k: int, m: int, b: int = 128, reps: int = 10) -> None:
    """One training step (loss, backward) of ``m`` size-``k`` Bernoulli members, three ways."""
    models = []
    for s in range(m):
        torch.manual_seed(s)
        models.append(VAE(VAEConfig(d, k, hidden=HIDDEN)))
    x = torch.rand(m, b, d).bernoulli()
    eps = torch.randn(m, b, k)

    def loop() -> list[torch.Tensor]:
        grads: list[torch.Tensor] = []
        for i, model in enumerate(models):
            mu, logvar = model.encode(x[i])
            z = mu + torch.exp(0.5 * logvar) * eps[i]
            rec = -model.log_likelihood(x[i], model.decode(z))
            loss = rec.mean() + kl_per_unit(mu, logvar).mean(0).sum()
            grads += torch.autograd.grad(loss, list(model.parameters()))
        return grads

    stack = StackedTrainer(models, [TrainConfig(device="cpu")] * m, x[0], x[0][:8])
    mask = stack.mask
    params = {n: t.requires_grad_(True) for n, t in stack.params.items()}

    def stacked() -> list[torch.Tensor]:
        rec, kl_units = stack.elbo_terms(params, x, eps, mask)
        loss = rec.mean(1) + kl_units.mean(1).sum(-1)
        g = torch.autograd.grad(loss.sum(), list(params.values()))
        # per member, in the loop's order, to compare
        return [t[i] for i in range(m) for t in g]

    vparams, vbuffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")

    def one(p: dict[str, torch.Tensor], xb: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        enc = {n.removeprefix("encoder."): v for n, v in p.items() if n.startswith("encoder.")}
        dec = {n.removeprefix("decoder."): v for n, v in p.items() if n.startswith("decoder.")}
        mu, logvar = functional_call(base.encoder, enc, (xb,)).chunk(2, dim=-1)
        z = mu + torch.exp(0.5 * logvar) * e
        out = functional_call(base.decoder, dec, (z,))
        rec = -base.log_likelihood(xb, out)
        return rec.mean() + kl_per_unit(mu, logvar).mean(0).sum()

    def vmapped() -> list[torch.Tensor]:
        loss = vmap(one)(vparams, x, eps)
        g = torch.autograd.grad(loss.sum(), list(vparams.values()))
        return [t[i] for i in range(m) for t in g]

    ref = loop()
    line = f"  engine {d}-{'-'.join(map(str, HIDDEN))}-{k}, {m} members, batch {b}: "
    parts = []
    for name, fn in (("loop of modules", loop), ("stacked baddbmm", stacked), ("vmap", vmapped)):
        got = fn()  # warm-up
        diff = max(float((a - c).abs().max()) for a, c in zip(ref, got))
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        parts.append(f"{name} {statistics.median(times) * 1000:.1f} ms/step (grad diff {diff:.2g})")
    print(line + "; ".join(parts))


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3, help="epochs per member (default 3)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--sets", default="digits,mnist5k", help="member sets: digits, mnist5k")
    ap.add_argument("--no-engines", action="store_true", help="leave out the one-step engine comparison")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU")
    names = args.sets.split(",")
    if not args.no_engines:
        if "digits" in names:
            engine_step_times(64, 8, 18)
        if "mnist5k" in names:
            engine_step_times(784, 16, 6)
    for ms in member_sets(names):
        compare_training(ms, args.epochs, args.rounds)
        compare_scores(ms, args.rounds)


if __name__ == "__main__":
    main()
