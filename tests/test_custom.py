"""Your own model (zdim.models.custom): the protocol, where the class comes from, saving and loading with
trust_code, and the one-batch check that catches a model breaking the protocol before training."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import zdim
from zdim.cli import main
from zdim.errors import ConfigError, ModelFileError, RunDirError
from zdim.models import custom
from zdim.models.vae import VAE, VAEConfig
from zdim.sweeps.planning.config import SweepConfig
from zdim.training.config import TrainConfig

MODELS = textwrap.dedent(
    """
    import torch
    from torch import nn


    class TinyVAE(nn.Module):
        def __init__(self, latent_dim, data_info):
            super().__init__()
            self.info = data_info
            d = data_info.n_features
            self.enc = nn.Sequential(nn.Linear(d, 16), nn.SiLU(), nn.Linear(16, 2 * latent_dim))
            self.dec = nn.Sequential(nn.Linear(latent_dim, 16), nn.SiLU(), nn.Linear(16, d))

        def encode(self, x):
            return self.enc(x.flatten(1)).chunk(2, dim=-1)

        def decode(self, z):
            return self.dec(z)


    class WrongWidth(TinyVAE):
        def encode(self, x):
            mu, logvar = super().encode(x)
            return torch.cat([mu, mu[:, :1]], 1), torch.cat([logvar, logvar[:, :1]], 1)


    class NanAtInit(TinyVAE):
        def encode(self, x):
            mu, logvar = super().encode(x)
            return mu * float("nan"), logvar


    class BadDecode(TinyVAE):
        def decode(self, z):
            return self.dec(z)[:, :-1]


    class NotAPair(TinyVAE):
        def encode(self, x):
            return super().encode(x)[0]


    class BadInit(TinyVAE):
        def __init__(self, latent_dim, data_info):
            raise ValueError("no such layer")


    class NoDecode(nn.Module):
        def __init__(self, latent_dim, data_info):
            super().__init__()

        def encode(self, x):
            return x, x


    NOT_A_CLASS = 3
    """
)

BREAKS = {
    "WrongWidth": "encode gives mu of shape (2, 2), expected (2, 1)",
    "NanAtInit": "non-finite mu",
    "BadDecode": "decode gives (2, 7), expected (2, 8)",
    "NotAPair": "encode must return a pair of tensors",
    "BadInit": "BadInit(1, data_info) failed (ValueError: no such layer)",
    "NoDecode": "it has no decode",
    "NOT_A_CLASS": "is not a class",
    "Missing": "has no class Missing",
}


class ScaledVAE(VAE):
    """A subclass of zdim's VAE (built as ``ScaledVAE(vae_config)``) with a scaled decoder output."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__(config)
        self.scale = nn.Parameter(torch.ones(()))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return super().decode(z) * self.scale


