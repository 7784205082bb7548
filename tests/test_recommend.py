import pytest

from zdim.errors import ConfigError
from zdim.recommend import aggregate, recommend


def trials(nlls, au=None, seeds=1):
    out = []
    for dim, vals in nlls.items():
        vals = vals if isinstance(vals, list) else [vals]
        for s, v in enumerate(vals):
            out.append(
                {"dim": dim, "seed": s, "status": "complete", "nll": v, "active_units": (au or {}).get(dim, dim)}
            )
    return out


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
    t = trials({2: 50.0, 4: 40.0}) + [{"dim": 8, "seed": 0, "status": "failed", "reason": "NaN"}]
    rec = recommend(t)
    assert rec.dim == 4 and rec.failed_trials == 1 and "1 trial(s) failed" in rec.rationale


def test_errors():
    with pytest.raises(ConfigError, match="unknown rule 'x'"):
        recommend(trials({2: 1.0}), rule="x")
    with pytest.raises(ConfigError, match="tolerance"):
        recommend(trials({2: 1.0}), rel_tol=-1)
    with pytest.raises(ValueError, match="no trial completed"):
        recommend([{"dim": 2, "seed": 0, "status": "failed"}])


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
        r["gen_fd"] = f
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
