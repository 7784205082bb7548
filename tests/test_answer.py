"""The one owner of the answer (zdim.answer.decide): the lower envelope, a tolerance in words, confidence that
says what it cannot see, the edges of the grid, the intrinsic-dimension check with its reason, late
members held to their neighbours' standard, and settle mode asking the question it prints."""

from __future__ import annotations

import numpy as np
import pytest

from zdim.answer.capacity import capacity_check
from zdim.answer.decide import Evidence, decide
from zdim.answer.rules import Question, recommend
from zdim.evaluation.intrinsic import IntrinsicDim
from zdim.records import TrialRecord, TrialStatus
from zdim.sweeps.ledger import Finished
from zdim.sweeps.settle import Member, _horizon

N = 400


def paired(nll: dict[int, float], au: dict[int, int], seeds: int = 1, sd: float = 1.0, n: int = N, **kw):
    """Records with per-sample NLL: size d's samples are ``nll[d]`` plus noise shared by every size (so
    the paired standard errors are small) and a little of their own."""
    shared = np.random.default_rng(0).normal(0.0, sd, n)
    recs, per = [], {}
    for d, v in nll.items():
        for s in range(seeds):
            x = v + shared + np.random.default_rng(100 * d + s).normal(0.0, 0.05, n)
            per[(d, s)] = x
            recs.append(
                TrialRecord(
                    dim=d, seed=s, status=TrialStatus.COMPLETE, nll=float(x.mean()), active_units=au.get(d, d),
                    n=n, converged=True, kl=5.0, **kw,
                )
            )  # fmt: skip
    return recs, per


def test_the_answer_is_never_a_size_worse_than_a_smaller_one():
    """Breast cancer's shape: the active units of the largest model (24) point at a size whose own
    held-out NLL is 4 nats worse than sizes 8 and 16; the answer moves along the envelope, never to 24."""
    nll = {2: 26.04, 4: 22.95, 8: 20.75, 16: 20.02, 23: 23.38, 24: 24.17, 26: 19.98, 30: 18.18}
    recs, per = paired(nll, {30: 24, 26: 24, 24: 24, 23: 23})
    rec = recommend(recs, per_sample=per, n_features=30)
    rows = {r["dim"]: r for r in rec.per_dim}
    smaller_better = [
        d for d in rows if d < rec.dim and rows[rec.dim]["nll_mean"] - rows[d]["nll_mean"] > rows[rec.dim]["gap_se"]
    ]
    assert rec.dim not in (23, 24) and smaller_better == []
    assert rows[24]["worse_than"] in (8, 16, 2, 4) and rows[23]["worse_than"] is not None
    assert "never the answer" in rec.rationale and "24 is" in rec.rationale
    # without the envelope the active units would have chosen 24: they count for the next size on it
    assert rec.signals["active-units"] == 26 and "The active units point at 24" in rec.rationale
    # the table beside the answer shows the gap and its SE
    table = {r["size"]: r for r in rec.size_rows()}
    assert table["24"][""] == f"worse than {rows[24]['worse_than']}" and table[str(rec.dim)][""].startswith("answer")
    assert table["8"]["gap to best"] == f"{rows[8]['gap']:+.2f}"


def test_the_tolerance_is_said_in_nats_with_its_terms():
    recs, per = paired({1: 130.0, 2: 102.0, 4: 99.5, 8: 99.4}, {8: 4})
    rec = recommend(recs, per_sample=per)
    assert rec.dim == 4
    assert "The tolerance is the larger of 1.0% of the best NLL (0.99) and 2.0% of the NLL range over sizes (0.61)" in (
        rec.rationale
    )
    assert "(0.10 nats per sample above the best, SE" in rec.rationale


def test_one_seed_says_the_bootstrap_cannot_see_the_seeds():
    recs, per = paired({1: 130.0, 2: 100.0, 4: 99.9, 8: 99.8}, {8: 2})
    rec = decide(Evidence(recs, per), Question(), resamples=50)
    assert rec is not None and rec.settled
    seen = "resamples of the held-out samples; one seed per size, so not the variation between seeds"
    assert rec.confidence == f"2 (chosen in 100% of 50 {seen})"


