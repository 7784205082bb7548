"""The option table (``zdim.options``): one row per option gives the flag, the keyword, the check, the
docstring and the wording in both vocabularies; adding an option is one row."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import zdim
from zdim import options as table
from zdim.cli import build_parser, main
from zdim.errors import ConfigError
from zdim.messages import python_message
from zdim.options import SWITCH, Bounds, OneOf, Option, option, route


def api_mismatch() -> set[str]:
    """Keywords where ``zdim.sweep``'s explicit signature and the table disagree (name or default)."""
    params = {k: p.default for k, p in inspect.signature(zdim.sweep).parameters.items() if k != "source"}
    rows = {o.keyword: o.default for o in table.OPTIONS if o.api}
    names = set(params) ^ set(rows)
    return names | {k for k in set(params) & set(rows) if params[k] != rows[k]}


def parse(*argv: str):
    return build_parser().parse_args(["sweep", "data.csv", *argv])


def test_the_signature_of_zdim_sweep_is_the_table():
    assert api_mismatch() == set()
    doc = " ".join((zdim.sweep.__doc__ or "").split())
    for row in table.OPTIONS:
        if row.api:
            assert f"{row.keyword} : " in doc
            text = row.doc or table._sentence(python_message(row.help))
            assert " ".join(text.split()[:6]) in doc, row.keyword


def test_constants_kept_elsewhere_agree_with_the_table():
    from zdim.answer import rules
    from zdim.sweeps import backends
    from zdim.sweeps.planning import plan

    assert option("rule").default == rules.DEFAULT_RULE and option("tolerance").default == rules.DEFAULT_REL_TOL
    assert option("checkpoint_every").default == plan.CHECKPOINT_SECONDS
    assert option("backend").default == backends.LOCAL


def test_every_choice_list_is_read_from_its_registry():
    """No choice list is written twice: each row's choices (and tune's --objective) are its registry's."""
    from zdim import likelihoods
    from zdim.answer import signals
    from zdim.models.vae import ARCHS
    from zdim.records import OBJECTIVES
    from zdim.sweeps import backends
    from zdim.sweeps.planning import plan
    from zdim.training import stopping

    offered = {o.keyword: o.offered for o in table.OPTIONS if o.offered is not None}
    assert offered == {
        "arch": ARCHS,
        "likelihood": ("auto", *likelihoods.NAMES),
        "backend": tuple(backends.BACKENDS),
        "rule": signals.names(),
        "mode": tuple(m.value for m in plan.Mode),
        "noise": likelihoods.NOISE_MODES,
        "stopping": tuple(stopping.STOPPING_RULES),
    }
    # the rows name the registries themselves (read when asked), not a copy of their names
    assert option("noise").check == OneOf(table.Names("zdim.likelihoods", "NOISE_MODES"))
    from zdim.training import config as train_config

    assert train_config.NOISE is likelihoods.NOISE_MODES
    assert option("rule").check == OneOf(table.Names("zdim.answer.signals", "SIGNALS"))
    assert option("backend").check == OneOf(table.Names("zdim.sweeps.backends", "BACKENDS"))
    assert option("stopping").check == OneOf(table.Names("zdim.training.stopping", "STOPPING_RULES"))
    tune = build_parser()._subparsers._group_actions[0].choices["tune"]
    objective = next(a for a in tune._actions if a.dest == "objective")
    assert objective.choices == list(OBJECTIVES)
    from zdim import tuning

    assert tuning.OBJECTIVES is OBJECTIVES  # the one registry tune reads


def test_a_backend_registered_is_a_choice_at_once(monkeypatch):
    """Adding a backend is one class and one registry row: the flag, the keyword's check and the messages
    take it without another edit (a signal likewise: tests/test_recommend.py::test_a_new_signal_is_one_class)."""
    from zdim.sweeps import backends
    from zdim.sweeps.backends.local import InProcess

    with pytest.raises(ConfigError, match="backend must be one of local, ray, got 'fake': fix --backend"):
        route({"backend": "fake"})
    monkeypatch.setitem(backends.BACKENDS, "fake", backends.Row(lambda workers, address: InProcess()))
    assert route({"backend": "fake"})["options"] == {"backend": "fake"}
    assert parse("--backend", "fake").backend == "fake" and "'fake'" in python_message("pass --backend fake")


def test_each_flag_reads_as_its_keyword():
    assert python_message("rerun without --no-refine") == "rerun without refine=False"
    assert python_message("pass --quiet") == "pass progress=False"
    assert python_message("drop --no-extend, or --stack") == "drop extend=False, or stack=True"
    assert python_message("fix --study") == "fix study_name="
    assert python_message("pass --mode per-size") == "pass mode='per-size'"
    assert python_message("fix --trials") == "fix trials="  # a flag of tune only: its name
    from zdim.sweeps.records.resume import _flag

    assert (_flag("warmup_epochs"), _flag("sigma_warmup_epochs"), _flag("k")) == ("--warmup", "--sigma-warmup", "--k")
    assert _flag("weight_decay") == "TrainConfig(weight_decay=...)"  # no flag sets it


