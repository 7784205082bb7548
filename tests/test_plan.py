"""The one resolver: every option of the CLI and of the API becomes one SweepPlan, with a Mode, before
anything is done; flags that do not apply are refused, not silently dropped."""

from __future__ import annotations

import numpy as np
import pytest

import zdim
from zdim.cli import main
from zdim.errors import ConfigError
from zdim.sweeps.planning.config import SweepConfig
from zdim.sweeps.planning.plan import Mode, Options, resolve
from zdim.training.config import TrainConfig

from .conftest import make_data

MODELS = """
from torch import nn


class Tiny(nn.Module):
    def __init__(self, latent_dim, data_info):
        super().__init__()
        d = data_info.n_features
        self.enc = nn.Linear(d, 2 * latent_dim)
        self.dec = nn.Linear(latent_dim, d)

    def encode(self, x):
        return self.enc(x).chunk(2, dim=-1)

    def decode(self, z):
        return self.dec(z)
"""


@pytest.fixture
def table(tmp_path):
    x = np.random.default_rng(0).normal(size=(120, 12)).astype(np.float32)
    np.save(tmp_path / "table.npy", x)
    return tmp_path / "table.npy"


def test_the_modes_the_cli_offers_are_the_plans():
    from zdim import formats
    from zdim.sweeps.planning import plan

    assert formats.MODES == plan.MODES


def test_resolve_fills_in_the_defaults_of_the_mode(tiny_gaussian):
    settle = resolve(tiny_gaussian, Options(dims=(1, 2)))
    assert settle.mode is Mode.SETTLE and settle.config.seeds == 3 and settle.config.train.epochs == 500
    per = resolve(tiny_gaussian, Options(dims=(1, 2), mode="per-size"))
    assert per.mode is Mode.PER_SIZE and per.config.seeds == 1 and per.config.train.epochs == 100
    given = resolve(tiny_gaussian, Options(dims=(1, 2), seeds=2, epochs=7, train=TrainConfig(lr=3e-3)))
    assert given.config.seeds == 2 and given.config.train.epochs == 7 and given.config.train.lr == 3e-3
    nested = resolve(tiny_gaussian, Options(dims=(1, 2), nested=True))
    assert nested.mode is Mode.NESTED and not nested.extend