def test_no_share_beside_a_flag():
    # every model a test split of 40 samples: not settled, and no share is printed beside it
    recs, per = paired({1: 130.0, 2: 100.0, 4: 99.9, 8: 99.8}, {8: 2}, seeds=2, n=40)
    rec = decide(Evidence(recs, per), Question(), resamples=50)
    assert rec is not None and not rec.settled and rec.uncertainty is not None
    assert rec.confidence == "2" and "chosen in" not in rec.rationale and "resamples" not in rec.rationale
    assert "not shown as a share" in rec.rationale


def test_an_answer_at_the_feature_count_says_no_compression_was_found():
    recs, per = paired({2: 30.0, 4: 25.0, 8: 20.0, 12: 15.0}, {})
    rec = recommend(recs, per_sample=per, n_features=12, likelihood="gaussian")
    assert rec.dim == 12 and rec.settled
    assert any(n.code == "no-compression" for n in rec.notes) and "try larger sizes" not in rec.rationale
    assert "no compression found: the answer is the feature count (12)" in rec.rationale
    # below the feature count, the same answer is the edge of the grid: not settled
    rec = recommend(recs, per_sample=per, n_features=64, likelihood="gaussian")
    assert not rec.settled and any(n.code == "edge" for n in rec.notes)


def test_the_smallest_size_tried_is_flagged_like_the_largest():
    recs, per = paired({2: 10.0, 4: 10.0, 8: 10.0}, {8: 2})
    rec = recommend(recs, per_sample=per)
    assert rec.dim == 2 and not rec.settled
    assert "the answer is the smallest size tried (2)" in rec.rationale
    assert "It is the smallest size tried" in rec.rationale and "No smaller size" not in rec.rationale
    recs, per = paired({1: 20.0, 2: 10.0, 4: 10.0}, {4: 2})
    rec = recommend(recs, per_sample=per)
    assert rec.dim == 2 and rec.settled and "the next smaller size tried, 1, is" in rec.rationale


def estimate(value: float) -> IntrinsicDim:
    return IntrinsicDim(
        dim=round(value), twonn=value - 0.1, twonn_std=0.1, mle=value + 0.1, mle_std=0.1, n=1000, repeats=5, seed=0,
        values={},
    )  # fmt: skip


def test_the_check_gives_the_likely_reason_on_wrapped_data():
    """A torus (two angles, each written as cos and sin): intrinsic dimension 2, and a 2-unit Gaussian
    latent stays far worse than 4, which the answer says with the reason."""
    recs, per = paired({1: 60.0, 2: 40.0, 3: 30.0, 4: 20.0, 8: 20.0}, {8: 4})
    rec = recommend(recs, per_sample=per)
    assert rec.dim == 4
    checked = capacity_check(rec, recs, per, estimate(2.0))
    note = next(n for n in checked.notes if n.code == "capacity")
    assert "a size-2 VAE of this architecture stays 20.00 nats worse" in note.text
    assert "the answer is 2.0 times the estimate, and two reasons fit: the data wrap" in note.text


def test_the_check_runs_within_the_factor_where_a_size_at_the_estimate_was_trained():
    """M4's shape: the answer 5 is within 1.5 x the estimate 3.9, and size 4 was trained: its gap is said."""
    recs, per = paired({2: 30.0, 4: 12.0, 5: 10.0, 8: 10.0}, {8: 5})
    rec = recommend(recs, per_sample=per)
    assert rec.dim == 5
    checked = capacity_check(rec, recs, per, estimate(3.9))
    note = next(n for n in checked.notes if n.code == "capacity")
    assert "a size-4 VAE of this architecture stays 2.00 nats worse" in note.text
    assert note.text.endswith("so this VAE needs 5 units, within 1.5 times the estimate")  # no reason to argue
    # a size at the estimate that had not converged: not settled, whether it does as well is not measured
    for r in recs:
        if r.dim == 4:
            r.converged = False
    checked = capacity_check(rec, recs, per, estimate(3.9))
    assert not checked.settled and "had not converged: whether 4 units do as well is not measured" in checked.rationale