class OwnLikelihood(nn.Module):
    """A protocol class with its own likelihood: unit-variance Gaussian on (B, D) only."""

    def __init__(self, latent_dim: int, data_info: custom.DataInfo) -> None:
        super().__init__()
        self.enc = nn.Linear(data_info.n_features, 2 * latent_dim)
        self.dec = nn.Linear(latent_dim, data_info.n_features)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.enc(x).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.dec(z)
        return out

    def log_likelihood(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        assert x.ndim == 2 and params.shape == x.shape
        return -0.5 * ((x - params) ** 2).sum(-1)


@pytest.fixture(autouse=True)
def _fresh_registry():
    custom.forget_models()
    yield
    custom.forget_models()


@pytest.fixture
def table(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    z = rng.standard_normal((200, 2))
    x = z @ rng.standard_normal((2, 8)) + 0.1 * rng.standard_normal((200, 8))
    path = tmp_path / "table.npy"
    np.save(path, x.astype(np.float32))
    return path


@pytest.fixture
def models_file(tmp_path: Path) -> Path:
    path = tmp_path / "code" / "my_models.py"
    path.parent.mkdir()
    path.write_text(MODELS)
    return path


def _sweep_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["sweep", str(data), "--dims", "1,2", "--epochs", "1", "--k", "5", "--out", str(out), "--quiet", *extra]


def test_a_model_from_a_file_sweeps_reports_and_loads_only_with_trust(table, models_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_sweep_args(table, out, "--model", f"{models_file}:TinyVAE")) == 0
    spec = f"{models_file.resolve()}:TinyVAE"
    assert json.loads((out / "run.json").read_text())["sweep"]["model"] == spec
    meta = json.loads((out / "trials" / "dim-001-seed-0" / "model.json").read_text())
    assert meta["user_model"]["spec"] == spec
    assert meta["user_model"]["file_sha256"] == hashlib.sha256(models_file.read_bytes()).hexdigest()
    assert meta["user_model"]["data_info"]["sample_shape"] == [8]
    html = (out / "report.html").read_text()
    assert "could not be loaded" not in html  # the sweep's own process holds the class: pictures drawn
    assert "TinyVAE" in zdim.RunDir(out).read_info()["sweep"]["model"]

    custom.forget_models()  # as a fresh process: nothing of the user's code is held
    with pytest.raises(ModelFileError) as err:
        zdim.load_model(out / "trials" / "dim-002-seed-0")
    msg = str(err.value)
    assert "\n" not in msg and spec in msg and "trust_code=True" in msg

    assert main(["report", str(out)]) == 0  # skips the pictures of user models, with a note
    assert "Models that could not be loaded (pictures skipped)" in (out / "report.html").read_text()

    saved = zdim.load_model(out / "trials" / "dim-002-seed-0", trust_code=True)
    assert type(saved.module).__name__ == "UserVAE" and saved.module.net.info.n_features == 8
    assert saved.module.transform(torch.zeros(3, 8)).shape == (3, 2)

    custom.forget_models()
    models_file.write_text(MODELS + "\n# edited\n")
    with pytest.raises(ModelFileError, match="changed since this model was saved"):
        zdim.load_model(out / "trials" / "dim-002-seed-0", trust_code=True)


def test_a_model_from_a_module_and_as_a_class_resumes_only_with_the_same_model(
    table, models_file, tmp_path, monkeypatch
):
    pkg = tmp_path / "mypkg_custom"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text(MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    data = zdim.load_data(str(table))
    cfg = SweepConfig(dims=(1, 2), model="mypkg_custom.nets:TinyVAE", train=TrainConfig(epochs=1), k=5)
    out = tmp_path / "run"
    res = zdim.sweep(data, config=cfg, out=out, extend=False, refine=False)
    assert [t.status.value for t in res.trials] == ["complete", "complete"]
    assert (out / "report.html").is_file()

    import mypkg_custom.nets as nets

    assert SweepConfig(dims=(1,), model=nets.TinyVAE).model == "mypkg_custom.nets:TinyVAE"
    custom.forget_models()
    saved = zdim.load_model(out / "trials" / "dim-001-seed-0", trust_code=True)
    assert isinstance(saved.module.net, nets.TinyVAE)

    again = zdim.sweep(data, config=cfg, out=out, resume=True, report=False, extend=False, refine=False)  # no work
    assert len(again.trials) == 2
    other = SweepConfig(dims=(1, 2), model=f"{models_file}:TinyVAE", train=TrainConfig(epochs=1), k=5)
    with pytest.raises(RunDirError, match="was made with model mypkg_custom.nets:TinyVAE"):
        zdim.sweep(data, config=other, out=out, resume=True, report=False)
    with pytest.raises(RunDirError, match="zdim VAE"):
        zdim.sweep(data, config=SweepConfig(dims=(1, 2), train=TrainConfig(epochs=1), k=5), out=out, resume=True)


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_a_protocol_break_fails_before_training_with_exit_2(name, table, models_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_sweep_args(table, out, "--model", f"{models_file}:{name}")) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("zdim: error:"), err
    assert BREAKS[name] in err, err
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--nested"], "--nested needs zdim's own model"),
        ([], "not found"),
    ],
)
def test_nested_and_a_missing_file_are_refused(extra, expected, table, models_file, tmp_path, capsys):
    out = tmp_path / "run"
    path = models_file if extra else tmp_path / "nope.py"
    assert main(_sweep_args(table, out, "--model", f"{path}:TinyVAE", *extra)) == 2
    assert expected in capsys.readouterr().err
    assert not out.exists()


def test_a_vae_subclass_sweeps_and_loads(table, tmp_path):
    data = zdim.load_data(str(table))
    cfg = SweepConfig(dims=(1,), model=ScaledVAE, train=TrainConfig(epochs=1), k=5)
    assert cfg.model == "tests.test_custom:ScaledVAE"
    res = zdim.sweep(data, config=cfg, out=tmp_path / "run", report=False)
    assert res.trials[0].complete
    meta = json.loads((tmp_path / "run" / "trials" / "dim-001-seed-0" / "model.json").read_text())
    assert meta["user_model"]["kind"] == "vae"
    custom.forget_models()
    saved = zdim.load_model(tmp_path / "run" / "trials" / "dim-001-seed-0", trust_code=True)
    assert isinstance(saved.module, ScaledVAE)


def test_the_wrapper_passes_the_data_shape_and_folds_sample_dimensions():
    info = custom.DataInfo(n_features=6, sample_shape=(6,), likelihood="gaussian")
    model = custom.build_model(VAEConfig(input_dim=6, latent_dim=3, likelihood="gaussian"), info, OwnLikelihood)
    x = torch.randn(4, 6)
    out = model.decode(torch.randn(5, 4, 3))
    assert out.shape == (5, 4, 6)
    assert model.log_likelihood(x, out).shape == (5, 4)  # the user's (B, D) -> (B,) on every sample
    custom.check_protocol(model, x[:2])
    img = custom.DataInfo(n_features=12, sample_shape=(3, 2, 2), likelihood="bernoulli", is_image=True)
    seen = []

    class Shape(OwnLikelihood):
        def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            seen.append(tuple(x.shape))
            return super().encode(x.flatten(1))

    m = custom.build_model(VAEConfig(input_dim=12, latent_dim=2), img, Shape)
    m.encode(torch.rand(4, 12))
    assert seen == [(4, 3, 2, 2)]


def test_a_class_of_main_says_how_to_pass_it_again():
    with pytest.raises(ConfigError, match=r"defined in __main__.*register_model"):
        custom.resolve_model("__main__:NoSuchClassHere")
    with pytest.raises(ConfigError, match="fix --model"):
        SweepConfig(dims=(1,), model="no-colon-here")


def test_tuning_a_sweep_of_user_code_needs_trust(tmp_path):
    from zdim.models.custom import needs_trust

    assert needs_trust(str(tmp_path / "models.py") + ":MyVAE") and needs_trust("somepkg.models:MyVAE")
    assert not needs_trust("zdim.models.pythae:PythaeVAE")
