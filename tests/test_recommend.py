import json

import numpy as np
import pytest

from zdim.answer.checks import MIN_TEST_SAMPLES, learned_nothing
from zdim.answer.rules import Recommendation, aggregate, recommend
from zdim.answer.uncertainty import bootstrap, with_uncertainty
from zdim.errors import ConfigError
from zdim.records import TrialRecord, TrialStatus


def record(dim, seed=0, nll=None, **kw):
    kw.setdefault("active_units", dim)
    kw.setdefault("n", 1000)
    return TrialRecord(dim=dim, seed=seed, status=TrialStatus.COMPLETE, nll=nll, **kw)


def trials(nlls, au=None, **kw):
    """Complete records: ``{dim: nll or [nll per seed]}``; every unit active unless ``au`` says otherwise."""
    out = []
    for dim, vals in nlls.items():
        vals = vals if isinstance(vals, list) else [vals]
        for s, v in enumerate(vals):
            out.append(record(dim, s, v, **{"active_units": (au or {}).get(dim, dim), **kw}))
    return out


def sentences(rec):
    return rec.rationale.split(". ")


def test_smallest_size_within_tolerance():
    t = trials({2: 120.0, 5: 100.0, 10: 95.5, 20: 95.0, 50: 95.2}, au={50: 12})
    rec = recommend(t, rel_tol=0.01)
    assert rec.best_dim == 20 and rec.dim == 10
    assert rec.threshold == pytest.approx(95.0 * 1.01)
    assert rec.largest_active_units == 12
    assert "10" in rec.rationale and "12 active units" in rec.rationale


def test_zero_tolerance_picks_the_best():
    rec = recommend(trials({2: 120.0, 5: 100.0, 10: 95.5, 20: 95.0}), rel_tol=0.0, range_tol=0.0)
    assert rec.dim == 20
    assert "grid may be too small" in rec.rationale


def test_standard_error_widens_the_tolerance_with_seeds():
    t = trials({4: [99.0, 100.0, 98.0], 8: [96.0, 100.0, 98.0]})
    rows = aggregate(t)
    assert rows[1]["nll_se"] == pytest.approx((4.0 / 3) ** 0.5)
    assert recommend(t, rel_tol=0.0).dim == 4  # 99 <= 98 + SE(best) = 99.15
    t2 = trials({4: [103.0, 104.0, 102.0], 8: [96.0, 100.0, 98.0]})
    assert recommend(t2, rel_tol=0.0).dim == 8


def test_failed_trials_are_left_out_and_counted():
    t = trials({2: 50.0, 4: 40.0}) + [TrialRecord(dim=8, seed=0, status=TrialStatus.FAILED, reason="NaN")]
    rec = recommend(t)
    assert rec.dim == 4 and rec.failed_trials == 1
    assert "1 trial failed and was left out (dim-008-seed-0: NaN): the answer rests on the other 2" in rec.rationale


def test_errors():
    with pytest.raises(ConfigError, match="unknown rule 'x'"):
        recommend(trials({2: 1.0}), rule="x")
    with pytest.raises(ConfigError, match="tolerance"):
        recommend(trials({2: 1.0}), rel_tol=-1)
    with pytest.raises(ValueError, match="no trial completed"):
        recommend([TrialRecord(dim=2, seed=0, status=TrialStatus.FAILED)])


def test_gaussian_nll_near_zero_still_has_a_tolerance():
    # standardized Gaussian data: NLL around 0, so 1% of |best| is no tolerance at all
    t = trials({1: 20.0, 2: 0.3, 4: 0.05, 8: 0.0})
    rec = recommend(t, rule="nll-knee")
    assert rec.tolerance == pytest.approx(0.02 * 20.0) and rec.dim == 2
    assert recommend(t, rule="nll-knee", range_tol=0.0).dim == 8


