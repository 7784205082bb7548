"""Training speed of zdim against the machine's fp32 GEMM peak, a PyTorch-examples loop and Pythae.

    .venv/bin/python benchmarks/bench_train.py            # about 6-10 minutes on 2 cores
    .venv/bin/python benchmarks/bench_train.py --quick    # about 2-3 minutes, looser quality level
    .venv/bin/python benchmarks/bench_train.py --levers   # also: threads, batch size, compile, bf16, .item()

1. Throughput, measured in interleaved rounds in this one process (median of ``--rounds``): per round
   one fp32 GEMM timing (``torch.matmul`` 1024x1024) and one chunk of ``--steps`` optimizer steps of
   each trainer on MNIST (batch 128, Adam 1e-3):
   - zdim: ``zdim.training.trainer.fit`` on ``zdim.models.vae.VAE`` (default MLP 784-512-256-20, and 784-400-20);
   - plain: the PyTorch-examples loop (``DataLoader`` over a ``TensorDataset``, ``loss.item()`` per
     step) on the same shapes (784-512-256-20 SiLU, and the example itself, 784-400-20 ReLU).
   GFLOP/s come from the layer shapes: 2*in*out per Linear per sample forward, x3 for forward+backward.
2. Time-to-quality: wall time of each trainer (its own per-epoch validation included, our held-out
   evaluation excluded) until the held-out (t10k) single-sample -ELBO at latent size 20 falls to
   ``--level`` nats: zdim with its defaults (``TrainConfig()``), the plain example loop (784-400-20) and
   Pythae's ``VAE`` through its ``TrainingPipeline`` (default MLP 784-512-20, BCE, batch 128, lr 1e-3)
   when ``import pythae`` works.

The machine is shared: other jobs may run at the same time, so compare the ratios printed, which are
measured side by side, rather than absolute figures across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch

import zdim  # first: it sets OMP_WAIT_POLICY=PASSIVE (unless set) before torch loads OpenMP

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    PlainVAE,
    PythaeAdapter,
    default_mnist,
    example_loss,
    gemm_gflops,
    load_mnist,
    median,
    mlp_flops,
    plain_epoch,
    plain_loader,
    pythae_model,
    pythae_status,
    pythae_train,
)

from zdim.evaluation.metrics import kl_per_unit, neg_elbo  # noqa: E402
from zdim.models.vae import VAE, VAEConfig  # noqa: E402
from zdim.training.config import TrainConfig  # noqa: E402
from zdim.training.trainer import fit, kl_term

BS = 128
K = 20


class Reached(Exception):
    pass


# ----------------------------------------------------------------------------- throughput


def zdim_chunk(model: VAE, x: torch.Tensor, val: torch.Tensor, batch_size: int = BS) -> float:
    """Samples/s of ``zdim.training.trainer.fit`` for one epoch over ``x`` (its tiny validation included)."""
    t0 = time.perf_counter()
    fit(model, x, val, TrainConfig(epochs=1, patience=0, batch_size=batch_size))
    return x.shape[0] // batch_size * batch_size / (time.perf_counter() - t0)


def plain_chunk(model: PlainVAE, x: torch.Tensor, item: bool = True) -> float:
    loader = plain_loader(x, BS)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    plain_epoch(model, loader, opt, item=item)
    return x.shape[0] / (time.perf_counter() - t0)


def throughput(data: zdim.Data, rounds: int, steps: int) -> dict[str, Any]:
    x = data.train[: steps * BS]
    val = data.val[:256]
    torch.manual_seed(0)
    archs = {"512-256": (512, 256), "400": (400,)}
    zm = {a: VAE(VAEConfig(784, K, hidden=h)) for a, h in archs.items()}
    pm = {"512-256": PlainVAE(784, K, (512, 256), "silu"), "400": PlainVAE(784, K, (400,), "relu")}
    res: dict[str, list[float]] = {"gemm": []}
    for a in archs:
        res[f"zdim {a}"], res[f"plain {a}"] = [], []
    zdim_chunk(zm["512-256"], x[: 10 * BS], val)  # warm-up
    plain_chunk(pm["512-256"], x[: 10 * BS])
    for r in range(rounds):
        res["gemm"].append(median([gemm_gflops() for _ in range(3)]))
        for a in archs:
            res[f"zdim {a}"].append(zdim_chunk(zm[a], x, val))
            res[f"plain {a}"].append(plain_chunk(pm[a], x))
        print(
            f"  round {r + 1}/{rounds}: GEMM {res['gemm'][-1]:.0f} GFLOP/s, "
            + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in res.items() if k != "gemm"),
            flush=True,
        )
    return {k: median(v) for k, v in res.items()}


def print_throughput(m: dict[str, Any], rounds: int, steps: int) -> None:
    peak = m["gemm"]
    print(
        f"\n== Throughput (median of {rounds} interleaved rounds of {steps} steps x batch {BS}, "
        f"{torch.get_num_threads()} threads)"
    )
    print(f"fp32 GEMM peak (torch.matmul 1024x1024): {peak:.1f} GFLOP/s")
    print(f"{'trainer':<34} {'samples/s':>10} {'GFLOP/s':>8} {'% peak':>7}")
    names = {
        "zdim 512-256": "zdim fit, 784-512-256-20 (default)",
        "plain 512-256": "plain loop, 784-512-256-20",
        "zdim 400": "zdim fit, 784-400-20",
        "plain 400": "plain loop, 784-400-20 (example)",
    }
    for key, label in names.items():
        hidden = (512, 256) if "512" in key else (400,)
        gf = m[key] * mlp_flops(784, hidden, K) / 1e9
        print(f"{label:<34} {m[key]:>10,.0f} {gf:>8.1f} {100 * gf / peak:>6.1f}%")
    for a in ("512-256", "400"):
        print(f"ratio zdim / plain loop, same shapes {a}: {m[f'zdim {a}'] / m[f'plain {a}']:.2f}x samples/s")
    print(
        f"ratio zdim default (512-256) / plain example (400), per sample: "
        f"{m['zdim 512-256'] / m['plain 400']:.2f}x samples/s (zdim's model does "
        f"{mlp_flops(784, (512, 256), K) / mlp_flops(784, (400,), K):.2f}x the FLOPs per sample)"
    )


# ----------------------------------------------------------------------------- time to quality


class Clock:
    """Wall time with pauses (our held-out evaluation is not charged to the trainer)."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.paused = 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0 - self.paused

    def measure(self, fn: Callable[[], float]) -> float:
        t = time.perf_counter()
        v = fn()
        self.paused += time.perf_counter() - t
        return v


