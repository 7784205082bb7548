"""Where the grid grows (zdim.sweeps.executors.growth), checked with an executor whose models are known in advance, and
once on real training: exact sizes by default, the edge under the combined rule, and the intrinsic
dimension as a check with its figures."""

from __future__ import annotations

import numpy as np
import pytest

from zdim.answer.capacity import id_candidates
from zdim.evaluation.intrinsic import IntrinsicDim
from zdim.evidence import NoteKind
from zdim.records import TrialRecord, TrialStatus
from zdim.sweeps.executors.growth import grow
from zdim.sweeps.executors.growth import recommend_outcome as _recommend_outcome
from zdim.sweeps.planning.config import SweepConfig
from zdim.sweeps.planning.plan import Mode, SweepPlan
from zdim.sweeps.records.ledger import Finished, Ledger, Outcome
from zdim.testing import make_planted_data
from zdim.training.config import TrainConfig

from .conftest import make_data

N = 400  # held-out samples of the made-up trials


def recommend_outcome(plan, out, likelihood, n_features):
    """The answer of an outcome under the plan's question, for data of ``n_features`` features."""
    return _recommend_outcome(plan, out, make_data(np.zeros((60, n_features), dtype=np.float32)))


def capacity_check(rec, out, est):
    from zdim.answer.capacity import capacity_check as check

    return check(rec, out.records, out.per_sample, est)


def estimate(value: float, spread: float = 0.2) -> IntrinsicDim:
    return IntrinsicDim(
        dim=round(value), twonn=value - spread, twonn_std=0.1, mle=value + spread, mle_std=0.1, n=1000, repeats=5,
        seed=0, values={},
    )  # fmt: skip


class Known:
    """An executor whose size-d model has held-out NLL ``nll(d)`` per sample (plus the same noise for every
    size, so the paired standard errors are small) and ``au(d)`` active units; records what it trained."""

    def __init__(self, ledger: Ledger, nll, au):
        self.ledger, self.nll, self.au, self.trained = ledger, nll, au, []
        self.noise = np.random.default_rng(0).normal(0.0, 1.0, N)

    def run(self, plan: SweepPlan) -> Outcome:
        for dim, seed in plan.config.grid():
            if (dim, seed) in self.ledger.memory:
                continue
            self.trained.append(dim)
            per = self.nll(dim) + self.noise + np.random.default_rng(dim).normal(0.0, 0.01, N)
            rec = TrialRecord(
                dim=dim, seed=seed, status=TrialStatus.COMPLETE, nll=float(per.mean()), active_units=self.au(dim),
                n=N, kl=5.0, converged=True,
            )  # fmt: skip
            self.ledger.memory[(dim, seed)] = Finished(rec, per)
        return self.ledger.outcome(plan.config)


def setup(dims, nll, au, n_features=64, intrinsic=None, **kw):
    data = make_data(np.zeros((60, n_features), dtype=np.float32))
    ledger = Ledger(data, None)
    plan = SweepPlan(
        config=SweepConfig(dims=dims, train=TrainConfig(epochs=1)), mode=Mode.PER_SIZE, intrinsic=intrinsic, **kw
    )
    ex = Known(ledger, nll, au)
    return ex, plan, ex.run(plan), ledger


def saturating(knee: int, drop: float = 10.0):
    """NLL that falls by ``drop`` nats per unit up to ``knee``, then stays flat."""
    return lambda d: 100.0 + drop * max(0, knee - d)


def test_an_answer_between_grid_sizes_is_refined_to_the_exact_size():
    """The largest model keeps 12 active units: the answer is about 12, not the grid's 16."""
    ex, plan, out, ledger = setup((2, 4, 8, 16, 32), saturating(12, 3.0), lambda d: min(d, 12))
    assert recommend_outcome(plan, out, "gaussian", 64).dim == 16  # on the grid
    plan, out, notes = grow(ex, plan, out, ledger)
    rec = recommend_outcome(plan, out, "gaussian", 64)
    assert rec.dim == 12 and 11 in {r.dim for r in out.records}  # exact: the size below was tried
    assert notes and notes[0].kind is NoteKind.GRID and "added by bisection" in notes[0].text
    ex2, plan2, out2, ledger2 = setup((2, 4, 8, 16, 32), saturating(12, 3.0), lambda d: min(d, 12), refine=False)
    plan2, out2, _ = grow(ex2, plan2, out2, ledger2)
    assert recommend_outcome(plan2, out2, "gaussian", 64).dim == 16 and ex2.trained == [2, 4, 8, 16, 32]


def test_a_knee_at_the_largest_size_grows_the_grid_even_when_active_units_pick_a_smaller_size():
    """MNIST with sizes 2, 5, 10, 20: the knee was 20 (the edge), active units said 10, nothing grew."""
    ex, plan, out, ledger = setup((2, 5, 10, 20), saturating(30, 2.0), lambda d: min(d, 10), refine=False)
    first = recommend_outcome(plan, out, "gaussian", 64)
    assert first.dim == 10 and first.signals["nll-knee"] == 20
    assert any(n.code == "knee-edge" for n in first.notes) and not first.settled
    plan, out, notes = grow(ex, plan, out, ledger)
    assert 40 in ex.trained and "the NLL knee was the largest size tried (20)" in notes[0].text
    rec = recommend_outcome(plan, out, "gaussian", 64)
    assert not any(n.code == "knee-edge" for n in rec.notes)  # the knee is no longer at the edge
    # where the grid cannot grow (at the feature count), nothing is flagged for it
    ex, plan, out, ledger = setup((2, 5, 10, 20), saturating(30, 2.0), lambda d: min(d, 10), n_features=20)
    assert not any(n.code == "knee-edge" for n in recommend_outcome(plan, out, "gaussian", 20).notes)


