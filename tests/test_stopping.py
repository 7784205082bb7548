"""One notion of "converged" (zdim.training.stopping): the trial's record and settle mode ask the same rules, and a
new rule is one class that settle mode asks."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from zdim.errors import ConfigError
from zdim.sweeps.execute import EXECUTORS, sweep
from zdim.sweeps.executors.member import Member
from zdim.sweeps.executors.settle import SettleExecutor
from zdim.sweeps.planning.config import SweepConfig
from zdim.sweeps.planning.plan import Mode, SweepPlan
from zdim.training.config import TrainConfig
from zdim.training.stopping import CONVERGENCE_TOL, STOPPING_RULES, ProjectedGain, RelativeGain, StoppingRule


def test_the_relative_rule_judges_a_trials_history():
    history = [{"val_neg_elbo": v} for v in (5.0, 4.0, 3.9, math.nan, 3.9, 3.899)]
    scores = RelativeGain.scores(history)
    assert scores == [5.0, 4.0, 3.9, 3.9, 3.899]  # a non-finite epoch is left out
    rule = RelativeGain(window=2)
    assert rule.improvement(scores) == pytest.approx((3.9 - 3.899) / 3.899)
    assert rule.tol == CONVERGENCE_TOL and rule.converged(scores)
    assert not RelativeGain(window=3).converged(scores)  # 4.0 -> 3.899 over the last 3: still falling
    assert RelativeGain(window=5).improvement(scores) is None and not RelativeGain(window=5).converged(scores)
    assert RelativeGain(window=5).converged(scores, stopped_early=True)  # patience judged it already


def test_the_settle_member_asks_the_projected_rule():
    scores = [10.0 - 0.004 * i for i in range(40)]  # 0.02 nats over the last 5 epochs
    rule = ProjectedGain(window=5, tol=0.2)
    assert rule.improvement(scores) == pytest.approx(0.02)
    assert rule.flat(scores) and not rule.flat(scores, horizon=300)  # 0.02 * 40 / 5 < 0.2 < 0.02 * 300 / 5
    m = Member(6, 0, asleep=False, scores=list(scores), horizon=300)
    assert m.rule is ProjectedGain and not m.converged(5, 0.2) and m.improvement(5) == rule.improvement(scores)
    m.asleep = True
    assert not m.converged(5, 100.0)  # flat because it has not started: never converged
    m.done = m.stopped_early = True
    assert m.converged(5, 0.2)
    assert "kept up for 40 epochs more, less than half the rule's tolerance (0.2)" in rule.reason(scores)


class Always(StoppingRule):
    """A rule for which every awake training has converged."""

    name = "always"

    def flat(self, scores, horizon=0):
        return True


def test_a_new_stopping_rule_is_one_class_that_settle_mode_asks(monkeypatch, tiny_binary):
    """With a rule that finds every awake member converged, settle mode stops every member as soon as the
    answer has held its window; each record says so in the rule's own words."""
    cap, window = 40, 5
    train = TrainConfig(epochs=cap, batch_size=64, lr=1e-2, patience=0)
    cfg = SweepConfig(dims=(1, 2), seeds=1, hidden=(16,), k=5, train=train)
    monkeypatch.setitem(EXECUTORS, Mode.SETTLE, lambda ledger: SettleExecutor(ledger, window=window, rule=Always))
    r = sweep(tiny_binary, config=cfg, mode="settle", extend=False, refine=False)
    assert all(t.extra.get("settle_stop") == "settled" and t.epochs_run < cap for t in r.trials)
    assert all(t.converged and t.extra["settle_converged"].startswith("the score fell") for t in r.trials)


def test_a_new_stopping_rule_is_one_subclass_and_one_registry_row(monkeypatch, tiny_binary):
    """Issue 38: the rule's row of STOPPING_RULES makes it a choice of --stopping (the flag, the keyword's
    check, the plan) with no other edit; settle mode's members stop by it, and a per-size trial's record
    says by it whether it converged (without it, three epochs are too few for the relative gain's window)."""
    from zdim.cli import build_parser
    from zdim.options import route

    with pytest.raises(ConfigError, match="^stopping must be one of projected-gain, relative-gain, got 'always'"):
        route({"stopping": "always"})
    monkeypatch.setitem(STOPPING_RULES, Always.name, Always)
    assert route({"stopping": "always"})["options"] == {"stopping": "always"}
    assert build_parser().parse_args(["sweep", "data.csv", "--stopping", "always"]).stopping == "always"
    plan = SweepPlan(config=SweepConfig(dims=(1,)), stopping="always")
    assert plan.stopping_rule() is Always
    assert SweepPlan(config=SweepConfig(dims=(1,))).stopping_rule() is ProjectedGain  # settle mode's default
    assert SweepPlan(config=SweepConfig(dims=(1,)), mode=Mode.PER_SIZE).stopping_rule() is RelativeGain

    cfg = SweepConfig(dims=(1, 2), seeds=1, hidden=(16,), k=5, train=TrainConfig(epochs=40, lr=1e-2, patience=0))
    r = sweep(tiny_binary, config=cfg, mode="settle", stopping="always", extend=False, refine=False)
    assert all(t.extra.get("settle_stop") == "settled" and t.epochs_run < 40 for t in r.trials)
    assert all(t.extra["settle_converged"].startswith("the score fell") for t in r.trials)

    short = replace(cfg, train=replace(cfg.train, epochs=3))
    told = sweep(tiny_binary, config=short, mode="per-size", stopping="always", extend=False, refine=False)
    plain = sweep(tiny_binary, config=short, mode="per-size", extend=False, refine=False)
    assert all(t.converged for t in told.trials) and not any(t.converged for t in plain.trials)
