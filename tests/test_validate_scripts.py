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


def _write_trials(run: Path, rows: list[tuple[int, int, int, float]], folded: bool) -> None:
    """A run directory's trials file: (fold, dim, seed, nll) rows, as results.csv or folds.csv."""
    run.mkdir()
    name, head = ("folds.csv", "fold,dim,seed,status,nll") if folded else ("results.csv", "dim,seed,status,nll")
    lines = [head] + [(f"{f}," if folded else "") + f"{d},{s},complete,{v}" for f, d, s, v in rows]
    lines.append(("1," if folded else "") + "9,0,failed,")  # a failed trial is left out
    (run / name).write_text("\n".join(lines) + "\n")


def test_compare_runs_sets_each_size_difference_beside_its_se(tmp_path):
    script = load_script(ROOT / "benchmarks" / "compare_runs.py")
    before, after = tmp_path / "before", tmp_path / "after"
    # one split: size 2 on 3 seeds (SD 1) before, one training after 0.5 worse: within the SE sqrt(4/3);
    # size 4 on 3 seeds in both, after 3 nats worse: beyond its SE
    _write_trials(
        before,
        [(0, 2, s, v) for s, v in enumerate((9.0, 10.0, 11.0))] + [(0, 4, s, v) for s, v in enumerate((5.0, 6.0, 7.0))],
        folded=False,
    )
    _write_trials(after, [(0, 2, 0, 10.5)] + [(0, 4, s, v) for s, v in enumerate((8.0, 9.0, 10.0))], folded=False)
    lines, worse, better = script.compare(script.read_trials(before), script.read_trials(after))
    assert worse == [4] and better == []
    diff, se, how = script.compare_size(script.read_trials(before)[2], script.read_trials(after)[2])
    assert diff == pytest.approx(0.5) and se == pytest.approx((4 / 3) ** 0.5) and "seed SD 1.00" in how
    # folds in both: paired by fold, so a fold's own level cancels; after is 0.1 better on every fold
    fb, fa = tmp_path / "fb", tmp_path / "fa"
    _write_trials(fb, [(f, 3, 0, 10.0 * f) for f in (1, 2, 3)], folded=True)
    _write_trials(fa, [(f, 3, 0, 10.0 * f - 0.1 + 0.01 * f) for f in (1, 2, 3)], folded=True)
    diff, se, how = script.compare_size(script.read_trials(fb)[3], script.read_trials(fa)[3])
    assert diff == pytest.approx(-0.08) and se == pytest.approx(0.01 / 3**0.5) and how == "paired over 3 folds"
    assert script.compare(script.read_trials(fb), script.read_trials(fa))[2] == [3]
    # the trainings both runs made, side by side: a size that differs only by the seeds one run left out
    assert script.same_trainings({0: {0: 1.0, 1: 2.0, 2: 3.0}}, {0: {0: 1.0}}) == "1/1 equal"
    assert "0/3 equal, max 3.00" in next(line for line in lines if line.startswith("   4"))
    assert script.main([str(before)]) == 2  # an unpaired run directory: one line, exit 2
