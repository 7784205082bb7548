"""The benchmarks' peers are evaluated by zdim's own metric code: their adapters must keep its interface."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from zdim.evaluation.metrics import evaluate, neg_elbo

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def common():
    spec = importlib.util.spec_from_file_location("bench_common", ROOT / "benchmarks" / "_common.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def test_plain_example_loop_trains_and_is_evaluated_by_zdim_metrics(common):
    torch.manual_seed(0)
    x = (torch.rand(64, 16) > 0.5).float()
    model = common.PlainVAE(16, 3, (8,), "relu")
    loader = common.plain_loader(x, 16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    a = common.plain_epoch(model, loader, opt)
    b = common.plain_epoch(model, loader, opt, item=False)
    assert np.isfinite(a) and np.isfinite(b)
    model.eval()
    v = neg_elbo(model, x)  # the time-to-quality check of bench_train
    ev = evaluate(model, x, k=4)  # the per-size evaluation of bench_sweep
    assert np.isfinite(v) and np.isfinite(ev["nll"]) and ev["nll"] <= v + 1.0


def test_pythae_adapter_is_evaluated_by_zdim_metrics(common):
    if common.pythae_status() is not None:
        pytest.skip(f"pythae is not usable here ({common.pythae_status()}): pip install pythae")
    x = (torch.rand(32, 784) > 0.5).float()
    ad = common.PythaeAdapter(common.pythae_model(784, 2).eval())
    assert np.isfinite(neg_elbo(ad, x)) and np.isfinite(evaluate(ad, x, k=2)["nll"])
