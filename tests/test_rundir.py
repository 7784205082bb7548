"""The run directory's owner: nothing is deleted that zdim did not make, every option is validated before
any file is written, and files get the process's permissions. Each case here lost or half-wrote a
user's files before ``RunDir`` (issue #14)."""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from zdim.cli import main
from zdim.errors import RunDirError
from zdim.sweeps.execute import sweep
from zdim.sweeps.planning.config import SweepConfig
from zdim.sweeps.records.layout import MARKER, is_run_dir
from zdim.sweeps.records.runs import RunDir
from zdim.training.config import TrainConfig

QUICK = ["--dims", "1", "--epochs", "1", "--seeds", "1", "--hidden", "8", "--k", "2", "--quiet", "--no-extend",
         "--no-report"]  # fmt: skip


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def table(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "table.npy"
    np.save(path, rng.normal(size=(120, 6)).astype(np.float32))
    return path


@pytest.fixture(scope="module")
def made_run(tmp_path_factory) -> Path:
    """A finished zdim run directory (made once, copied by each test)."""
    base = tmp_path_factory.mktemp("made")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(120, 6)).astype(np.float32)
    cfg = SweepConfig(dims=(1,), hidden=(8,), k=2, train=TrainConfig(epochs=1, patience=0))
    sweep(x, config=cfg, out=base / "run", extend=False)
    return base / "run"


@pytest.fixture
def old_run(tmp_path, made_run) -> Path:
    dst = tmp_path / "prev"
    shutil.copytree(made_run, dst)
    return dst


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    return code, err


def one_line_error(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("zdim: error:"), err
    assert "Traceback" not in err
    return lines[0]


def test_a_new_run_has_the_marker(made_run):
    assert (made_run / MARKER).is_file() and is_run_dir(made_run)


def test_overwrite_refuses_a_folder_zdim_did_not_make(tmp_path, table, capsys):
    victim = tmp_path / "victim"
    victim.mkdir()
    for i in range(3):
        (victim / f"img{i}.png").write_bytes(b"not really a png %d" % i)
    before = snapshot(victim)
    code, err = run_cli(["sweep", table, *QUICK, "--out", victim, "--overwrite"], capsys)
    assert code == 2 and "not a zdim run directory" in one_line_error(err)
    assert snapshot(victim) == before


def test_overwrite_refuses_the_data_folder_itself(tmp_path, capsys):
    from PIL import Image

    data = tmp_path / "images"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray((rng.random((8, 8)) * 255).astype(np.uint8)).save(data / f"{i:03d}.png")
    before = snapshot(data)
    code, err = run_cli(["sweep", data, *QUICK, "--out", data, "--overwrite"], capsys)
    assert code == 2 and "is the data" in one_line_error(err)
    assert snapshot(data) == before


def test_out_may_not_hold_the_data(tmp_path, table, capsys):
    code, err = run_cli(["sweep", table, *QUICK, "--out", tmp_path, "--overwrite"], capsys)
    assert code == 2 and "holds the data" in one_line_error(err)
    assert table.is_file()


def test_overwrite_refuses_the_current_directory(tmp_path, table, monkeypatch, capsys):
    here = tmp_path / "work"
    here.mkdir()
    (here / "notes.txt").write_text("mine")
    monkeypatch.chdir(here)
    code, err = run_cli(["sweep", table, *QUICK, "--out", ".", "--overwrite"], capsys)
    assert code == 2
    one_line_error(err)
    assert (here / "notes.txt").read_text() == "mine" and sorted(os.listdir(here)) == ["notes.txt"]


def test_even_a_run_directory_that_is_the_current_directory_is_not_replaced(old_run, table, monkeypatch, capsys):
    before = snapshot(old_run)
    monkeypatch.chdir(old_run)
    code, err = run_cli(["sweep", table, *QUICK, "--out", ".", "--overwrite"], capsys)
    assert code == 2 and "current directory" in one_line_error(err)
    assert snapshot(old_run) == before


@pytest.mark.parametrize(
    "extra",
    [
        ["--workers", "0"],
        ["--tolerance", "-1"],
        ["--storage", "bogus://nowhere"],
        ["--seeds", "0"],
        ["--k", "0"],
        ["--batch-size", "0"],
        ["--lr", "0"],
        ["--dims", "99"],
        ["--arch", "conv"],
        ["--rule", "nope"],
        ["--device", "cuda:7"],
    ],
    ids=lambda e: " ".join(e),
)
def test_a_bad_option_with_overwrite_leaves_the_old_run_byte_for_byte(old_run, table, extra, capsys):
    before = snapshot(old_run)
    try:
        code = main([str(a) for a in ["sweep", table, *QUICK, *extra, "--out", old_run, "--overwrite"]])
    except SystemExit as e:  # argparse's own choices (--rule) exit 2 before zdim runs
        code = int(e.code or 0)
    capsys.readouterr()
    assert code == 2
    assert snapshot(old_run) == before
    assert [p.name for p in old_run.parent.iterdir() if p.name.startswith(".")] == []


def test_bad_data_with_overwrite_leaves_the_old_run(old_run, tmp_path, capsys):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.array([[1.0, np.nan], [2.0, 3.0]] * 30, dtype=np.float32))
    before = snapshot(old_run)
    code, err = run_cli(["sweep", bad, *QUICK, "--out", old_run, "--overwrite"], capsys)
    assert code == 2
    one_line_error(err)
    assert snapshot(old_run) == before


