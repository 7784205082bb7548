"""Pythae models swept through zdim's protocol (zdim.models.pythae); skipped when Pythae is absent."""

from __future__ import annotations

import json

import pytest
import torch

import zdim
from zdim.cli import main
from zdim.errors import ConfigError
from zdim.models import custom

try:
    from zdim.models.pythae import pythae_models

    pythae_models()
    REASON = ""
except ConfigError as e:
    REASON = str(e)

pytestmark = pytest.mark.skipif(bool(REASON), reason=f"Pythae is not importable here: {REASON}")


@pytest.mark.parametrize("name", ["PythaeVAE", "PythaeVAMP"])
def test_a_pythae_model_sweeps_and_loads_without_trust(name, tmp_path):
    out = tmp_path / "run"
    args = ["sweep", "digits", "--model", f"zdim.models.pythae:{name}", "--dims", "1,2", "--epochs", "1"]
    assert main([*args, "--k", "5", "--max-samples", "300", "--out", str(out), "--quiet"]) == 0
    meta = json.loads((out / "trials" / "dim-002-seed-0" / "model.json").read_text())
    assert meta["user_model"]["spec"] == f"zdim.models.pythae:{name}"
    assert "could not be loaded" not in (out / "report.html").read_text()
    custom.forget_models()
    saved = zdim.load_model(out / "trials" / "dim-002-seed-0")  # zdim's own module: no trust needed
    assert saved.module.net.model.model_name in ("VAE", "VAMP")
    assert saved.module.transform(torch.rand(3, 64)).shape == (3, 2)


def test_the_default_decoder_gives_logits_not_probabilities():
    from zdim.models.pythae import PythaeBetaVAE

    info = custom.DataInfo(n_features=6, sample_shape=(6,), likelihood="gaussian")
    net = PythaeBetaVAE(3, info)
    assert not any(isinstance(m, torch.nn.Sigmoid) for m in net.modules())
    mu, logvar = net.encode(torch.randn(4, 6))
    assert mu.shape == logvar.shape == (4, 3) and net.decode(mu).shape == (4, 6)