def check_level(
    clock: Clock, evaluated: Any, trained: Any, data: zdim.Data, trace: list[float], level: float, max_s: float
) -> None:
    """After an epoch: held-out -ELBO of ``evaluated`` (clock paused), ``trained`` back in training mode;
    raises ``Reached`` at the level, ``TimeoutError`` past ``max_s``."""
    v = clock.measure(lambda: neg_elbo(evaluated, data.test))
    trained.train()
    trace.append(v)
    if v <= level:
        raise Reached()
    if clock.elapsed() > max_s:
        raise TimeoutError()


def ttq_zdim(data: zdim.Data, level: float, max_s: float, cfg: TrainConfig) -> tuple[float | None, list[float]]:
    torch.manual_seed(0)
    model = VAE(VAEConfig(784, K))
    trace: list[float] = []
    clock = Clock()

    def cb(epoch: int, rec: dict[str, Any]) -> None:
        check_level(clock, model, model, data, trace, level, max_s)

    clock = Clock()
    try:
        fit(model, data.train, data.val, cfg, callback=cb)
    except Reached:
        return clock.elapsed(), trace
    except TimeoutError:
        pass
    return None, trace


def ttq_plain(data: zdim.Data, level: float, max_s: float) -> tuple[float | None, list[float]]:
    torch.manual_seed(0)
    model = PlainVAE(784, K, (400,), "relu")
    loader = plain_loader(data.train, BS)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    trace: list[float] = []
    clock = Clock()
    while clock.elapsed() < max_s:
        plain_epoch(model, loader, opt)
        with torch.no_grad():  # the example's test(): its own validation each epoch (charged to it)
            model.eval()
            for i in range(0, data.val.shape[0], BS):
                xb = data.val[i : i + BS]
                r, mu, lv = model(xb)
                example_loss(r, xb, mu, lv).item()
        v = clock.measure(lambda: neg_elbo(model, data.test))  # type: ignore[arg-type]
        trace.append(v)
        if v <= level:
            return clock.elapsed(), trace
    return None, trace


def ttq_pythae(data: zdim.Data, level: float, max_s: float) -> tuple[float | None, list[float]]:
    torch.manual_seed(0)
    model = pythae_model(784, K)
    ad = PythaeAdapter(model)
    trace: list[float] = []
    clock = Clock()

    def on_epoch(epoch: int) -> None:
        check_level(clock, ad, model, data, trace, level, max_s)

    with tempfile.TemporaryDirectory(prefix="zdim-bench-pythae-") as tmp:
        clock = Clock()
        try:
            pythae_train(model, data.train, data.val, 1000, tmp, on_epoch)
        except Reached:
            return clock.elapsed(), trace
        except TimeoutError:
            pass
    return None, trace


def fmt_ttq(name: str, t: float | None, trace: list[float], level: float) -> str:
    last = f"{trace[-1]:.2f}" if trace else "n/a"
    got = f"{t:7.1f} s" if t is not None else "  not reached"
    return f"{name:<44} {got}  ({len(trace)} epochs, held-out -ELBO {last})"