def test_rules_and_their_evidence():
    # planted d = 1: NLL keeps improving a little, the over-sized model keeps one active unit
    t = trials({1: 30.0, 2: 25.0, 4: 20.0, 8: 19.9}, au={8: 1})
    for r, f in zip(t, [9.0, 3.0, 2.0, 2.1]):
        r.generation["gen_fd"] = f
    assert recommend(t, rule="nll-knee").dim == 4
    assert recommend(t, rule="active-units").dim == 1
    assert recommend(t, rule="generation").dim == 4  # 2.1 is within 10% of the best 2.0; 3.0 is not
    rec = recommend(t, intrinsic_dim=1)
    assert rec.rule == "combined" and rec.dim == 1
    assert rec.signals == {
        "nll-knee": 4,
        "active-units": 1,
        "generation": 4,
        "intrinsic-dim": 1,
        "largest_collapsed": True,
    }
    assert "Rule 'combined'" in rec.rationale and rec.to_dict()["signals"]["active-units"] == 1
    assert rec.per_dim[0]["gen_fd_mean"] == 9.0


def test_combined_is_the_knee_when_nothing_collapsed():
    t = trials({1: 30.0, 2: 25.0, 4: 20.0, 8: 19.9})  # every unit active: AU says nothing
    assert recommend(t).dim == 4


def test_generation_rule_needs_generation_metrics():
    with pytest.raises(ConfigError, match="generation"):
        recommend(trials({2: 1.0}), rule="generation")


# --- sanity of the answer (issue #13, part 3) ---


def clean_trials(**kw):
    """Planted d = 2 on standardized Gaussian data: trained, converged, enough test samples."""
    kw = {"kl": 6.0, "mse": 0.3, "converged": True, **kw}
    return trials({1: [30.0, 30.4], 2: [25.0, 25.2], 4: [20.0, 20.1], 8: [19.9, 20.0]}, au={8: 2}, **kw)


def test_a_clean_answer_is_settled_without_warnings():
    rec = recommend(clean_trials(), likelihood="gaussian")
    assert rec.settled is True and rec.warnings == []
    assert rec.dim == 2 and not rec.rationale.startswith("Not a settled answer")
    assert "Note:" not in rec.rationale


def test_no_active_unit_is_not_an_answer():
    # digits, 500 samples, 5 epochs: every model keeps 0 active units; today this read "in agreement"
    t = trials({1: 80.0, 2: 79.9, 4: 79.8, 8: 79.8}, au={1: 0, 2: 0, 4: 0, 8: 0}, kl=0.8, converged=True)
    rec = recommend(t, likelihood="bernoulli")
    assert rec.dim == 1  # the rule's numbers are unchanged; the answer is flagged
    assert rec.settled is False
    assert len(rec.warnings) == 1
    assert "learned no latent structure" in rec.warnings[0] and "0 active units" in rec.warnings[0]
    assert "not supported by the evidence" in rec.warnings[0] and "--warmup" in rec.warnings[0]
    assert rec.rationale.startswith("Not a settled answer: the models learned no latent structure")
    assert "in agreement" not in rec.rationale


def test_no_active_unit_and_no_kl_says_it_once_for_bernoulli():
    t = trials({1: 80.0, 2: 79.9, 4: 79.8}, au={1: 0, 2: 0, 4: 0}, kl=0.01)
    rec = recommend(t, likelihood="bernoulli")
    assert rec.settled is False and len(rec.warnings) == 1 and "no latent structure" in rec.warnings[0]
    assert "in agreement" not in rec.rationale


def test_models_that_learned_nothing_cannot_support_an_answer():
    # standardized Gaussian data, too short a training: every decoder outputs the feature means
    t = trials({1: 1.42, 2: 1.41, 4: 1.40, 8: 1.40}, au={8: 1}, kl=0.05, mse=0.99)
    rec = recommend(t, likelihood="gaussian")
    assert rec.settled is False
    [w] = [w for w in rec.warnings if "learned nothing" in w]
    assert w.startswith("sizes 1, 2, 4, 8 learned nothing") and "MSE >= 0.9" in w
    assert rec.rationale.startswith("Not a settled answer: sizes 1, 2, 4, 8 learned nothing")
    # with nothing else to go on, the rules read them all: the numbers are those of the plain rule
    assert rec.dim == recommend(t).dim and rec.per_dim == recommend(t).per_dim


