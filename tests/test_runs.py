import pickle

import pytest
import torch

from zdim.errors import ModelFileError
from zdim.files import atomic_write, read_json, write_json
from zdim.models.checkpoints import load_vae, save_model
from zdim.models.vae import VAE, VAEConfig
from zdim.sweeps.records.runs import RunDir


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "a" / "f.json"
    write_json(p, {"x": 1, "bad": float("nan")})
    assert read_json(p) == {"x": 1, "bad": None}
    atomic_write(p, "new")
    assert p.read_text() == "new"
    assert [f.name for f in p.parent.iterdir()] == ["f.json"]  # no temporary left behind


def test_atomic_write_failure_leaves_old_file(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("old")
    with pytest.raises(TypeError):
        atomic_write(p, 12345)  # type: ignore[arg-type]
    assert p.read_text() == "old" and len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_save_load_round_trip(tmp_path, likelihood):
    torch.manual_seed(0)
    m = VAE(VAEConfig(12, 3, likelihood=likelihood, hidden=(16, 8)))
    save_model(m, tmp_path)
    m2 = load_vae(tmp_path)
    assert m2.config == m.config
    x = torch.rand(4, 12)
    assert torch.equal(m.encode(x)[0], m2.encode(x)[0])
    assert torch.equal(m.decode(torch.ones(2, 3)), m2.decode(torch.ones(2, 3)))
    assert load_vae(tmp_path / "model.safetensors").config == m.config


def test_truncated_or_foreign_files_are_rejected(tmp_path):
    m = VAE(VAEConfig(12, 3, hidden=(16,)))
    save_model(m, tmp_path)
    raw = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ModelFileError, match="checksum"):
        load_vae(tmp_path)
    # a pickle where the weights should be is refused, never unpickled
    (tmp_path / "model.safetensors").write_bytes(pickle.dumps({"x": 1}))
    meta = read_json(tmp_path / "model.json")
    meta.pop("sha256")
    write_json(tmp_path / "model.json", meta)
    with pytest.raises(ModelFileError, match="not a readable safetensors"):
        load_vae(tmp_path)
    with pytest.raises(ModelFileError, match="missing"):
        load_vae(tmp_path / "nowhere")


def test_trial_done_requires_metrics_and_loadable_model(tmp_path):
    m = VAE(VAEConfig(6, 2, hidden=(8,)))
    run = RunDir(tmp_path)
    folder = run.trial_folder(2, 0)

    def trial_done() -> bool:
        return RunDir(tmp_path).trial_done(2, 0)  # a fresh owner: nothing remembered

    assert not trial_done()
    save_model(m, folder)
    assert not trial_done()  # no metrics yet: the trial was interrupted
    write_json(folder / "metrics.json", {"status": "complete", "dim": 2, "seed": 0})
    assert trial_done()
    (folder / "metrics.json").write_text('{"status": "compl')
    assert not trial_done()
    write_json(folder / "metrics.json", {"status": "failed", "dim": 2, "seed": 0})
    assert trial_done()
    write_json(folder / "metrics.json", {"status": "complete", "dim": 2, "seed": 0})
    raw = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(raw[:-8])
    assert not trial_done() and not run.trial_done(2, 0)  # a changed file is read again