@pytest.mark.parametrize("extra", [["--arch", "conv"], ["--dims", "99"]], ids=["conv-on-a-table", "size-too-big"])
def test_an_unusable_model_writes_nothing(tmp_path, table, extra, capsys):
    out = tmp_path / "new"
    code, err = run_cli(["sweep", table, *QUICK, *extra, "--out", out], capsys)
    assert code == 2
    one_line_error(err)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.npy"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_exit_2_and_writes_nothing(tmp_path, table, capsys):
    out = tmp_path / "new"
    code, err = run_cli(["sweep", table, *QUICK, "--device", "cuda", "--out", out], capsys)
    assert code == 2 and "CUDA is not available" in one_line_error(err)
    assert not out.exists()
    with pytest.raises(Exception, match="CUDA is not available"):
        TrainConfig(device="cuda")


@pytest.mark.parametrize("where", ["/proc/zdim-run", "FILE/run"])
def test_an_unwritable_out_is_one_line(tmp_path, table, where, capsys):
    if where.startswith("FILE"):
        (tmp_path / "FILE").write_text("a file, not a folder")
        where = str(tmp_path / where)
    code, err = run_cli(["sweep", table, *QUICK, "--out", where], capsys)
    assert code == 2
    one_line_error(err)
    assert not Path(where).exists()


def test_overwrite_replaces_a_run_directory_and_removes_the_old_one(old_run, table, capsys):
    (old_run / "trials" / "dim-001-seed-0" / "metrics.json").write_text('{"stale": true}')
    code, _ = run_cli(["sweep", table, *QUICK, "--dims", "2", "--out", old_run, "--overwrite"], capsys)
    assert code == 0
    assert sorted(p.name for p in (old_run / "trials").iterdir()) == ["dim-002-seed-0"]
    assert (old_run / MARKER).is_file()
    assert [p.name for p in old_run.parent.iterdir() if p.name.startswith(".")] == []


def test_an_interrupted_overwrite_keeps_the_old_run_aside(old_run, table, monkeypatch, capsys):
    import zdim.sweeps.executors.per_size

    before = snapshot(old_run)

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(zdim.sweeps.executors.per_size, "run_trial", interrupted)
    args = ["sweep", table, *QUICK, "--dims", "2", "--mode", "per-size", "--out", old_run, "--overwrite"]
    code, err = run_cli(args, capsys)
    assert code == 130 and "--resume" in err
    aside = [p for p in old_run.parent.iterdir() if ".replaced-" in p.name]
    assert len(aside) == 1 and snapshot(aside[0]) == before