def bad_value(row: Option) -> object:
    assert isinstance(row.check, Bounds) and row.check.low is not None
    low = row.check.low
    return int(low) - 1 if row.check.integer else float(low if row.check.strict else low - 1)


BOUNDED = [o for o in table.OPTIONS if isinstance(o.check, Bounds) and o.check.low is not None]


@pytest.mark.parametrize("row", BOUNDED, ids=lambda o: o.keyword)
def test_every_bad_value_is_one_line_naming_the_value_and_the_fix(row, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = bad_value(row)
    argv = ["sweep", "digits", "--quiet", row.flag_text, str(bad)]
    if "sweep" in row.commands:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"got {bad!r}: fix {row.flag_text}" in err, err
        assert not (tmp_path / "runs").exists()
    with pytest.raises(ConfigError) as e:  # the Python door: the keyword, never the flag
        zdim.sweep(np.zeros((30, 4), np.float32), **{row.keyword: bad})
    assert f"fix {row.keyword}=" in str(e.value) and "--" not in str(e.value)


def test_words_are_checked_for_python_callers_too():
    for key in ("rule", "mode", "arch"):
        assert isinstance(option(key).check, OneOf)
        with pytest.raises(ConfigError, match=f"^{key} must be one of .*, got 'bogus': fix {key}=$"):
            zdim.sweep(np.zeros((30, 4), np.float32), **{key: "bogus"})


def test_the_command_line_and_the_api_build_the_same_options():
    from zdim.sweeps.planning.plan import options_from

    args = parse("--warmup", "3", "--study", "s", "--no-refine", "--quiet", "--dims", "1-3", "--hidden", "8,4")
    cli = options_from(route(table.given(args, "sweep")))
    values = dict(warmup=3.0, study_name="s", refine=False, progress=False, dims="1-3", hidden=[8, 4])
    api = options_from(route(table.defaults() | values))
    assert cli == api
    assert cli.train is not None and cli.train.warmup_epochs == 3.0 and cli.study_name == "s"
    assert cli.hidden == (8, 4) and cli.dims is not None and cli.dims.sizes(8) == (1, 2, 3)
    assert route(table.defaults() | values).loader() == {
        "likelihood": "auto",
        "seed": 0,
        "val_fraction": 0.1,
        "test_fraction": 0.1,
    }
    with pytest.raises(TypeError, match="'kay'"):
        options_from(route({"kay": 1}))


def test_tune_and_estimate_id_share_the_rows_they_read():
    subs = next(a for a in build_parser()._actions if a.dest == "command").choices
    for command in ("tune", "estimate-id"):
        dests = {a.dest for a in subs[command]._actions}
        assert {o.keyword for o in table.for_command(command)} <= dests
    tune = {a.option_strings[0]: a for a in subs["tune"]._actions if a.option_strings}
    assert tune["--device"].default is None and tune["--workers"].help == "trials at once, one process each"


def test_the_estimator_reads_the_shared_parameters_through_the_table():
    from zdim.estimator import SHARED, VAETransformer

    params = inspect.signature(VAETransformer).parameters
    own = {"epochs": 100, "seeds": 1}  # the estimator's own defaults: one model per fit, trained to its end
    for name in SHARED:
        assert params[name].default == own.get(name, option(name).default), name
    assert params["rel_tol"].default == option("tolerance").default
    with pytest.raises(ConfigError, match=r"batch_size must be an integer >= 1, got 0: fix batch_size=$"):
        VAETransformer(latent_dim=2, batch_size=0).fit(np.zeros((40, 4)))
    with pytest.raises(ConfigError, match=r"^rel_tol must be a finite number >= 0, got -1.0: fix rel_tol=$"):
        VAETransformer(latent_dim=2, rel_tol=-1.0).fit(np.zeros((40, 4)))


def test_a_new_option_is_one_row(monkeypatch, tmp_path, capsys):
    """A throwaway row (Adam's weight decay, which TrainConfig has and no flag sets): it is at once a flag
    of `zdim sweep` with its help, a keyword that reaches TrainConfig, a check with one line in either
    vocabulary, a docstring entry, and the flag a resumed run names; zdim.sweep's signature is then one
    keyword short, and the signature test says which."""
    row = Option(
        "weight_decay",
        "Adam weight decay (default 0)",
        0.0,
        parse=float,
        check=Bounds("a float", 0),
        to=("train.weight_decay",),
    )
    switch = Option("gamma", "a throwaway switch", kind=SWITCH, off="no gamma", to=("cli.gamma",), api=False)
    monkeypatch.setattr(table, "OPTIONS", (*table.OPTIONS, row, switch))
    from zdim.sweeps.planning.plan import options_from
    from zdim.sweeps.records.resume import _flag

    assert "--weight-decay WEIGHT_DECAY" in build_parser()._subparsers._group_actions[0].choices["sweep"].format_help()
    args = parse("--weight-decay", "0.01", "--no-gamma")
    assert args.weight_decay == 0.01 and args.gamma is False
    assert options_from(route(table.given(args, "sweep"))).train.weight_decay == 0.01  # the command line
    assert options_from(route({"weight_decay": 0.02})).train.weight_decay == 0.02  # a keyword
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "digits", "--weight-decay", "-1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err == "zdim: error: weight_decay must be a float >= 0, got -1.0: fix --weight-decay\n"
    assert python_message(err) == "zdim: error: weight_decay must be a float >= 0, got -1.0: fix weight_decay=\n"
    assert python_message("rerun without --no-gamma") == "rerun without gamma=False"
    assert _flag("weight_decay") == "--weight-decay"
    doc = table.parameters_doc({"weight_decay": "float"}, python_message)
    assert doc.split("\n") == ["    weight_decay : float", "        Adam weight decay (default 0)."]
    assert api_mismatch() == {"weight_decay"}  # zdim.sweep's typed signature: the one other line to add


def test_the_reproduce_line_carries_every_option_of_the_table(tmp_path):
    """Issue 37: the report's "reproduce" line left out --time-budget. It is written from what run.json
    records, through the table: every row that changes a run (what it trains, how the data are read, how
    the grid is run) gives its flag when its value is not the default, and a setting no flag sets is named
    as a Python keyword."""
    from dataclasses import replace

    from zdim.sweeps.planning.config import SweepConfig
    from zdim.sweeps.planning.plan import Mode, Options, SweepPlan, resolve
    from zdim.sweeps.records.resume import make_run_info, reproduce
    from zdim.training.config import TrainConfig

    from .conftest import make_data

    data = make_data(np.random.default_rng(0).normal(size=(2000, 6)))  # 200 test rows: no folds by themselves
    train = TrainConfig(epochs=7, patience=3, batch_size=64, lr=0.002, beta=0.5, warmup_epochs=2.0, free_bits=0.1,
                        sigma_init=0.5, sigma_warmup_epochs=2, sigma_after=1, seed=3, device="cpu",
                        weight_decay=0.1, lr_patience=2, epoch_steps=50, noise="learned")  # fmt: skip
    config = SweepConfig(dims=(1, 3), seeds=2, hidden=(8,), arch="conv", train=train, k=7, rel_tol=0.05,
                         eval_samples=5)  # fmt: skip
    loader = {"likelihood": "gaussian", "label_column": "y", "keep_columns": ["a", "b"], "max_samples": 100,
              "seed": 3, "array": "X", "test": "t.csv", "layer": "L", "label_key": "k", "binarize": True,
              "val_fraction": 0.2, "test_fraction": 0.3}  # fmt: skip
    settle = SweepPlan(config=config, rule="nll-knee", stopping="relative-gain", refine=False, extend=False,
                       time_budget=10.0, workers=2, checkpoint_every=60.0, stack=True, folds=3, backend="ray",
                       address="head:6379")  # fmt: skip
    per_size = replace(settle, mode=Mode.PER_SIZE, prune=True, storage="sqlite:///s.db", study_name="mine",
                       time_budget=None, config=replace(config, model="models.py:Mine"))  # fmt: skip
    lines = [reproduce(make_run_info(data, plan, "zdim sweep ...", loader)) for plan in (settle, per_size)]
    lines.append(reproduce(make_run_info(data, replace(settle, mode=Mode.NESTED), None, {})))
    said = " ".join(lines)
    assert lines[0].startswith("zdim sweep tiny --dims 1,3 --seeds 2 --epochs 7 --patience 3 ")
    assert "--time-budget 10.0" in lines[0] and "--keep-columns a,b" in lines[0]
    changes_a_run = [o for o in table.for_command("sweep") if o.targets[0][0] in ("options", "train", "loader")]
    for row in changes_a_run:
        if row.keyword in ("nested", "extend_grid"):  # --mode nested; --extend-grid only adds sizes on --resume
            continue
        assert row.flag_text in said or (row.kind == SWITCH and f"--no-{row.name} " in said), row.keyword
    for python in ("val_fraction=0.2", "test_fraction=0.3", "TrainConfig(weight_decay=0.1)", "--mode nested"):
        assert python in said
    plain = reproduce(make_run_info(data, resolve(data, Options(dims=(2, 4))), None, {}))
    assert plain == "zdim sweep tiny --dims 2,4"  # the defaults say nothing