def test_a_member_that_joins_late_converges_to_its_neighbours_standard():
    done = {
        (4, 0): Finished(TrialRecord(dim=4, seed=0, status=TrialStatus.COMPLETE, nll=10.0, epochs_run=300), None),
        (8, 0): Finished(TrialRecord(dim=8, seed=0, status=TrialStatus.COMPLETE, nll=9.0, epochs_run=250), None),
        (16, 0): Finished(TrialRecord(dim=16, seed=0, status=TrialStatus.COMPLETE, nll=9.0, epochs_run=900), None),
    }
    assert _horizon(6, done) == 300 and _horizon(2, done) == 300 and _horizon(32, done) == 900
    # 40 epochs, still falling 0.02 nats over the last 5: flat by its own history, not by its neighbours'
    scores = [10.0 - 0.004 * i for i in range(40)]
    own = Member(6, 0, asleep=False, scores=list(scores))
    late = Member(6, 0, asleep=False, scores=list(scores), horizon=300)
    assert own.flat(5, 0.2) and not late.flat(5, 0.2)
    assert Member(6, 0, asleep=False, scores=[10.0] * 40, horizon=300).flat(5, 0.2)
    # converged: flat after its learning rate was lowered at least once (issue 36)
    assert not own.converged(5, 0.2)
    assert Member(6, 0, epoch=40, asleep=False, scores=list(scores), lr_drops=1, lowered_at=30).converged(5, 0.2)


def test_settle_mode_asks_the_question_the_sweep_prints(monkeypatch, tiny_gaussian):
    """Settle mode's answer after every epoch is decided under the plan's question: the data's feature
    count and likelihood included (it once called the rule without them)."""
    import zdim.sweeps.settle as settle
    from zdim.sweeps.execute import sweep

    asked = []
    real = settle.decide

    def spy(evidence, question, **kw):
        asked.append(question)
        return real(evidence, question, **kw)

    monkeypatch.setattr(settle, "decide", spy)
    r = sweep(tiny_gaussian, dims=[1, 2], seeds=1, epochs=4, refine=False, extend=False)
    assert r.recommendation is not None and asked
    assert {q.n_features for q in asked} == {tiny_gaussian.n_features} and {q.likelihood for q in asked} == {"gaussian"}


def test_decide_is_none_without_a_complete_trial():
    failed = [TrialRecord(dim=2, seed=0, status=TrialStatus.FAILED, reason="NaN")]
    assert decide(Evidence(failed), Question()) is None
    with pytest.raises(TypeError):
        recommend(failed, question=Question(), rule="nll-knee")


def test_active_units_past_every_size_on_the_envelope_count_for_the_largest_on_it():
    """The README's MNIST shape: the 50-unit model keeps 24 active units, so the active units point at 50,
    which is worse than 13; they count for 13, the largest size on the envelope (not a 'larger' one)."""
    nll = {2: 151.30, 5: 121.66, 10: 107.78, 12: 106.95, 13: 104.94, 15: 106.33, 20: 105.74, 50: 106.95}
    recs, per = paired(nll, {50: 24, 20: 16, 15: 11, 13: 11})
    rec = recommend(recs, per_sample=per)
    assert rec.dim == 13 and rec.signals["active-units"] == 13
    assert "The active units point at 50, which is off that envelope, so they count for 13, the largest size" in (
        rec.rationale
    )


def test_a_density_without_a_natural_scale_gets_no_share_of_its_nll_as_tolerance():
    """The continuous Bernoulli on MNIST: NLL near -1700 nats, so 1% of it (17 nats) let a size 10 nats
    worse than the best through. Its tolerance is the share of the NLL range only."""
    nll = {2: -1488.8, 5: -1614.0, 10: -1695.3, 12: -1705.8, 13: -1714.3, 15: -1718.8, 20: -1724.9, 50: -1723.6}
    recs, per = paired(nll, {50: 26})
    assert recommend(recs, per_sample=per, likelihood="bernoulli").dim == 13  # 1% of 1724.9 nats: 17.2
    rec = recommend(recs, per_sample=per, likelihood="continuous-bernoulli")
    assert rec.dim == 20 and rec.tolerance == pytest.approx(0.02 * (1724.9 - 1488.8), abs=0.1)
    assert "no natural scale, so no share of the best NLL is used" in rec.rationale
