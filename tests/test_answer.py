"""The one owner of the answer (zdim.answer.decide): the lower envelope, a tolerance in words, confidence that
says what it cannot see, the edges of the grid, the intrinsic-dimension check with its reason, late
members held to their neighbours' standard, and settle mode asking the question it prints."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from zdim.answer.capacity import capacity_check
from zdim.answer.decide import Evidence, decide
from zdim.answer.rules import Question, recommend
from zdim.answer.uncertainty import with_uncertainty
from zdim.evaluation.intrinsic import IntrinsicDim
from zdim.records import TrialRecord, TrialStatus
from zdim.sweeps.executors.member import Member, _horizon
from zdim.sweeps.records.ledger import Finished

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


def test_a_bootstrap_of_one_split_says_it_cannot_see_the_split():
    """Diamonds (issue 37): 9, chosen in 86%, at --seed 0 and 6 at --seed 1, another split of the same rows.
    The rationale says the split is not redrawn and what redraws it; with folds (redrawn) it says nothing."""
    from zdim.answer.uncertainty import _one_split

    recs, per = paired({1: 130.0, 2: 100.0, 4: 99.9, 8: 99.8}, {8: 2}, seeds=2)
    rec = decide(Evidence(recs, per), Question(), resamples=50)
    assert rec is not None and rec.settled
    assert "redraws the held-out samples of one split, not the split" in rec.rationale
    assert "--folds 5 holds every row out once" in rec.rationale
    assert rec.uncertainty is not None
    assert _one_split(replace(rec, uncertainty={**rec.uncertainty, "folds": 5})) == ""


def test_no_share_beside_a_flag():
    # every model a test split of 40 samples: not settled, and no share is printed beside it
    recs, per = paired({1: 130.0, 2: 100.0, 4: 99.9, 8: 99.8}, {8: 2}, seeds=2, n=40)
    rec = decide(Evidence(recs, per), Question(), resamples=50)
    assert rec is not None and not rec.settled and rec.uncertainty is not None
    assert rec.confidence == "2" and "chosen in" not in rec.rationale and "resamples" not in rec.rationale
    assert "not shown beside the answer" in rec.rationale


def test_doubt_is_never_hidden_behind_another_flag():
    """Diamonds (issue 37): the answer 5, flagged for something else, was printed without a share while the
    bootstrap chose 4 in 56% and 5 in 37.5%. The uncertain flag stands beside the other, its shares in its
    own words (the answer itself still shows none: the bootstrap cannot see the other flag)."""
    recs, per = paired({1: 130.0, 2: 100.0, 4: 99.9, 8: 99.8}, {8: 2}, seeds=2, n=40)
    flagged = recommend(recs, per_sample=per)
    assert not flagged.settled and flagged.dim == 2
    done = with_uncertainty(flagged, {"resamples": 200, "shares": {"1": 0.56, "2": 0.375, "4": 0.065}, "seeds": 2})
    codes = [n.code for n in done.notes if n.is_warning]
    assert codes == ["small-test", "uncertain"] and done.confidence == "2"
    [w] = [n.text for n in done.notes if n.code == "uncertain"]
    assert "size 2 is chosen in only 38% of 200 resamples of the held-out samples and seeds (1 in 56%; 4 in 6%)" in w
    assert "under the 80% a settled answer needs; more seeds (--seeds 5) or every row held out once (--folds 5)" in w
    assert "its shares are in the warning that the answer is uncertain" in done.rationale
    # at or above 80% the answer is not flagged for doubt; below it, it is, even at 50% (once settled)
    clean = recommend(paired({1: 130.0, 2: 100.0, 4: 99.9, 8: 99.8}, {8: 2}, seeds=2)[0])
    assert clean.settled and with_uncertainty(clean, {"resamples": 200, "shares": {"2": 0.8}}).settled
    half = with_uncertainty(clean, {"resamples": 200, "shares": {"2": 0.5, "8": 0.5}})
    assert [n.code for n in half.notes if n.is_warning] == ["uncertain"]


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
    import zdim.sweeps.executors.settle as settle
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
    """The README's MNIST example as it printed before issue 36 (2026-12-06): the 50-unit model keeps 24 active
    units, so the active units point at 50, which is worse than 13; they count for 13, the largest size on the
    envelope (not a 'larger' one)."""
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


def seeded(nll: dict[int, list[float]], au: dict[int, int], n: int = N, own: dict[int, float] | None = None):
    """Records with per-sample NLL, one list of seed means per size: each seed's samples are its mean plus
    noise shared by every trial (paired: the paired standard errors are small; the seeds differ) and, for
    the sizes in ``own``, noise of their own of that spread (centred: the mean stays)."""
    shared = np.random.default_rng(0).normal(0.0, 1.0, n)
    shared -= shared.mean()
    recs, per = [], {}
    for d, seeds in nll.items():
        for s, v in enumerate(seeds):
            noise = np.random.default_rng(10 * d + s).normal(0.0, (own or {}).get(d, 0.0), n)
            per[(d, s)] = v + shared + noise - noise.mean()
            recs.append(
                TrialRecord(
                    dim=d, seed=s, status=TrialStatus.COMPLETE, nll=v, active_units=au.get(d, d), n=n,
                    converged=True, kl=5.0,
                )
            )  # fmt: skip
    return recs, per


def boston():
    """Boston's shape (issue 37): sizes 3 (14.12) and 6 (14.08) quieter and lower than 7 (14.14 +- 0.43 over
    its seeds), whose spread once widened the standard error its gap was read with; the largest model
    keeps 7 active units."""
    return seeded(
        {1: [16.0, 16.1, 15.9], 2: [15.0, 15.05, 14.95], 3: [14.11, 14.12, 14.13], 4: [14.9, 14.95, 14.85],
         6: [14.07, 14.08, 14.09], 7: [13.40, 14.14, 14.88], 8: [14.0, 14.01, 13.99], 16: [13.80, 13.81, 13.79]},
        {16: 7, 8: 7, 7: 7},
    )  # fmt: skip


def test_the_one_standard_error_rule_reads_the_best_sizes_error_not_the_candidates():
    recs, per = boston()
    rec = recommend(recs, per_sample=per, rel_tol=0.001, range_tol=0.0, rule="nll-knee")
    rows = {r["dim"]: r for r in rec.per_dim}
    # 7's own seeds spread by 0.43: its gap of 0.34 once counted as within one SE; the best's SE is 0.006
    assert rows[7]["gap_se"] > rows[7]["gap"] > rows[7]["within_se"] and not rows[7]["within"]
    assert rows[7]["within_se"] == pytest.approx(max(rows[7]["nll_paired_se"], rows[16]["nll_se"]))
    assert rec.dim == 16 and not rows[7]["accepted"]


def test_a_quieter_smaller_size_is_never_passed_over_for_a_noisier_larger_one():
    recs, per = boston()
    rec = recommend(recs, per_sample=per, rel_tol=0.001, range_tol=0.0)
    # the active units point at 7 (the combined rule's pick); 3 has a lower mean NLL, so 3 is the answer
    assert rec.signals["active-units"] == 7 and rec.dim == 3
    assert "Size 3 has a lower mean NLL than 7 (14.12 against 14.14), so the answer is 3" in rec.rationale
    # in the knee: size 4 is within one paired SE (its per-sample differences spread by 80 nats), size 2,
    # quiet and lower, is not by its own gap: it is accepted as its mean NLL is lower than 4's
    recs, per = seeded({1: [130.0] * 2, 2: [101.2] * 2, 4: [101.5] * 2, 8: [100.0] * 2}, {8: 8}, own={4: 80.0})
    rec = recommend(recs, per_sample=per, rel_tol=0.01, range_tol=0.0, rule="nll-knee")
    rows = {r["dim"]: r for r in rec.per_dim}
    assert rows[4]["within"] and not rows[2]["within"] and rows[2]["accepted"] and rows[2]["accepted_by"] == 4
    assert rec.dim == 2 and "its mean NLL (101.20) is lower than that of size 4 (101.50), which is within" in (
        rec.rationale
    )


def test_the_capacity_check_quotes_the_size_that_decides_with_the_seeds_in_its_se():
    """Boston (issue 37): size 3 measured -0.02 nats against the answer 7, yet the answer stayed 7 and the
    warning quoted size 4 (0.75 worse) with a paired SE of 0.04 beside seed SEs of 0.28 and 0.75."""
    recs, per = boston()
    # under the default rule the size at the estimate that does as well is the answer: nothing to caution
    rec = decide(Evidence(recs, per, estimate(3.5)), Question(rel_tol=0.001, range_tol=0.0))
    assert rec is not None and rec.dim == 3 and not any(n.code == "capacity" for n in rec.notes)
    # under a rule that does not read held-out NLL (active units: 7), the check names 3, not 4
    rec = decide(Evidence(recs, per, estimate(3.5)), Question(rule="active-units", rel_tol=0.001, range_tol=0.0))
    assert rec is not None and rec.dim == 7 and rec.capacity is not None and rec.capacity["decides"] == 3
    note = next(n for n in rec.notes if n.code == "capacity")
    se = rec.capacity["sizes"]["3"]["se"]
    assert se >= rec.capacity["sizes"]["3"]["paired_se"] and se > 0.4  # 7's seeds spread by 0.43
    assert f"a size-3 VAE is no worse (-0.02 nats against 7, SE {se:.2f})" in note.text
    assert "where --rule combined or nll-knee would answer 3 or less" in note.text and "size-4" not in note.text