# ----------------------------------------------------------------------------- levers


def step_rate(model: VAE, x: torch.Tensor, steps: int, compiled: bool = False, bf16: bool = False) -> float:
    """Samples/s of fit's inner step (same calls) written out, to try compile and bf16 autocast."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss_of(xb: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            mu, logvar = model.encode(xb)
            z = model.reparameterize(mu, logvar)
            out = model.decode(z)
        rec = -model.log_likelihood(xb, out.float()).mean()
        return rec + kl_term(kl_per_unit(mu.float(), logvar.float()), 0.0)

    fn = torch.compile(loss_of) if compiled else loss_of
    n = x.shape[0] // BS

    def run(k: int) -> None:
        for i in range(k):
            loss = fn(x[(i % n) * BS : (i % n + 1) * BS])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    run(5)  # warm-up (and compilation)
    t0 = time.perf_counter()
    run(steps)
    return steps * BS / (time.perf_counter() - t0)


def probe(data: zdim.Data, steps: int) -> None:
    """One line of JSON: this process's OpenMP wait policy, GEMM GFLOP/s and zdim fit samples/s."""
    x, val = data.train[: steps * BS], data.val[:256]
    m = VAE(VAEConfig(784, K))
    zdim_chunk(m, x[: 10 * BS], val)
    g = median([gemm_gflops() for _ in range(3)])
    z = median([zdim_chunk(m, x, val) for _ in range(3)])
    print(json.dumps({"omp": os.environ.get("OMP_WAIT_POLICY"), "gemm": g, "zdim": z}))