def test_models_that_learned_nothing_are_left_out_of_the_rules():
    t = clean_trials()
    t.append(record(8, 2, 45.0, active_units=0, kl=0.1, mse=1.0, converged=True))  # a collapsed third seed
    rec = recommend(t, likelihood="gaussian")
    assert rec.per_dim[-1]["n_seeds"] == 2 and rec.per_dim[-1]["nll_mean"] == pytest.approx(19.95)
    assert rec.dim == recommend(clean_trials(), likelihood="gaussian").dim
    assert rec.settled is True  # the answer rests on trained models
    assert rec.warnings == [
        "trials dim-008-seed-2 learned nothing (KL < 0.5 nats, MSE >= 0.9) and were left out of the rules"
    ]
    assert "Note: trials dim-008-seed-2 learned nothing" in rec.rationale
    # without the likelihood, the likelihood-free test (0 active units, KL < 0.5) leaves it out too ...
    assert recommend(t).per_dim[-1]["n_seeds"] == 2
    # ... and it is averaged in when a unit is active (Bernoulli data)
    t[-1] = record(8, 2, 45.0, active_units=1, kl=0.1, mse=1.0)
    assert recommend(t, likelihood="bernoulli").per_dim[-1]["n_seeds"] == 3


def test_the_test_of_learning_nothing_depends_on_the_likelihood():
    flat = record(4, 0, 1.0, active_units=2, kl=0.2, mse=0.95)
    assert learned_nothing(flat, "gaussian")
    assert not learned_nothing(flat, "bernoulli")  # units active: it learned something
    assert not learned_nothing(record(4, 0, 1.0, active_units=0, kl=0.2, mse=0.5), "gaussian")
    assert learned_nothing(record(4, 0, 1.0, active_units=0, kl=0.2), "bernoulli")
    assert not learned_nothing(record(4, 0, 1.0, active_units=0, kl=0.7), "bernoulli")
    assert not learned_nothing(record(4, 0, 1.0, active_units=0), "bernoulli")  # no KL recorded: unknown


def test_a_small_test_split_is_not_settled():
    rec = recommend(clean_trials(n=60), likelihood="gaussian")
    assert rec.dim == 2 and rec.settled is False
    assert MIN_TEST_SAMPLES == 100
    assert rec.warnings == [
        "the test split has only 60 samples: too few to measure NLL differences; use more data or a larger test split"
    ]
    assert rec.rationale.startswith("Not a settled answer: the test split has only 60 samples")


def test_unconverged_trials_the_answer_rests_on():
    t = trials({1: 30.0, 2: 25.0, 4: 20.0, 8: 19.9, 16: 19.9}, au={16: 4}, converged=True)
    assert recommend(t).dim == 4 and recommend(t).settled
    for r in t:
        r.converged = r.dim in (4, 8)  # sizes 1, 2 (the next smaller) and 16 (the largest) had not
    rec = recommend(t)
    assert rec.dim == 4 and rec.settled is False
    assert rec.warnings == [
        "sizes 2, 16 had not converged: their held-out NLL may still fall; rerun the sweep with more --epochs and "
        "--overwrite, since --resume keeps its trials as they are"
    ]
    for r in t:
        r.converged = r.dim != 1  # size 1 is not what the answer rests on
    assert recommend(t).settled is True
    for r in t:
        r.converged = None  # older runs: unknown
    assert recommend(t).settled is True and recommend(t).warnings == []
    t[2].converged = False
    assert recommend(t).warnings == [
        "size 4 had not converged: its held-out NLL may still fall; rerun the sweep with more --epochs and "
        "--overwrite, since --resume keeps its trials as they are"
    ]