def test_an_older_run_without_marker_is_replaced_only_when_it_holds_only_zdim_files(old_run, table, capsys):
    (old_run / MARKER).unlink()
    assert is_run_dir(old_run)
    (old_run / "thesis.tex").write_text("mine")
    assert not is_run_dir(old_run)
    code, err = run_cli(["sweep", table, *QUICK, "--out", old_run, "--overwrite"], capsys)
    assert code == 2 and (old_run / "thesis.tex").read_text() == "mine"


def test_files_follow_the_umask(tmp_path, table, capsys):
    old = os.umask(0o022)
    try:
        code, _ = run_cli(["sweep", table, *QUICK, "--out", tmp_path / "run"], capsys)
    finally:
        os.umask(old)
    assert code == 0
    for name in (
        "run.json",
        "results.csv",
        "trials/dim-001-seed-0/metrics.json",
        "trials/dim-001-seed-0/model.safetensors",
    ):
        assert stat.S_IMODE((tmp_path / "run" / name).stat().st_mode) == 0o644, name
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o755


def test_records_are_read_once_per_change(old_run, monkeypatch):
    import zdim.sweeps.records.runs

    calls = []
    real = zdim.sweeps.records.runs.read_json
    monkeypatch.setattr(zdim.sweeps.records.runs, "read_json", lambda p: calls.append(p) or real(p))
    run = RunDir(old_run)
    first = run.records()
    n = len(calls)
    assert run.records() == first and len(calls) == n  # unchanged: nothing read again
    rec = first[0]
    rec.reason = "edited"
    run.save_trial(rec)
    assert run.records()[0].reason == "edited" and len(calls) == n + 1


def test_resume_of_a_folder_that_is_not_a_run_is_refused(tmp_path, table):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("1")
    with pytest.raises(RunDirError, match="not a zdim run"):
        RunDir.check_target(tmp_path / "x", resume=True)


def test_a_run_made_before_a_training_option_existed_resumes(old_run, table):
    """run.json of an older zdim lacks newer TrainConfig keys: their defaults are what it trained with."""
    import json

    info = json.loads((old_run / "run.json").read_text())
    info["sweep"]["train"].pop("binarize", None)
    (old_run / "run.json").write_text(json.dumps(info))
    new_info = dict(info, sweep=dict(info["sweep"], train={**info["sweep"]["train"], "binarize": False}))
    from zdim.sweeps.records.resume import check_resume

    check_resume(RunDir(old_run), new_info)  # no RunDirError
    changed = dict(info, sweep=dict(info["sweep"], train={**info["sweep"]["train"], "lr": 0.5}))
    with pytest.raises(RunDirError, match="other training settings: lr was 0.001, now 0.5: resume with the same --lr"):
        check_resume(RunDir(old_run), changed)


@pytest.mark.parametrize("make", [None, "empty"])
def test_resume_of_a_folder_without_a_run_is_one_line_and_writes_nothing(tmp_path, table, make, capsys):
    out = tmp_path / "nonexist"
    if make == "empty":
        out.mkdir()
    code, err = run_cli(["sweep", table, *QUICK, "--out", out, "--resume"], capsys)
    assert code == 2
    line = one_line_error(err)
    assert str(out) in line and ("does not exist" if make is None else "is empty") in line
    assert "drop --resume" in line
    assert out.exists() == (make == "empty") and (make is None or list(out.iterdir()) == [])


