"""Every place zdim writes is checked before any work: a report file, a run directory that is read-only
for `zdim report` or `zdim tune`, an MLflow store. Each fails in one line, exit 2, no traceback."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

from zdim.cli import main


@pytest.fixture
def read_only(monkeypatch):
    """``read_only(path)`` makes a folder read-only: by its mode for an ordinary user and, since root
    ignores modes, by refusing to create files there (every write of zdim goes through ``tempfile``)."""
    denied: list[Path] = []

    def inside(folder) -> bool:
        if folder is None:
            return False
        f = Path(folder).resolve()
        return any(f == p or p in f.parents for p in denied)

    for name in ("mkstemp", "mkdtemp"):
        real = getattr(tempfile, name)

        def refusing(*args, _real=real, dir=None, **kw):
            if inside(dir):
                raise PermissionError(13, "Permission denied")
            return _real(*args, dir=dir, **kw)

        monkeypatch.setattr(tempfile, name, refusing)

    def make(path: Path) -> Path:
        path.chmod(0o555)
        denied.append(path.resolve())
        return path

    yield make
    for p in denied:
        p.chmod(0o755)


@pytest.fixture
def run(tmp_path):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(150, 5)).astype(np.float32))
    out = tmp_path / "run"
    args = ["sweep", str(tmp_path / "x.npy"), "--dims", "1,2", "--seeds", "1", "--epochs", "2", "--hidden", "8"]
    assert main([*args, "--k", "3", "--out", str(out), "--quiet"]) == 0
    return out


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("zdim: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_report_into_a_read_only_folder(run, tmp_path, read_only, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    read_only(folder)
    capsys.readouterr()
    assert main(["report", str(run), "--out", str(folder / "report.html")]) == 2
    assert "Permission denied" in one_line(capsys)


def test_report_and_tune_on_a_read_only_run_directory(run, read_only, capsys):
    before = sorted(p.name for p in run.rglob("*"))
    read_only(run)
    capsys.readouterr()
    assert main(["report", str(run)]) == 2
    assert "cannot write to run directory" in one_line(capsys)
    assert main(["tune", str(run), "--trials", "1", "--quiet"]) == 2
    assert "zdim tune writes" in one_line(capsys)
    assert sorted(p.name for p in run.rglob("*")) == before


def test_an_unwritable_mlflow_store_fails_before_the_sweep(tmp_path, read_only, capsys):
    pytest.importorskip("mlflow")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(150, 5)).astype(np.float32))
    store = tmp_path / "store"
    store.mkdir()
    read_only(store)
    args = ["sweep", str(tmp_path / "x.npy"), "--dims", "1", "--out", str(tmp_path / "run"), "--quiet"]
    assert main([*args, "--mlflow-uri", store.as_uri()]) == 2
    assert "--mlflow-uri" in one_line(capsys) and not (tmp_path / "run").exists()