def test_the_largest_size_with_every_unit_active_is_the_grid_edge():
    rec = recommend(trials({2: 120.0, 5: 100.0, 10: 95.5, 20: 95.0}), rel_tol=0.0, range_tol=0.0)
    assert rec.dim == 20 and rec.settled is False
    assert rec.warnings == ["the answer is the largest size tried and all its units are active: try larger sizes"]
    assert rec.rationale.startswith("Not a settled answer: the answer is the largest size tried")
    assert rec.rationale.count("try larger sizes") == 1
    # the knee at the largest size, but units of the largest model collapsed: no edge warning
    rec = recommend(
        trials({2: 120.0, 5: 100.0, 10: 95.5, 20: 95.0}, au={20: 15}), rule="nll-knee", rel_tol=0.0, range_tol=0.0
    )
    assert rec.dim == 20 and rec.settled is True and rec.warnings == []


def test_seed_uncertainty_stays_in_the_tolerance():
    t = trials({2: [120.0, 121.0, 119.0], 4: [99.0, 100.0, 98.0], 8: [96.0, 100.0, 98.0]}, au={8: 5})
    rec = recommend(t, rel_tol=0.0)
    assert rec.dim == 4 and rec.tolerance == pytest.approx((4.0 / 3) ** 0.5) and rec.settled


def test_the_rationale_is_short_sentences_warnings_first():
    t = trials({1: 1.60, 2: 1.50, 4: 1.40}, kl=0.05, mse=0.99, n=40, converged=False)
    rec = recommend(t, likelihood="gaussian", intrinsic_dim=2)
    assert rec.settled is False and len(rec.warnings) == 4
    parts = sentences(rec)
    assert parts[0].startswith("Not a settled answer: ")
    for w, p in zip(rec.warnings[1:], parts[1:]):
        assert p == w[0].upper() + w[1:]
    assert rec.rationale.endswith(".")
    for p in parts:
        assert p and p[0].isupper() and len(p) < 220, p
    assert len(parts) >= len(rec.warnings) + 5


def test_round_trip_with_and_without_the_new_fields():
    rec = recommend(clean_trials(n=50), likelihood="gaussian")
    d = json.loads(json.dumps(rec.to_dict()))
    assert d["settled"] is False and d["warnings"] == rec.warnings
    assert Recommendation.from_dict(d) == rec
    old = {k: v for k, v in d.items() if k not in ("warnings", "settled", "notes")}  # of earlier runs
    back = Recommendation.from_dict({**old, "unknown_key": 1})
    assert back.settled is True and back.warnings == [] and back.dim == rec.dim and back.rationale == rec.rationale


def _clear_case(noise: float, n: int = 400, seeds: int = 2):
    """Per-sample NLLs of sizes 1, 2, 4: size 2 is better than 1 by ``gap`` nats per sample, 4 no better than 2."""
    rng = np.random.default_rng(0)
    base = rng.normal(50.0, 5.0, n)
    means = {1: 60.0, 2: 50.0, 4: 49.9}
    per, recs = {}, []
    for d, m in means.items():
        for s in range(seeds):
            v = base + (m - 50.0) + rng.normal(0.0, noise, n)
            per[(d, s)] = v
            recs.append(
                TrialRecord(
                    dim=d, seed=s, status=TrialStatus.COMPLETE, nll=float(v.mean()), active_units=min(d, 2), n=n
                )
            )
    return recs, per


def test_bootstrap_of_a_clear_answer_is_one_size():
    recs, per = _clear_case(noise=0.5)
    rec = recommend(recs)
    unc = bootstrap(recs, per)
    assert rec.dim == 2 and unc == {"resamples": 200, "shares": {"2": 1.0}, "seeds": 2, "n": 400}
    done = with_uncertainty(rec, unc)
    assert done.settled and done.confidence == "2 (chosen in 100% of 200 resamples)"
    assert "Bootstrap" in done.rationale and Recommendation.from_dict(done.to_dict()) == done