def test_resume_refuses_sizes_and_seeds_the_run_never_had_unless_extend_grid(tmp_path, table, capsys):
    out = tmp_path / "run"
    assert run_cli(["sweep", table, *QUICK, "--dims", "1,2", "--out", out], capsys)[0] == 0
    before = snapshot(out)
    command = json_of(out)["command"]
    code, err = run_cli(["sweep", table, *QUICK, "--dims", "1,2,4", "--out", out, "--resume"], capsys)
    assert code == 2
    line = one_line_error(err)
    assert "sizes 1,2, not 4" in line and "--dims 1,2" in line and "--extend-grid" in line
    code, err = run_cli(["sweep", table, *QUICK, "--dims", "1,2", "--seeds", "2", "--out", out, "--resume"], capsys)
    assert code == 2 and "--seeds 1, not 2" in one_line_error(err)
    code, err = run_cli(["sweep", table, *QUICK, "--dims", "1,2", "--k", "3", "--out", out, "--resume"], capsys)
    assert code == 2 and "--k 2, not 3" in one_line_error(err)
    code, err = run_cli(["sweep", table, *QUICK, "--dims", "1,2,4", "--out", out, "--extend-grid"], capsys)
    assert code == 2 and "pass --resume too" in one_line_error(err)
    # a part of its grid (issue 37): refused, for the answer and its notes would be rewritten from a part
    code, err = run_cli(["sweep", table, *QUICK, "--dims", "1", "--out", out, "--resume"], capsys)
    assert code == 2 and "--dims 1 leaves out 2: a resume finishes the whole run" in one_line_error(err)
    assert "resume with --dims 1,2" in one_line_error(err)
    assert snapshot(out) == before  # refused before anything is written
    # the same command resumes; --extend-grid adds the size
    assert run_cli(["sweep", table, *QUICK, "--dims", "1,2", "--out", out, "--resume"], capsys)[0] == 0
    args = ["sweep", table, *QUICK, "--dims", "1,2,4", "--out", out, "--resume", "--extend-grid"]
    assert run_cli(args, capsys)[0] == 0
    assert (out / "trials" / "dim-004-seed-0" / "metrics.json").is_file()
    info = json_of(out)
    assert info["sweep"]["dims"] == [1, 2, 4] and info["command"] == command  # the command that made the run
    assert len(info["resumes"]) == 2 and "--extend-grid" in info["resumes"][-1]["command"]
    assert "extend_grid" not in info


def test_resume_accepts_the_sizes_a_run_added_itself(old_run, table, capsys):
    """Growth and refinement record their sizes in run.json (RunDir.add_dims): they belong to the run."""
    RunDir(old_run).add_dims([3])
    data = np.random.default_rng(1).normal(size=(120, 6)).astype(np.float32)
    cfg = SweepConfig(dims=(1, 3), hidden=(8,), k=2, train=TrainConfig(epochs=1, patience=0))
    r = sweep(data, config=cfg, out=old_run, extend=False, refine=False, resume=True)
    assert sorted(t.dim for t in r.trials) == [1, 3]
    with pytest.raises(RunDirError, match="sizes 1,3, not 5: resume with --dims 1,3"):
        sweep(data, config=replace(cfg, dims=(1, 5)), out=old_run, extend=False, resume=True)


def json_of(run: Path) -> dict:
    import json

    return json.loads((run / "run.json").read_text())


def test_the_advice_to_train_longer_can_be_followed(tmp_path, table, capsys, monkeypatch):
    """Issue 37: "rerun with more --epochs" could not be followed with --resume (which refuses other
    training settings); the advice now names the command that works, and it does."""
    monkeypatch.setattr("zdim.printing.write_report", lambda *a: None)  # the sweeps alone
    out = tmp_path / "run"
    args = ["sweep", table, *QUICK, "--dims", "1,2", "--folds", "1", "--no-refine", "--out", out]
    code = main([str(a) for a in args])
    printed = capsys.readouterr().out
    advice = "rerun the sweep with more --epochs and --overwrite, since --resume keeps its trials as they are"
    assert code == 0 and "had not converged" in printed and advice in printed
    code, err = run_cli([*args, "--epochs", "3", "--resume"], capsys)
    assert code == 2 and "or use --overwrite" in one_line_error(err)
    assert run_cli([*args, "--epochs", "3", "--overwrite"], capsys)[0] == 0  # the advice, followed
    assert json_of(out)["sweep"]["train"]["epochs"] == 3
