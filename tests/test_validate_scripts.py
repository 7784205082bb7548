"""The validation scripts behind docs/validation.md still run against zdim's API (tiny budgets).

Their figures take hours; these runs take seconds and only check that a script gets to its last line,
so an API change cannot leave a documented command broken until someone reruns it.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT.parent / "shared" / "datasets" / "mnist"


def load_script(path: Path):
    spec = importlib.util.spec_from_file_location(f"validate_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def test_planted_validation_runs_with_a_tiny_budget(capsys):
    run = load_script(ROOT / "benchmarks" / "validate" / "run.py")
    budget = {"planted": [(1, 4, 0.01, 300)], "planted_epochs": 2, "k": 4}
    run.planted(budget)
    out = capsys.readouterr().out
    assert "within 1 of d: combined" in out
    assert "\n1 | 4 | 0.01 | 300 | " in out  # the one case's row


@pytest.mark.skipif(not MNIST.is_dir(), reason=f"MNIST IDX files not at {MNIST}")
def test_mnist_settle_runs_with_a_tiny_budget(tmp_path, capsys, monkeypatch):
    script = load_script(ROOT / "benchmarks" / "validate" / "mnist_settle.py")
    argv = ["mnist_settle.py", "--max-samples", "300", "--dims", "2,4", "--seeds", "1", "--epochs", "2"]
    argv += ["--k", "2", "--k-final", "2", "--k-final-n", "20", "--threads", "1", "--out", str(tmp_path / "run")]
    monkeypatch.setattr(sys, "argv", argv)
    script.main()
    out = capsys.readouterr().out
    assert "latent | seeds | NLL (IWAE)" in out
    assert "recommended latent size: " in out and "settled: NO" in out  # 2 epochs cannot settle
    assert "IWAE NLL of the best model" in out and "not comparable: this run models grey levels" in out
    assert (tmp_path / "run" / "trials").is_dir()


def test_mnist_settle_refuses_bad_sizes_in_one_line(capsys, monkeypatch):
    script = load_script(ROOT / "benchmarks" / "validate" / "mnist_settle.py")
    monkeypatch.setattr(sys, "argv", ["mnist_settle.py", "--dims", "2,x"])
    with pytest.raises(SystemExit) as exc:
        script.main()
    assert exc.value.code == 2
    assert "'2,x' is not a list of latent sizes" in capsys.readouterr().err


def test_wakeup_levers_run_with_a_tiny_budget(capsys):
    script = load_script(ROOT / "benchmarks" / "validate" / "wakeup.py")
    results = script.main(["--quick", "--sets", "planted-2-16", "--max-samples", "300", "--epochs", "4"])
    out = capsys.readouterr().out
    assert "set (d) | lever | wake per member" in out
    assert "\nplanted-2-16 (2) | today | " in out and "\nplanted-2-16 (2) | default | " in out
    assert "planted-2-16: member-epochs to settle today" in out
    assert {r["lever"] for r in results} == {"today", "default"} and all(r["lever_stops"] == 0 for r in results)