def test_bootstrap_of_a_near_tie_is_spread_over_sizes():
    recs, per = _clear_case(noise=0.5)
    # size 1 only a little worse than 2, with much per-sample noise: the knee moves between 1 and 2
    for s in range(2):
        per[(1, s)] = per[(2, s)] + 0.6 + np.random.default_rng(s).normal(0.0, 20.0, len(per[(2, s)]))
        recs[s] = TrialRecord(
            dim=1, seed=s, status=TrialStatus.COMPLETE, nll=float(per[(1, s)].mean()), active_units=1, n=400
        )
    unc = bootstrap(recs, per, rel_tol=0.0, range_tol=0.0)
    assert unc is not None and len(unc["shares"]) >= 2 and abs(sum(unc["shares"].values()) - 1.0) < 1e-9


def test_bootstrap_needs_paired_values():
    recs, per = _clear_case(noise=0.5)
    assert bootstrap(recs, {}) is None
    per[(1, 0)] = per[(1, 0)][:10]
    assert bootstrap(recs, per) is None


def test_an_answer_chosen_in_few_resamples_is_not_settled():
    recs, _ = _clear_case(noise=0.5)
    rec = recommend(recs)
    done = with_uncertainty(rec, {"resamples": 100, "shares": {"1": 0.6, "2": 0.4}})
    assert not done.settled and done.rationale.startswith("Not a settled answer")
    assert "chosen in only 40% of 100 resamples" in done.warnings[-1]
    assert done.confidence == "2 (chosen in 40% of 100 resamples; 1 in 60%)"


def _paired(gaps, noise, n=400, seed=0):
    """Records and per-sample NLL of sizes 1, 2, 4: size 4 the best, size d ``gaps[d]`` nats worse on
    average, each sample's difference to size 4 spread by ``noise[d]``."""
    rng = np.random.default_rng(seed)
    base = rng.normal(100.0, 5.0, n)
    per = {(4, 0): base}
    for d in (1, 2):
        per[(d, 0)] = base + gaps[d] + rng.normal(0.0, noise[d], n) - 0.0
        per[(d, 0)] += gaps[d] - per[(d, 0)].mean() + base.mean()  # exactly gaps[d] above the best
    recs = [record(d, 0, float(v.mean()), n=n) for (d, _), v in sorted(per.items())]
    return recs, per


def test_a_gap_within_its_paired_standard_error_is_within_the_tolerance():
    from zdim.answer.pairing import paired_se

    # size 2 is 1.5 nats worse than 4 (tolerance ~1): a clear gap without the per-sample values; with
    # them, its difference to the best varies by 40 nats per sample: SE 2 nats, so 2 cannot be told apart
    recs, per = _paired({1: 30.0, 2: 1.5}, {1: 1.0, 2: 40.0})
    plain = recommend(recs, rel_tol=0.01, range_tol=0.0)
    assert plain.dim == 4
    rec = recommend(recs, rel_tol=0.01, range_tol=0.0, per_sample=per)
    se = paired_se(recs, per, 4)
    assert se[4] == 0.0 and se[2] == pytest.approx(np.std(per[(2, 0)] - per[(4, 0)], ddof=1) / 20.0)
    assert se[2] > 1.5 and rec.dim == 2
    assert rec.per_dim[1]["nll_paired_se"] == pytest.approx(se[2])
    assert f"within one standard error of its gap to the best ({se[2]:.2f} nats)" in rec.rationale


def test_a_gap_well_above_its_paired_standard_error_still_counts():
    # the same 1.5-nat gap, but nearly the same on every sample: SE 0.05, the gap is real
    recs, per = _paired({1: 30.0, 2: 1.5}, {1: 1.0, 2: 1.0})
    rec = recommend(recs, rel_tol=0.01, range_tol=0.0, per_sample=per)
    assert rec.dim == 4
    assert "the paired one over the same held-out samples" in rec.rationale  # said, though it moved nothing