def test_an_answer_far_above_the_intrinsic_dimension_trains_the_sizes_at_it():
    # bisection alone finds an answer at the estimate when the NLL says so: nothing more to check
    ex, plan, out, ledger = setup((1, 16), saturating(6, 5.0), lambda d: min(d, 12), intrinsic=estimate(6.4))
    plan, out, notes = grow(ex, plan, out, ledger)
    rec = capacity_check(recommend_outcome(plan, out, "gaussian", 64), out, plan.intrinsic)
    assert rec.dim == 6 and not any(n.code == "capacity" for n in rec.notes)
    # the active units put the answer at 12: the sizes at the estimate are trained, and they do as well by NLL
    ex, plan, out, ledger = setup(
        (4, 8, 16), saturating(6, 5.0), lambda d: min(d, 12), intrinsic=estimate(6.4), rule="active-units"
    )
    plan, out, notes = grow(ex, plan, out, ledger)
    assert {6, 7} <= set(ex.trained)
    rec = capacity_check(recommend_outcome(plan, out, "gaussian", 64), out, plan.intrinsic)
    note = next(n for n in rec.notes if n.code == "capacity")
    assert rec.dim == 12 and "a size-7 VAE is within the rule's tolerance of the best held-out NLL" in note.text
    assert "rule 'active-units' picks 12" in note.text
    # they do not: the answer stands and says by how much they fall short, with the SE of that gap
    ex, plan, out, ledger = setup((4, 8, 16), saturating(12, 5.0), lambda d: min(d, 12), intrinsic=estimate(6.4))
    plan, out, _ = grow(ex, plan, out, ledger)
    rec = capacity_check(recommend_outcome(plan, out, "gaussian", 64), out, plan.intrinsic)
    note = next(n for n in rec.notes if n.code == "capacity")
    assert rec.dim == 12 and note.kind is NoteKind.CAUTION
    assert "intrinsic dimension is about 6.4 (TwoNN 6.2, MLE 6.6), but the answer is 12" in note.text
    assert "a size-7 VAE of this architecture stays 25.00 nats worse (SE" in note.text
    assert rec.capacity["sizes"]["7"]["gap"] == pytest.approx(25.0, abs=0.05) and note.text in rec.rationale


def test_no_check_where_the_answer_agrees_with_the_estimate_or_the_estimates_disagree():
    assert id_candidates(8, estimate(6.4)) == []  # 8 is not above 1.5 x 6.4
    assert id_candidates(16, estimate(6.4, spread=3.0)) == []  # TwoNN 3.4 and MLE 9.4 disagree
    assert id_candidates(16, estimate(6.4)) == [6, 7]
    ex, plan, out, ledger = setup((2, 4, 8, 16), saturating(6, 5.0), lambda d: min(d, 6), intrinsic=estimate(6.4))
    plan, out, notes = grow(ex, plan, out, ledger)
    rec = capacity_check(recommend_outcome(plan, out, "gaussian", 64), out, plan.intrinsic)
    assert rec.dim == 6 and not any(n.code == "capacity" for n in rec.notes)


def test_a_sweep_is_exact_by_default():
    """Real training: three factors, sizes 1, 2, 4, 8; the answer is refined to 3 without asking."""
    from zdim.sweeps.execute import sweep

    data = make_data(make_planted_data(3, 8, 1000, seed=1))
    train = TrainConfig(epochs=40, batch_size=64, lr=1e-2, patience=0)
    r = sweep(data, config=SweepConfig(dims=(1, 2, 4, 8), hidden=(16,), train=train, k=10), mode="per-size")
    tried = sorted({t.dim for t in r.trials})
    assert 3 in tried and r.recommended_dim == 3
    assert "added by bisection" in r.recommendation.rationale


def test_before_training_one_line_says_how_far_the_grid_may_grow():
    from zdim.sweeps.executors.growth import reach

    _, plan, _, _ = setup((2, 4, 8), saturating(4), lambda d: d, n_features=64)
    assert reach(plan, 64) == (
        "the grid may grow: above 8 up to 64 (the feature count), below 2 down to 1, between sizes (bisection) "
        "and at the intrinsic dimension; --no-extend and --no-refine hold it"
    )
    from dataclasses import replace

    assert reach(replace(plan, extend=False, refine=False), 64) == ""
    assert reach(replace(plan, refine=False), 8) == "the grid may grow: below 2 down to 1; --no-extend holds it"
    assert reach(replace(plan, config=plan.config.with_dims((1, 8))), 8) == (
        "the grid may grow: between sizes (bisection) and at the intrinsic dimension; --no-refine holds it"
    )


def test_an_answer_at_the_smallest_size_tried_grows_the_grid_below_it():
    ex, plan, out, ledger = setup((4, 8, 16), lambda d: 100.0, lambda d: min(d, 2), n_features=64, extend=True)
    plan, out, notes = grow(ex, plan, out, ledger)
    assert 2 in ex.trained and 1 in ex.trained
    assert any("grew below its smallest size" in n.text for n in notes)
    assert recommend_outcome(plan, out, "gaussian", 64).dim == 1
