"""The report's figures and page parts that keep it from misleading, checked without a sweep or a browser:
views are built by hand from typed trial records, figures are read back from their SVG text."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from matplotlib.ticker import MaxNLocator

from zdim.answer.rules import Recommendation
from zdim.evidence import Note, NoteKind, caution, warning
from zdim.files import write_json
from zdim.records import TrialRecord, TrialStatus
from zdim.report import figures, load_run
from zdim.report.collect import Pictures, RunView
from zdim.report.page import _sparkline, render
from zdim.sweeps.records.layout import RUN_JSON

EVIL = "<script>alert(1)</script>"
SENTENCES = [
    "Held-out NLL (importance-weighted bound) is lowest at latent size 4 (1234.52 nats).",
    "The smallest size within the tolerance of 0.05 nats is 4, so the NLL knee is 4.",
    "The largest model (8 units) keeps 4 active units (variance of the posterior mean over inputs above 0.01).",
]
RATIONALE = " ".join(SENTENCES)


def typed(notes=None, **kw) -> Recommendation:
    """A recommendation of size 4 whose evidence is ``notes`` (default: the rule's three sentences)."""
    notes = [Note(NoteKind.RULE, t) for t in SENTENCES] if notes is None else notes
    return Recommendation(
        dim=4, rule="combined", best_dim=4, threshold=0.0, tolerance=0.05, rel_tol=0.01, notes=notes, **kw
    )


def record(dim: int, seed: int, **kw) -> TrialRecord:
    """A complete trial whose NLL differs between sizes by a few hundredths of a nat at ~1234 nats."""
    base = dict(
        nll=1234.5 + 0.01 * dim + 0.002 * seed,
        neg_elbo=1234.6 + 0.01 * dim,
        rec=1200.0 + 0.02 * dim,
        kl=34.5 - 0.01 * dim,
        kl_per_unit=[0.26] + [0.0] * (dim - 1),
        active_units=min(dim, 4),
        best_epoch=3,
        epochs_run=3,
        generation={"gen_mmd": -0.002, "gen_features": "pca-8"},
    )
    base.update(kw)
    return TrialRecord(dim=dim, seed=seed, status=TrialStatus.COMPLETE, **base)


def make_view(tmp_path: Path, recommendation: Recommendation | None = None, **kw) -> RunView:
    trials = [record(d, s) for d in (2, 4, 8) for s in (0, 1)]
    rec = typed() if recommendation is None else recommendation
    return RunView(run_dir=tmp_path, info={"data": {"name": "hand-made"}}, recommendation=rec, trials=trials, **kw)


def svg_texts(uri: str) -> list[str]:
    """The text of every <text> element of an SVG data URI (the report keeps text as text)."""
    assert uri.startswith("data:image/svg+xml;base64,")
    svg = base64.b64decode(uri.split(",", 1)[1]).decode()
    return re.findall(r"<text\b[^>]*>([^<]*)</text>", svg)


def page(view: RunView) -> str:
    return render(view, Pictures())


# ------------------------------------------------------------------------------------ figures
def test_kl_heatmap_scale_starts_at_zero_with_a_colorbar_in_nats(tmp_path):
    view = make_view(tmp_path)
    with figures.report_style():
        fig = figures.kl_heatmap_figure(view)
    assert fig is not None
    image = fig.axes[0].images[0]
    assert image.get_clim()[0] == 0.0  # 0.26 nats is not the bottom of the scale: 0 is
    assert image.get_cmap().name.startswith(figures.HEATMAP_CMAP)
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "KL [nats]"  # the colorbar
    assert isinstance(fig.axes[0].xaxis.get_major_locator(), MaxNLocator)
    texts = svg_texts(figures.kl_heatmap(view))
    assert "KL [nats]" in texts
    assert any(re.fullmatch(r"0(\.0+)?", t) for t in texts), texts  # the colorbar's 0 tick
    assert "0.26" in texts  # few cells: each one's KL is written in it


@pytest.mark.parametrize("metric,label", [("nll", "NLL (IWAE bound)"), ("rec", "reconstruction term"), ("kl", "KL")])
def test_per_size_curves_state_their_range_and_show_plain_values(tmp_path, metric, label):
    view = make_view(tmp_path)
    texts = svg_texts(figures.curve(view, [(metric, label, figures.ACCENT)], "nats per sample", "t", "nats"))
    note = [t for t in texts if "range over sizes" in t]
    assert len(note) == 1 and note[0].endswith("nats)"), texts
    span = float(re.search(r"range over sizes ([0-9.e+-]+)", note[0]).group(1))
    means = figures.per_dim(view)[metric]
    assert span == pytest.approx(figures.value_range(means), rel=1e-2)
    # no offset or scientific notation hiding the values: every tick label is a plain number
    assert not [t for t in texts if re.search(r"\de[+\-−]?\d|×|^\+", t)], texts
    lo = min(m for m, _ in means.values())
    assert any(t.startswith(str(int(lo))) for t in texts), texts  # e.g. 1234.52, not 0.02 + offset


def test_two_series_curve_names_each_range(tmp_path):
    texts = svg_texts(
        figures.curve(
            make_view(tmp_path),
            [("nll", "NLL (IWAE bound)", figures.ACCENT), ("neg_elbo", "-ELBO", figures.MUTED)],
            "nats per sample",
            "Held-out NLL and -ELBO",
            "nats",
        )
    )
    assert any(re.search(r"range over sizes: NLL [0-9.]+, -ELBO [0-9.]+ nats", t) for t in texts), texts


def test_tuning_plot_numbers_trials_with_whole_numbers():
    tuning = {
        "dim": 4,
        "objective": "neg_elbo",
        "baseline": {"value": 101.0},
        "trials": [{"number": i, "state": "COMPLETE", "value": 100.0 - i} for i in range(3)],
    }
    with figures.report_style():
        fig = figures.tuning_figure(tuning)
    assert fig is not None
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks  # not 0.25, 0.5, ...
    texts = svg_texts(figures.tuning_history(tuning))
    assert "tuning trial" in texts and "0.5" not in texts and "0.0" not in texts


def test_active_units_axis_counts_in_whole_units(tmp_path):
    texts = svg_texts(figures.active_units(make_view(tmp_path)))
    numbers = [t for t in texts if re.fullmatch(r"[0-9.]+", t)]
    assert numbers and all(re.fullmatch(r"\d+", t) for t in numbers), numbers


def test_training_thumbnails_have_axes():
    history = [{"epoch": float(e), "train_loss": 130.0 - e, "val_neg_elbo": 128.0 - 0.5 * e} for e in range(1, 8)]
    svg = _sparkline(history)
    texts = re.findall(r"<text\b[^>]*>([^<]*)</text>", svg)
    assert "epoch" in texts and "validation -ELBO" in texts
    epochs = [t for t in texts[: texts.index("epoch")] if re.fullmatch(r"[0-9.]+", t)]
    assert len(epochs) >= 2 and all(re.fullmatch(r"\d+", t) for t in epochs), texts  # whole epochs
    assert ' id="' not in svg  # inline: no ids to clash between thumbnails


def test_figures_are_the_same_bytes_every_time(tmp_path):
    view = make_view(tmp_path)
    for draw in (figures.kl_heatmap, figures.rate_distortion, figures.active_units):
        assert draw(view) == draw(view)
    assert base64.b64decode(figures.kl_heatmap(view).split(",", 1)[1]).find(b"<dc:date>") == -1


# ------------------------------------------------------------------------------------ page
def test_rationale_is_a_list_of_its_notes(tmp_path):
    html = page(make_view(tmp_path))
    items = re.findall(r"<li>([^<]*)</li>", html.split('id="rationale"')[1].split("</ul>")[0])
    assert items == SENTENCES  # the notes themselves: nothing is parsed back from prose


@pytest.mark.parametrize("make,head", [(warning, "Not a settled answer"), (caution, "Caution")])
def test_recommendation_warnings_are_shown_above_the_answer(tmp_path, make, head):
    notes = [make("the test split has only 30 samples: too few to measure NLL differences"), make(f"odd {EVIL}")]
    rec = typed([*notes, *(Note(NoteKind.RULE, t) for t in SENTENCES)])
    assert rec.settled is (make is caution)
    html = page(make_view(tmp_path, recommendation=rec))
    box = html.index('id="rec-warnings"')
    assert box < html.index('id="recommended-dim"')
    block = html[box : html.index("</div></div>", box)]
    assert f">{head}<" in block
    assert "The test split has only 30 samples" in block
    assert EVIL not in html and "Odd &lt;script&gt;" in block
    rationale = html.split('id="rationale"')[1].split("</ul>")[0]
    assert "only 30 samples" not in rationale and html.count("only 30 samples") == 1  # said once, in the box
    first = re.search(r'id="rationale"><li>([^<]*)</li>', html).group(1)
    assert first.startswith("Held-out NLL")


def test_a_recommendation_written_before_notes_shows_its_warnings_and_its_rationale_as_written(tmp_path):
    old = {
        "dim": 4,
        "rule": "combined",
        "best_dim": 4,
        "threshold": 1.0,
        "tolerance": 0.05,
        "rel_tol": 0.01,
        "rationale": "Not a settled answer: the grid is too small. " + RATIONALE,
        "warnings": ["the grid is too small"],
        "settled": False,
    }
    rec = Recommendation.from_dict(old)
    assert not rec.settled and rec.warnings == ["the grid is too small"] and rec.rationale == old["rationale"]
    html = page(make_view(tmp_path, recommendation=rec))
    assert ">Not a settled answer<" in html and "The grid is too small." in html
    assert RATIONALE in html  # as it was written: nothing parsed out of it


def test_a_recommendation_without_warnings_shows_no_box(tmp_path):
    html = page(make_view(tmp_path))
    assert 'id="rec-warnings"' not in html and "Not a settled answer" not in html
    html = page(make_view(tmp_path, recommendation=typed([])))
    assert 'id="rec-warnings"' not in html and 'id="rationale"' not in html


def test_notes_round_trip_through_json():
    rec = typed([warning("w1", "edge"), caution("c1"), *(Note(NoteKind.RULE, t) for t in SENTENCES)])
    back = Recommendation.from_dict(rec.to_dict())
    assert back == rec and back.rationale.startswith("Not a settled answer: w1. Note: c1. Held-out NLL")
    assert rec.to_dict()["warnings"] == ["w1", "c1"] and rec.to_dict()["settled"] is False


def test_mmd_to_the_prior_is_explained(tmp_path):
    html = page(make_view(tmp_path))
    assert 'id="mmd-note"' in html and "slightly negative" in html
    assert re.search(r'<th data-col="\d+" tabindex="0" title="gen_mmd is [^"]*">gen_mmd</th>', html)


TUNING = {
    "dim": 4,
    "objective": "neg_elbo",
    "n_trials": 3,
    "baseline": {"value": 101.0, "params": {"lr": 0.001}},
    "best": {"value": 99.0, "params": {"lr": 0.003}, "number": 2},
    "trials": [{"number": i, "state": "COMPLETE", "value": 101.0 - i} for i in range(3)],
    "final_model": "tune/final",
}


def tiny_run(tmp_path: Path, final: object | None) -> Path:
    """A run directory with no trials, a tuning.json and (unless None) tune/final/metrics.json."""
    run = tmp_path / "run"
    run.mkdir()
    write_json(run / RUN_JSON, {"data": {"name": "hand-made"}})
    write_json(run / "tuning.json", TUNING)
    if final is not None:
        (run / "tune" / "final").mkdir(parents=True)
        path = run / "tune" / "final" / "metrics.json"
        if isinstance(final, str):
            path.write_text(final)
        else:
            write_json(path, final)
    return run


def test_tuning_section_shows_the_tuned_test_nll(tmp_path):
    final = {"nll": 80.1234, "neg_elbo": 82.0, "mse": 0.1, "sweep_test": {"nll": 81.25, "neg_elbo": 83.0, "mse": 0.1}}
    view = load_run(tiny_run(tmp_path, final))
    assert view.tuned_test is not None and view.tuned_test["nll"] == 80.1234
    html = page(view)
    assert "test NLL: sweep 81.250 → tuned 80.123 nats" in html
    assert html.index('id="tuned-test"') > html.index('<section id="tuning"')


@pytest.mark.parametrize("final", [None, "{not json", '["a list"]', {"nll": None}])
def test_a_missing_or_corrupt_final_record_just_omits_the_line(tmp_path, final):
    view = load_run(tiny_run(tmp_path, final))
    html = page(view)
    assert '<section id="tuning"' in html and "test NLL" not in html


def test_without_the_sweeps_figure_the_tuned_nll_is_shown_alone(tmp_path):
    html = page(load_run(tiny_run(tmp_path, {"nll": 80.0})))
    assert "test NLL: tuned 80.000 nats" in html


def test_failed_trials_read_from_typed_records(tmp_path):
    view = make_view(tmp_path)
    view.trials.append(TrialRecord(dim=16, seed=0, status=TrialStatus.FAILED, reason=f"nan {EVIL}"))
    html = page(view)
    assert "1 trial(s) failed" in html and EVIL not in html and "nan &lt;script&gt;" in html
    assert '<tr class="failed">' in html and '<span class="badge failed">failed</span>' in html


def test_the_answer_says_how_often_the_bootstrap_chose_it():
    from zdim.report.page import _certainty

    html = _certainty(typed(uncertainty={"resamples": 200, "shares": {"8": 0.09, "4": 0.91}}))
    assert "4 (chosen in 91% of 200 resamples; 8 in 9%)" in html
    assert _certainty(typed()) == ""  # runs without a bootstrap
    # the same words as the rationale: never "100%" beside another size, never "0%" for a size chosen
    html = _certainty(typed(uncertainty={"resamples": 200, "shares": {"4": 0.995, "8": 0.005}}))
    assert "4 (chosen in &gt;99% of 200 resamples; 8 in &lt;1%)" in html
    # with folds the bootstrap redrew them too, and says so
    html = _certainty(typed(uncertainty={"resamples": 200, "shares": {"4": 0.9, "8": 0.1}, "seeds": 3, "folds": 5}))
    assert "4 (chosen in 90% of 200 resamples of the held-out samples, seeds and folds; 8 in 10%)" in html


def test_the_intrinsic_dimension_check_is_shown_with_its_figures(tmp_path):
    cap = {"intrinsic": 6.4, "twonn": 6.2, "mle": 6.6, "answer": 4, "sizes": {"3": {"gap": 2.5, "paired_se": 0.4}}}
    text = "the data's intrinsic dimension is about 6.4, but the answer is 4: a size-3 VAE stays 2.50 nats worse"
    html = page(make_view(tmp_path, recommendation=typed([caution(text, "capacity")], capacity=cap)))
    assert "intrinsic-dimension check" in html and "size 3: +2.50 nats (paired SE 0.40)" in html  # an older run
    cap["sizes"]["3"]["se"] = 0.75  # the SE of the gap, never below what the seeds show (issue 37)
    html = page(make_view(tmp_path, recommendation=typed([caution(text, "capacity")], capacity=cap)))
    assert "size 3: +2.50 nats (SE 0.75)" in html and "paired SE" not in html
    assert "The data&#x27;s intrinsic dimension is about 6.4" in html  # the sentence itself, above the answer


def test_neighbouring_sizes_added_by_refinement_do_not_overlap_their_labels():
    from zdim.report.figures import size_labels

    dims = [1, 2, 4, 8, 16, 23, 24, 26, 32, 64]
    labels = size_labels(dims, log=True)
    assert labels[0] == "1" and labels[-1] == "64" and len(labels) == len(dims)
    shown = [d for d, s in zip(dims, labels) if s]
    assert not {23, 24} <= set(shown) and not {24, 26} <= set(shown)  # one label among close neighbours
    assert size_labels([2, 4, 8], log=False) == ["2", "4", "8"]