def test_paired_standard_errors_need_the_same_samples():
    from zdim.answer.pairing import paired_se

    recs, per = _paired({1: 30.0, 2: 1.5}, {1: 1.0, 2: 40.0})
    assert paired_se(recs, {k: v for k, v in per.items() if k != (2, 0)}, 4) == {}
    per[(1, 0)] = per[(1, 0)][:10]
    assert paired_se(recs, per, 4) == {}
    assert recommend(recs, rel_tol=0.01, range_tol=0.0, per_sample=per).dim == 4  # falls back to the plain rule


def test_a_size_chosen_in_a_few_resamples_is_not_shown_as_0_percent():
    recs, _ = _clear_case(noise=0.5)
    done = with_uncertainty(recommend(recs), {"resamples": 200, "shares": {"2": 0.995, "1": 0.005}})  # 1 of 200
    assert done.confidence == "2 (chosen in >99% of 200 resamples; 1 in <1%)"  # not "100%" beside another
    every = with_uncertainty(recommend(recs), {"resamples": 200, "shares": {"2": 1.0}})
    assert every.confidence == "2 (chosen in 100% of 200 resamples)"


def test_active_units_are_said_the_same_way_everywhere():
    """The signal names the count it rests on, and a mean over seeds is said as the range it averages."""
    t = trials({2: [120.0] * 3, 4: [100.0] * 3, 8: [99.9, 99.9, 99.9]}, au={8: 4})
    t[-1].active_units = 5  # seeds of size 8 keep 4, 4 and 5 units
    rec = recommend(t, rel_tol=0.01)
    assert "keeps 4 to 5 active units, 4.33 on average over 3 seeds (variance" in rec.rationale
    assert "active units 4 (the smallest size tried that holds the largest model's 4 to 5 active units" in (
        rec.rationale
    )
    assert "4.33 active units" not in rec.rationale


def test_a_largest_model_without_active_units_is_not_in_agreement_with_anything():
    t = trials({1: 10.0, 2: 10.0, 32: 10.0}, au={1: 0, 2: 1, 32: 0})
    rec = recommend(t)
    assert "It has no active unit, so its active units say nothing about the size." in rec.rationale
    assert "in agreement" not in rec.rationale


def test_members_stopped_by_the_time_budget_are_told_to_get_more_time_not_more_epochs():
    t = trials({1: 12.0, 2: 10.0, 4: 10.0}, converged=False)
    for r in t:
        r.extra["settle_stop"] = "time-budget"
    rec = recommend(t)
    assert any("rerun the sweep with a larger --time-budget and --overwrite" in w for w in rec.warnings)
    assert not any("--epochs" in w for w in rec.warnings)


def test_learned_nothing_is_measured_against_decoding_the_feature_means():
    """What the latents buy, against its paired standard error, in place of a fixed MSE of 0.9: members
    at MSE 0.82 to 0.91 once passed that test while buying nothing measurable."""
    moved = record(1, nll=9.0, baseline_nll=10.0, baseline_se=0.1, kl=0.1, mse=0.85)
    flat = record(1, seed=1, nll=9.95, baseline_nll=10.0, baseline_se=0.1, kl=0.1, mse=0.85)
    assert not learned_nothing(moved, "gaussian") and learned_nothing(flat, "gaussian")
    assert learned_nothing(record(1, nll=10.2, baseline_nll=10.0, baseline_se=0.01), "gaussian")  # worse
    old = record(1, nll=9.95, kl=0.1, mse=0.95)  # a record written before the reference existed
    assert learned_nothing(old, "gaussian")


