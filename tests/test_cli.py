"""The CLI as a user meets it: exit codes, one-line errors, nothing half-written."""

import subprocess
import sys

import numpy as np
import pytest

from zdim.cli import main
from zdim.errors import ConfigError

QUICK = ["--epochs", "2", "--epoch-steps", "1", "--hidden", "16", "--k", "5", "--quiet", "--folds", "1", "--no-report"]


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "zdim", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300
    )


@pytest.fixture
def csv_file(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6))
    p = tmp_path / "table.csv"
    np.savetxt(p, x, delimiter=",", header="a,b,c,d,e,f", comments="")
    return p


def test_dims_are_parsed_without_being_expanded():
    from zdim.grid import MAX_SIZES, DimSpec

    assert DimSpec.parse("2,5,10").sizes(16) == (2, 5, 10)
    assert DimSpec.parse("1-4,8, 3").sizes(16) == (1, 2, 3, 4, 8)
    for bad in ("2,x", "5-1", "0,2", ""):
        with pytest.raises(ConfigError, match="--dims"):
            DimSpec.parse(bad)
    huge = DimSpec.parse("1-100000000")  # nothing is expanded until it is checked against the data
    assert huge.largest == 100_000_000 and huge.count() == 100_000_000
    with pytest.raises(ConfigError, match="latent size 100000000 exceeds the 12 features"):
        huge.sizes(12)
    with pytest.raises(ConfigError, match=f"more than {MAX_SIZES}"):
        DimSpec.parse(f"1-{MAX_SIZES + 1}").sizes(10_000)


def test_sweep_end_to_end_in_a_real_process(tmp_path, csv_file, capsys):
    out = tmp_path / "run"
    p = run_cli("sweep", csv_file, "--dims", "1,2", "--out", out, *QUICK)
    assert p.returncode == 0, p.stderr
    assert "Recommended latent size:" in p.stdout and "Traceback" not in p.stderr
    assert (out / "recommendation.json").is_file()
    assert not (out / "report.html").exists() and "Report:" not in p.stdout  # --no-report: `zdim report` later
    # the next two in this process (the sweeps before and after in their own)
    assert main(["info", str(out)]) == 0 and "Recommended latent size:" in capsys.readouterr().out
    # an existing run directory: exit 2, one line, directory untouched
    before = sorted(x.name for x in out.rglob("*"))
    assert main(["sweep", str(csv_file), "--dims", "1,2", "--out", str(out), *QUICK]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().count("\n") == 0 and "--resume" in err
    assert sorted(x.name for x in out.rglob("*")) == before
    resumed = run_cli("sweep", csv_file, "--dims", "1,2,3", "--out", out, "--resume", "--extend-grid", *QUICK)
    assert resumed.returncode == 0, resumed.stderr
    assert (out / "trials" / "dim-003-seed-0" / "metrics.json").is_file()
    assert not (out / "report.html").exists()
    assert main(["report", str(out)]) == 0 and (out / "report.html").is_file()


@pytest.mark.parametrize(
    "args,needle",
    [
        (["sweep", "no/such/file.csv"], "no/such/file.csv"),
        (["sweep", "{csv}", "--dims", "2,x"], "--dims"),
        (["sweep", "{csv}", "--dims", "0"], "--dims"),
        (["sweep", "{csv}", "--dims", "7"], "latent size 7 exceeds the 6 features"),
        (["sweep", "{csv}", "--epochs", "0"], "epochs"),
        (["sweep", "{csv}", "--lr", "-1"], "lr"),
        (["info", "{tmp}"], "not a zdim run directory"),
    ],
)
def test_user_errors_exit_2_with_one_line(args, needle, csv_file, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = [a.format(csv=csv_file, tmp=tmp_path) for a in args]
    assert main([*args, "--quiet"] if args[0] == "sweep" else args) == 2
    err = capsys.readouterr().err
    assert err.startswith("zdim: error: ") and needle in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()  # nothing half-written


def test_a_bad_backend_address_or_run_directory_is_one_line_even_with_progress_on(csv_file, tmp_path, capsys):
    """The command's header (the sizes, the mode, where the run goes) is printed once every check has passed:
    a bad input found where the work starts (the backend's address, the run directory) is still one line."""
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("not a run")
    for args, needle in (
        (["--address", "h:1", "--out", str(tmp_path / "run")], "--address 'h:1' names a cluster"),
        (["--out", str(tmp_path / "taken")], "already exists"),
    ):
        assert main(["sweep", str(csv_file), "--dims", "1", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("zdim: error: ") and needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


def test_bad_data_in_a_real_process_has_no_traceback(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3,nan\n" + "1,2\n" * 20)
    p = run_cli("sweep", bad, "--out", tmp_path / "run", "--quiet")
    assert p.returncode == 2 and "Traceback" not in p.stderr and "NaN" in p.stderr
    assert not (tmp_path / "run").exists()


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["sweep"])
    assert e.value.code == 2


def test_datasets_lists_digits(capsys):
    assert main(["datasets"]) == 0
    assert "digits" in capsys.readouterr().out


def test_estimate_id_prints_a_table_and_rejects_bad_input(csv_file, capsys):
    assert main(["estimate-id", str(csv_file), "--n", "50", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "TwoNN" in out and "MLE" in out and "default sweep sizes" in out
    assert main(["estimate-id", str(csv_file), "--repeats", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "repeats" in err[0]


def test_sweep_without_dims_builds_the_grid_from_the_intrinsic_dimension(tmp_path, csv_file):
    from zdim.files import read_json

    out = tmp_path / "run"
    assert main(["sweep", str(csv_file), "--out", str(out), "--rule", "nll-knee", *QUICK]) == 0
    info, rec = read_json(out / "run.json"), read_json(out / "recommendation.json")
    est = info["intrinsic_dim"]["dim"]
    assert info["sweep"]["dims"][-1] in (6, 2 ** (4 * est - 1).bit_length())  # 6 features cap it
    assert rec["intrinsic_dim"] == est and rec["rule"] == "nll-knee"
    assert rec["signals"]["intrinsic-dim"] == est


def test_every_option_says_what_it_does():
    from zdim.cli import build_parser

    parser = build_parser()
    subs = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in subs.items():
        for action in sub._actions:
            if action.dest != "help":
                assert action.help, f"zdim {name} {'/'.join(action.option_strings) or action.dest} has no help"
