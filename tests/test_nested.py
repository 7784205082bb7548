"""Nested sweeps: one NestedVAE per seed serves every size; its cut-out models are exact."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from zdim.errors import ConfigError, RunDirError
from zdim.evaluation.metrics import evaluate, neg_elbo
from zdim.files import read_json
from zdim.models.checkpoints import load_vae
from zdim.models.nested import NestedVAE
from zdim.models.vae import VAEConfig
from zdim.sweeps.execute import sweep
from zdim.sweeps.executors import nested
from zdim.sweeps.planning.config import SweepConfig
from zdim.testing import make_planted_data
from zdim.training.config import TrainConfig
from zdim.training.trainer import fit

from .conftest import make_data

ROOT = Path(__file__).resolve().parents[1]
FAST = TrainConfig(epochs=4, batch_size=64, patience=0)


def cfg(dims, **kw):
    return SweepConfig(dims=dims, hidden=(16,), train=FAST, k=10, **kw)


@pytest.mark.parametrize(
    "likelihood,arch,shape",
    [("gaussian", "mlp", None), ("bernoulli", "mlp", None), ("bernoulli", "conv", (1, 8, 8))],
)
def test_prefix_model_computes_what_the_nested_model_computes(likelihood, arch, shape):
    torch.manual_seed(0)
    vcfg = VAEConfig(input_dim=64, latent_dim=8, likelihood=likelihood, hidden=(32,), arch=arch, image_shape=shape)
    big = NestedVAE(vcfg, (2, 5, 8)).eval()
    if likelihood == "gaussian":
        with torch.no_grad():
            big.log_sigma.copy_(torch.randn_like(big.log_sigma) * 0.3)  # distinct noise per prefix
    x = torch.rand(10, 64)
    mu, logvar = big.encode(x)
    for p, k in enumerate((2, 5, 8)):
        small = big.prefix_model(k)
        assert small.latent_dim == k and type(small).__name__ == "VAE"
        smu, slv = small.encode(x)
        torch.testing.assert_close(smu, mu[:, :k])
        torch.testing.assert_close(slv, logvar[:, :k])
        z = torch.randn(10, k)
        padded = torch.cat([z, torch.zeros(10, 8 - k)], dim=1)
        torch.testing.assert_close(small.decode(z), big.decode(padded))
        if likelihood == "gaussian":
            torch.testing.assert_close(small.noise_log_sigma(), big.log_sigma[p])
    with pytest.raises(ConfigError, match="not one of the nested sizes"):
        big.prefix_model(3)


def test_eval_rows_get_fixed_balanced_prefixes():
    torch.manual_seed(0)
    big = NestedVAE(VAEConfig(input_dim=6, latent_dim=4, likelihood="gaussian", hidden=(8,)), (1, 2, 4)).eval()
    x = torch.randn(9, 6)
    _, klu = big.elbo_terms(x, torch.Generator().manual_seed(0), offset=1)
    used = (klu != 0).sum(1).tolist()  # rows 1..9 of the data set: prefixes 2, 4, 1, 2, 4, 1, ...
    assert used == [2, 4, 1] * 3
    a = neg_elbo(big, x, batch_size=4, seed=3)
    b = neg_elbo(big, x, batch_size=9, seed=3)
    assert np.isfinite(a) and np.isfinite(b)
    # a row's prefix depends on its place in the data set, not on how the set is cut into batches
    gen = torch.Generator().manual_seed(0)
    _, whole = big.elbo_terms(x, gen)
    parts = torch.cat([big.elbo_terms(x[i : i + 4], gen, offset=i)[1] for i in range(0, 9, 4)])
    torch.testing.assert_close(parts, whole)  # KL is analytic: no sampling noise


def test_per_prefix_noise_scales_are_learned_apart():
    """A 1-unit prefix cannot reconstruct a 4-D manifold: its Gaussian noise must come out larger."""
    x = make_planted_data(4, 10, 1200, seed=3, noise=0.02)
    data = make_data(x)
    torch.manual_seed(0)
    big = NestedVAE(VAEConfig(input_dim=10, latent_dim=6, likelihood="gaussian", hidden=(64, 64)), (1, 6))
    fit(big, data.train, data.val, TrainConfig(epochs=40, batch_size=64, lr=3e-3, patience=0))
    ls = big.log_sigma.detach()
    assert float(ls[0].mean()) > float(ls[1].mean()) + 0.3
    nll = {k: evaluate(big.prefix_model(k), data.test, k=20)["nll"] for k in (1, 6)}
    assert nll[1] > nll[6] + 1.0


def test_nested_sweep_trains_once_and_writes_usual_trials(tmp_path, tiny_binary, monkeypatch):
    calls = []
    real_fit = nested.fit
    monkeypatch.setattr(nested, "fit", lambda *a, **k: calls.append(1) or real_fit(*a, **k))
    out = tmp_path / "run"
    r = sweep(tiny_binary, mode="nested", config=cfg((1, 2, 4)), out=out)
    assert len(calls) == 1  # one training serves the three sizes
    assert [t.dim for t in r.trials] == [1, 2, 4] and all(t.complete for t in r.trials)
    assert all(t.nested is True for t in r.trials)
    info = read_json(out / "nested" / "seed-0" / "nested.json")
    assert info["dims"] == [1, 2, 4] and len(info["history"]) == 4
    for t in r.trials:
        m = load_vae(out / "trials" / t.trial)
        assert m.latent_dim == t.dim
        again = evaluate(m, tiny_binary.test, k=10, seed=0)
        assert again["nll"] == pytest.approx(t.nll, rel=1e-6)  # the saved model is the one evaluated
    assert read_json(out / "run.json")["sweep"]["mode"] == "nested"

    # resume after losing a trial: cut out again from the saved nested model, no training
    lost = out / "trials" / "dim-002-seed-0"
    before = read_json(lost / "metrics.json")["nll"]
    for f in lost.iterdir():
        f.unlink()
    lost.rmdir()
    r2 = sweep(tiny_binary, mode="nested", config=cfg((1, 2, 4)), out=out, resume=True)
    assert len(calls) == 1
    assert {t.dim: t.nll for t in r2.trials}[2] == pytest.approx(before, rel=1e-6)


def test_nested_seeds_each_train_one_model(tmp_path, tiny_binary):
    r = sweep(tiny_binary, mode="nested", config=cfg((1, 3), seeds=2), out=tmp_path / "run")
    assert sorted((t.dim, t.seed) for t in r.trials) == [(1, 0), (1, 1), (3, 0), (3, 1)]
    assert sorted(p.name for p in (tmp_path / "run" / "nested").iterdir()) == ["seed-0", "seed-1"]


def test_nested_resume_with_other_sizes_is_refused(tmp_path, tiny_binary):
    out = tmp_path / "run"
    sweep(tiny_binary, mode="nested", config=cfg((1, 2)), out=out)
    listing = sorted(p.name for p in out.rglob("*"))
    with pytest.raises(RunDirError, match="nested run over sizes \\[1, 2\\].*--dims 1,2"):
        sweep(tiny_binary, mode="nested", config=cfg((1, 2, 4)), out=out, resume=True)
    assert sorted(p.name for p in out.rglob("*")) == listing
    with pytest.raises(RunDirError, match="was made with --nested: resume with it"):
        sweep(tiny_binary, config=SweepConfig(dims=(1, 2), hidden=(16,), train=FAST, k=10), out=out, resume=True)


@pytest.mark.parametrize("kw,flag", [(dict(refine=True), "--refine"), (dict(prune=True), "--prune")])
def test_nested_refuses_flags_it_cannot_honour(tmp_path, tiny_binary, kw, flag):
    with pytest.raises(ConfigError, match=f"{flag} does not combine with --nested"):
        sweep(tiny_binary, mode="nested", config=cfg((1, 2)), out=tmp_path / "run", **kw)
    assert not (tmp_path / "run").exists()


def test_diverged_nested_training_fails_every_size_once(tmp_path, tiny_gaussian, monkeypatch):
    bad = make_data(tiny_gaussian.train.numpy().copy())
    bad.train[5, 0] = float("nan")
    calls = []
    real_fit = nested.fit
    monkeypatch.setattr(nested, "fit", lambda *a, **k: calls.append(1) or real_fit(*a, **k))
    r = sweep(bad, mode="nested", config=cfg((1, 2)), out=tmp_path / "run")
    assert [t.status.value for t in r.trials] == ["failed", "failed"] and len(calls) == 1
    assert all("diverged" in t.reason for t in r.trials) and r.recommendation is None


def test_cli_nested_with_refine_is_one_line_exit_2(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "zdim", "sweep", "digits", "--dims", "2,4", "--nested", "--refine"]
        + ["--epochs", "1", "--out", str(tmp_path / "run"), "--quiet"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )
    assert p.returncode == 2, p.stderr
    assert p.stderr.count("\n") == 1 and "--refine does not combine with --nested" in p.stderr
    assert not (tmp_path / "run").exists()


def test_cli_nested_sweep_says_what_the_training_time_means(tmp_path):
    out = tmp_path / "run"
    p = subprocess.run(
        [sys.executable, "-m", "zdim", "sweep", "digits", "--dims", "2,4", "--nested", "--epochs", "1"]
        + ["--max-samples", "300", "--k", "5", "--epoch-steps", "1", "--out", str(out), "--quiet"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )
    assert p.returncode == 0, p.stderr
    assert "nested: the training time of each row is that of its seed's one nested model" in p.stdout
    assert (out / "nested" / "seed-0" / "nested.json").is_file()
    assert "nested: one VAE per seed" in (out / "report.html").read_text()