def test_an_answer_of_1_from_models_that_barely_moved_is_not_settled():
    """Every size near decoding the feature means and worse than PCA of its own size: the knee is 1 'in
    100%', and the answer must say it cannot stand."""
    t = [
        record(d, s, nll=10.0 - 0.3 * d + 0.01 * s, baseline_nll=10.3, baseline_se=0.05, linear_nll=9.0 - 0.5 * d,
               linear_se=0.05, kl=0.3, converged=True)
        for d in (1, 2, 4) for s in (0, 1)
    ]  # fmt: skip
    rec = recommend(t, likelihood="gaussian")
    assert not rec.settled and any(n.code == "barely-moved" for n in rec.notes)
    w = next(n.text for n in rec.notes if n.code == "barely-moved")
    assert "less than half of what probabilistic PCA of the same size buys" in w and "--warmup" in w
    # a converged VAE below PCA where PCA models residual variance the VAE prunes is not "barely moved"
    t = [record(d, nll=7.0, baseline_nll=14.0, baseline_se=0.1, linear_nll=14.0 - 1.5 * d, linear_se=0.1)
         for d in (1, 2, 8)]  # fmt: skip
    assert not any(n.code == "barely-moved" for n in recommend(t, likelihood="gaussian").notes)
    assert rec.rationale.startswith("Not a settled answer")


def test_a_new_signal_is_one_class(monkeypatch):
    """A signal is one class and one row of ``zdim.answer.signals.SIGNALS``: its rule answers, the rationale
    names it, and ``--rule`` (the option table's check, the parser) takes it without another edit."""
    from zdim.answer import signals
    from zdim.cli import build_parser
    from zdim.options import route

    class Smallest(signals.Signal):
        name = "smallest"

        def pick(self, r):
            return r.on[0]

        def words(self, dim, r):
            return f"smallest size {dim}"

    with pytest.raises(ConfigError, match="rule must be one of combined, nll-knee, active-units, generation, got"):
        route({"rule": "smallest"})
    monkeypatch.setattr(signals, "SIGNALS", (*signals.SIGNALS, Smallest()))  # its one registry row
    assert route({"rule": "smallest"})["options"] == {"rule": "smallest"}
    assert build_parser().parse_args(["sweep", "x.csv", "--rule", "smallest"]).rule == "smallest"
    t = trials({2: [30.0, 30.1], 4: [25.0, 25.1], 8: [24.9, 25.0]}, au={8: 4})
    rec = recommend(t, rule="smallest")
    assert rec.dim == 2 and rec.signals["smallest"] == 2
    assert "smallest size 2" in rec.rationale and "Rule 'smallest' recommends 2." in rec.rationale
    assert recommend(t).dim == 4  # the default rule is untouched by the new signal


def test_combined_is_a_composite_of_registered_signals_and_a_new_composite_is_one_class(monkeypatch):
    """``combined`` is a ``Composite`` over the NLL knee and the active units (it needs what they need);
    another composite over registered signals is one class and one registry row, and it cannot answer
    where a part's evidence is missing (the part's reason)."""
    from zdim.answer import signals

    combined = signals.get("combined")
    assert isinstance(combined, signals.Composite) and combined.parts == ("nll-knee", "active-units")
    assert combined.evidence() == {"nll", "active_units"} and signals.get("generation").evidence() == {"gen_fd"}
    assert signals.names()[0] == "combined" and "combined" not in {s.name for s in signals.views()}

    class Larger(signals.Composite):  # the larger of the NLL knee and the generation pick
        name = "larger"
        parts = ("nll-knee", "generation")

        def combine(self, picks, r):
            return max(picks.values(), key=lambda row: row["dim"])

    monkeypatch.setattr(signals, "SIGNALS", (*signals.SIGNALS, Larger()))
    assert signals.get("larger").evidence() == {"nll", "gen_fd"}
    t = trials({2: 30.0, 4: 25.0, 8: 24.9}, au={8: 4})
    for r, fd in zip(t, (9.0, 5.0, 1.0), strict=True):
        r.generation["gen_fd"] = fd
    rec = recommend(t, rule="larger")
    assert rec.dim == 8 and "Rule 'larger' recommends 8." in rec.rationale and "larger" not in rec.signals
    for r in t:
        r.generation.clear()
    with pytest.raises(ConfigError, match="rule 'generation' needs generation metrics"):
        recommend(t, rule="larger")