def omp_policy(a: argparse.Namespace, rounds: int) -> None:
    """zdim fit (20 steps per timing) in fresh processes with OMP_WAIT_POLICY=ACTIVE (spinning, as libgomp
    behaves when nothing sets it) and PASSIVE (zdim's default: it sets it on import), alternating."""
    res: dict[str, list[dict[str, float]]] = {"ACTIVE": [], "PASSIVE": []}
    for _ in range(rounds):
        for pol in res:
            out = subprocess.run(
                [sys.executable, __file__, "--probe", "--data", a.data, "--steps", "20"],
                env=dict(os.environ, OMP_WAIT_POLICY=pol),
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            res[pol].append(json.loads(out.strip().splitlines()[-1]))
    for pol, rs in res.items():
        print(
            f"OMP_WAIT_POLICY={pol:<8} fit {median([r['zdim'] for r in rs]):>8,.0f} samples/s, "
            f"GEMM {median([r['gemm'] for r in rs]):.1f} GFLOP/s  ({rounds} fresh processes x 3 timings, median)"
        )
    z = {p: median([r["zdim"] for r in rs]) for p, rs in res.items()}
    print(f"ratio PASSIVE / ACTIVE, fit samples/s: {z['PASSIVE'] / z['ACTIVE']:.2f}x")


def levers(data: zdim.Data, rounds: int, steps: int) -> None:
    x, val = data.train[: steps * BS], data.val[:256]
    print(f"\n== Levers (median of {rounds} interleaved rounds)")
    res: dict[str, list[float]] = {}
    threads = torch.get_num_threads()
    can_compile = True
    try:
        torch.manual_seed(0)
        step_rate(VAE(VAEConfig(784, K)), x, 2, compiled=True)
    except Exception as e:  # no C++ compiler, or inductor unsupported here
        can_compile = False
        print(f"torch.compile skipped: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
    bf16_ok = torch.backends.mkldnn.is_available()
    torch.manual_seed(0)
    m = VAE(VAEConfig(784, K))
    pm = PlainVAE(784, K, (400,), "relu")
    for _ in range(rounds):
        for t in sorted({1, threads}):
            torch.set_num_threads(t)
            res.setdefault(f"fit, {t} thread(s), batch 128", []).append(zdim_chunk(m, x, val))
        torch.set_num_threads(threads)
        for bs in (256, 512):
            res.setdefault(f"fit, batch {bs}", []).append(zdim_chunk(m, x, val, bs))
        res.setdefault("step written out, eager", []).append(step_rate(m, x, steps))
        if can_compile:
            res.setdefault("step written out, torch.compile", []).append(step_rate(m, x, steps, compiled=True))
        if bf16_ok:
            res.setdefault("step written out, bf16 autocast", []).append(step_rate(m, x, steps, bf16=True))
        res.setdefault("plain example loop, loss.item() per step", []).append(plain_chunk(pm, x, item=True))
        res.setdefault("plain example loop, no .item()", []).append(plain_chunk(pm, x, item=False))
    for k, v in res.items():
        print(f"{k:<44} {median(v):>10,.0f} samples/s")
    base = median(res["step written out, eager"])
    for k in ("step written out, torch.compile", "step written out, bf16 autocast"):
        if k in res:
            print(f"ratio {k.split(', ')[1]} / eager: {median(res[k]) / base:.2f}x")


def ttq_configs(data: zdim.Data, level: float, max_s: float, spec: str) -> int:
    """Lever: zdim's time-to-quality for several batch sizes and learning rates, one after the other."""
    print(f"\n== Lever: zdim time to held-out -ELBO <= {level:g} nats at latent size {K}, by batch size and lr")
    base = None
    for item in spec.split(","):
        bs, lr = item.split(":")
        cfg = TrainConfig(batch_size=int(bs), lr=float(lr))
        t, tr = ttq_zdim(data, level, max_s, cfg)
        base = base if base is not None else t
        rel = f"  x{t / base:.2f} of the first" if t is not None and base is not None else ""
        print(fmt_ttq(f"zdim fit, batch {cfg.batch_size}, lr {cfg.lr:g}", t, tr, level) + rel, flush=True)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=default_mnist(), help="MNIST IDX folder (default ../shared/datasets/mnist)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=100, help="optimizer steps per trainer per round")
    ap.add_argument(
        "--level", type=float, default=None, help="held-out -ELBO target in nats (default 105; --quick: 115)"
    )
    ap.add_argument("--max-seconds", type=float, default=240, help="give up a trainer after this long")
    ap.add_argument("--quick", action="store_true", help="fewer rounds, a looser level")
    ap.add_argument("--no-ttq", action="store_true", help="throughput only")
    ap.add_argument("--levers", action="store_true", help="also measure threads, batch, compile, bf16, .item()")
    ap.add_argument(
        "--ttq-batch", type=int, default=None, help="zdim batch size for time-to-quality (default: TrainConfig's)"
    )
    ap.add_argument("--ttq-lr", type=float, default=None, help="zdim learning rate for time-to-quality")
    ap.add_argument(
        "--ttq-configs",
        default=None,
        help="lever: only zdim's time-to-quality, for each "
        "BATCH:LR in a comma-separated list, e.g. 128:1e-3,256:2e-3,512:3e-3",
    )
    ap.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.probe:
        probe(zdim.load_data(a.data), a.steps)
        return 0
    if a.quick:
        a.rounds, a.steps = min(a.rounds, 3), min(a.steps, 60)
    level = a.level if a.level is not None else (115.0 if a.quick else 105.0)
    data = load_mnist(a.data)
    if data is None:
        return 2
    print(
        f"MNIST {tuple(data.train.shape)} train, {tuple(data.test.shape)} held-out (t10k); "
        f"torch {torch.__version__}, {os.cpu_count()} cores, {torch.get_num_threads()} threads; "
        "shared machine: other jobs may be running, compare ratios"
    )
    if a.ttq_configs:
        return ttq_configs(data, level, a.max_seconds, a.ttq_configs)
    m = throughput(data, a.rounds, a.steps)
    print_throughput(m, a.rounds, a.steps)
    if a.levers:
        levers(data, a.rounds, a.steps)
        omp_policy(a, 2)
    if a.no_ttq:
        return 0
    default = TrainConfig()
    cfg = TrainConfig(batch_size=a.ttq_batch or default.batch_size, lr=a.ttq_lr or default.lr)
    print(
        f"\n== Time to quality: held-out (t10k) -ELBO <= {level:g} nats at latent size {K} "
        f"(give up after {a.max_seconds:g} s)"
    )
    results: dict[str, float | None] = {}
    t, tr = ttq_zdim(data, level, a.max_seconds, cfg)
    results["zdim"] = t
    print(fmt_ttq(f"zdim fit (784-512-256-20, batch {cfg.batch_size}, lr {cfg.lr:g})", t, tr, level), flush=True)
    t, tr = ttq_plain(data, level, a.max_seconds)
    results["plain"] = t
    print(fmt_ttq("plain example loop (784-400-20, batch 128, lr 1e-3)", t, tr, level), flush=True)
    why = pythae_status()
    if why is None:
        t, tr = ttq_pythae(data, level, a.max_seconds)
        results["pythae"] = t
        print(fmt_ttq("Pythae VAE pipeline (784-512-20, batch 128, lr 1e-3)", t, tr, level), flush=True)
    else:
        print(f"Pythae: skipped ({why})")
    z = results["zdim"]
    for peer in ("plain", "pythae"):
        if peer not in results:
            continue
        p = results[peer]
        if z is not None and p is not None:
            print(f"time-to-quality ratio {peer} / zdim: {p / z:.2f}x")
        elif z is not None:
            print(f"time-to-quality ratio {peer} / zdim: > {a.max_seconds / z:.2f}x ({peer} did not reach it)")
        else:
            print(f"time-to-quality ratio {peer} / zdim: n/a (zdim did not reach {level:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