def test_the_mode_is_recorded_in_run_json(tiny_binary, tmp_path):
    from zdim.files import read_json
    from zdim.sweeps.execute import sweep

    cfg = SweepConfig(dims=(1,), hidden=(8,), k=3, train=TrainConfig(epochs=1))
    sweep(tiny_binary, config=cfg, out=tmp_path / "run", mode="per-size")
    assert read_json(tmp_path / "run" / "run.json")["sweep"]["mode"] == "per-size"


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--nested", "--mode", "per-size"], "--nested does not combine with --mode per-size"),
        (["--model", "{models}:Tiny", "--hidden", "32"], "--hidden does not apply to --model"),
        (["--model", "{models}:Tiny", "--arch", "conv"], "--arch does not apply to --model"),
        (["--arch", "conv"], "these data are a table of 12 features: use --arch mlp"),
        (["--checkpoint-every", "0"], "--checkpoint-every"),
        (["--folds", "3", "--time-budget", "10"], "--folds 3 does not combine with --time-budget"),  # issue 37
    ],
)
def test_flags_that_do_not_apply_are_refused_in_one_line(args, needle, table, tmp_path, capsys):
    models = tmp_path / "models.py"
    models.write_text(MODELS)
    argv = ["sweep", str(table), "--dims", "2", "--out", str(tmp_path / "run"), "--quiet"]
    assert main([*argv, *(a.format(models=models) for a in args)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zdim: error: ") and needle in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_absurd_sizes_are_refused_before_anything_is_expanded(table, tmp_path, capsys):
    """--dims 1-100000000 on 12 features once ran for minutes at 11 GB before failing."""
    assert main(["sweep", str(table), "--dims", "1-100000000", "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "latent size 100000000 exceeds the 12 features" in err and err.count("\n") == 1
    assert main(["sweep", str(table), "--dims", "1-12,1-12", "--dims", "1-200", "--quiet"]) == 2


def test_the_api_takes_a_grid_spec_and_names_the_keyword_when_it_is_bad():
    x = make_data(np.random.default_rng(0).normal(size=(120, 6))).train.numpy()
    r = zdim.sweep(x, dims="1-2", epochs=1, hidden=(8,), k=3, seeds=1, report=False)
    assert sorted({t.dim for t in r.trials}) == [1, 2]
    with pytest.raises(ConfigError, match=r"^dims='2,x' is not a list of sizes"):
        zdim.sweep(x, dims="2,x", report=False)


def test_workers_are_capped_at_the_members_and_said_when_more_than_cores(table, tmp_path, capsys, monkeypatch):
    """Issue 37: --workers 64 on 2 cores ran far slower than 1, with no word and no cap at the members."""
    from zdim.sweeps.planning import plan as plan_module
    from zdim.sweeps.planning.plan import Mode, capped_workers

    monkeypatch.setattr(plan_module, "cores", lambda: 2)
    assert capped_workers(64, 6, "local", Mode.SETTLE) == (
        6,
        (
            "--workers 64 is more than the 6 members that can train at once: 6 used",
            "--workers 6 is more than this machine's 2 cores: each worker gets one thread and they take turns, "
            "which runs slower than --workers 2",
        ),
    )
    assert capped_workers(2, 6, "local", Mode.SETTLE) == (2, ())
    assert capped_workers(8, 3, "ray", Mode.PER_SIZE) == (3, ("--workers 8 is more than the 3 trials that can "
                                                              "train at once: 3 used",))  # fmt: skip
    monkeypatch.setattr("zdim.printing.write_report", lambda *a: None)
    argv = ["sweep", str(table), "--dims", "2", "--seeds", "1", "--epochs", "1", "--hidden", "8", "--k", "2",
            "--folds", "1", "--no-refine", "--no-extend", "--workers", "64", "--out", str(tmp_path / "run"),
            "--quiet"]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "zdim: --workers 64 is more than the 1 members that can train at once: 1 used" in err
    info = zdim.files.read_json(tmp_path / "run" / "run.json")
    assert info["sweep"]["running"]["workers"] == 1


def test_resolve_refuses_the_combinations_every_door_would_before_anything_is_written(
    tiny_gaussian, monkeypatch, tmp_path
):
    """One resolve step: --extend-grid without --resume (also for ``zdim.sweeps.execute.sweep``, which no
    door's check covered), and a rule whose evidence the plan's trials cannot give (a signal that reads a
    metric the folds' pooled records do not carry)."""
    from zdim.answer import signals
    from zdim.sweeps.execute import sweep

    quick = dict(dims=(1, 2), seeds=1, epochs=1, hidden=(8,), k=2, extend=False, refine=False)
    with pytest.raises(ConfigError, match="--extend-grid adds sizes to a run being resumed: pass --resume too"):
        resolve(tiny_gaussian, Options(extend_grid=True, **quick))  # type: ignore[arg-type]
    assert resolve(tiny_gaussian, Options(extend_grid=True, **quick), resume=True).extend_grid  # type: ignore[arg-type]
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="pass --resume too"):
        sweep(tiny_gaussian, out=out, extend_grid=True, **quick)
    assert not out.exists()

    class Sharpest(signals.Signal):  # reads a metric no pooled record carries
        name = "sharpest"
        needs = ("sharpness",)

        def pick(self, r):
            return r.on[0]

        def words(self, dim, r):
            return f"sharpest {dim}"

    monkeypatch.setattr(signals, "SIGNALS", (*signals.SIGNALS, Sharpest()))
    with pytest.raises(ConfigError) as err:
        sweep(tiny_gaussian, out=out, rule="sharpest", folds=2, **quick)
    assert str(err.value) == (
        "--rule sharpest reads sharpness, which the 2 folds' pooled records do not carry: choose another --rule, "
        "or --folds 1"
    )
    assert not out.exists()
    assert resolve(tiny_gaussian, Options(rule="generation", folds=2, **quick)).folds == 2  # type: ignore[arg-type]
