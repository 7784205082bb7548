"""The HTML report: built from the run directory alone, self-contained, escaped, and checked in a real
headless Chromium (no console errors, no network requests, every section visible)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import zdim
from zdim.cli import main
from zdim.data.dataset import load_data
from zdim.files import read_json, write_json
from zdim.sweeps.planning.config import SweepConfig
from zdim.sweeps.records.layout import INPUTS_FILE, REPORT_HTML
from zdim.testing import make_planted_data
from zdim.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(hidden=(16,), k=5, train=TrainConfig(epochs=3, patience=0))
# a sweep runs in settle mode by default: its report draws when the answer settled, after the summary
IMAGE_SECTIONS = [
    "summary",
    "settle",
    "curves",
    "rate-distortion",
    "kl-units",
    "reconstructions",
    "samples",
    "latent",
    "training",
    "trials",
]
TABLE_SECTIONS = [
    "summary",
    "settle",
    "curves",
    "rate-distortion",
    "kl-units",
    "feature-error",
    "latent",
    "training",
    "trials",
]
EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "digits"
    zdim.sweep("digits", config=SweepConfig(dims=(1, 2, 4), seeds=2, **TINY), out=out, max_samples=300)
    return out


@pytest.fixture(scope="module")
def table_run(tmp_path_factory) -> Path:
    """A CSV with hostile column names and string labels: everything shown must come out escaped."""
    folder = tmp_path_factory.mktemp("report_csv")
    x = make_planted_data(2, 6, 300, seed=3)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(5)] + ['<img src=x onerror="alert(2)">'])
    frame["kind"] = np.where(x[:, 0] > np.median(x[:, 0]), "high & <b>", "low")
    csv = folder / "table.csv"
    frame.to_csv(csv, index=False)
    data = load_data(csv, label_column="kind")
    out = folder / "run"
    zdim.sweep(replace(data, name=EVIL), config=SweepConfig(dims=(1, 2, 3), **TINY), out=out)
    return out


def sections(html: str) -> list[str]:
    return re.findall(r'<section id="([^"]+)"', html)


def test_a_sweep_writes_the_report_with_every_section_of_image_data(image_run):
    html = (image_run / REPORT_HTML).read_text()
    assert sections(html) == IMAGE_SECTIONS
    rec = read_json(image_run / "recommendation.json")
    assert f'<div class="big" id="recommended-dim">{rec["dim"]}</div>' in html
    for trial in (image_run / "trials").iterdir():  # every trial is in the table and has its details
        assert f'href="#trial-{trial.name}"' in html and f'<details id="trial-{trial.name}">' in html
    assert len(re.findall(r'<tr(?: class="rec")?><th>size ', html)) == 3 * 2  # recon + sample row per size
    assert 'id="fig-gen-fd"' in html and 'id="fig-gen-prdc"' in html  # generation quality per size


def test_the_report_is_one_self_contained_file(image_run):
    html = (image_run / REPORT_HTML).read_text()
    links = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert links and all(u.startswith(("data:", "#")) for u in links), [
        u[:40] for u in links if not u.startswith(("data:", "#"))
    ]
    assert "<link" not in html and "@import" not in html and "url(" not in html
    # no lazy images: a lazy figure far below the fold was sometimes never decoded in Chromium
    assert 'loading="lazy"' not in html and html.count("<img") >= 5


def test_zdim_report_rebuilds_from_the_run_directory_alone(image_run, tmp_path, capsys):
    run = tmp_path / "copy"
    shutil.copytree(image_run, run)
    (run / REPORT_HTML).unlink()
    weights = {p: p.stat().st_mtime_ns for p in run.glob("trials/*/model.safetensors")}
    assert main(["report", str(run)]) == 0
    assert f"Report: {run / REPORT_HTML}" in capsys.readouterr().out
    assert sections((run / REPORT_HTML).read_text()) == IMAGE_SECTIONS
    assert {p: p.stat().st_mtime_ns for p in run.glob("trials/*/model.safetensors")} == weights


def test_tabular_data_gets_per_feature_error_and_a_latent_view(table_run):
    html = (table_run / REPORT_HTML).read_text()
    assert sections(html) == TABLE_SECTIONS
    assert "Coloured by label." in html


def test_user_provided_names_are_escaped(table_run):
    html = (table_run / REPORT_HTML).read_text()
    assert EVIL not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "onerror" not in html.replace("onerror=&quot;", "")  # the column name only appears escaped
    assert html.count("<script>") == 1  # ours: the table sorter


def test_failed_trials_and_a_missing_inputs_file_still_give_a_report(image_run, tmp_path):
    run = tmp_path / "partial"
    shutil.copytree(image_run, run)
    (run / INPUTS_FILE).unlink()
    metrics = run / "trials" / "dim-004-seed-1" / "metrics.json"
    rec = read_json(metrics)
    write_json(
        metrics,
        {
            "trial": rec["trial"],
            "dim": 4,
            "seed": 1,
            "status": "failed",
            "reason": f"loss became nan at epoch 2 {EVIL}",
        },
    )
    html = zdim.build_report(run).read_text()
    assert "1 trial(s) failed" in html and EVIL not in html
    assert "reconstructions" not in sections(html)  # no inputs saved: no pictures, the rest is there
    assert {"summary", "curves", "trials"} <= set(sections(html))


def test_the_intrinsic_dimension_marker_reads_what_a_sweep_records(image_run, tmp_path):
    from zdim.report.collect import load_run
    from zdim.sweeps.records.layout import RUN_JSON

    run = tmp_path / "with_id"
    shutil.copytree(image_run, run)
    assert load_run(run).intrinsic_dim is None  # the grid was given: no estimate was made
    info = read_json(run / RUN_JSON)
    info["intrinsic_dim"] = {
        "dim": 7,
        "twonn": 6.5,
        "twonn_std": 0.1,
        "mle": 7.3,
        "mle_std": 0.2,
        "n": 300,
        "repeats": 3,
        "seed": 0,
        "values": {},
    }
    write_json(run / RUN_JSON, info)
    assert load_run(run).intrinsic_dim == pytest.approx(6.9)  # the mean of both methods, not the rounded 7


def test_the_report_reads_typed_trial_records(image_run):
    from zdim.records import TrialRecord
    from zdim.report.collect import load_run

    view = load_run(image_run)
    assert len(view.trials) == 6 and all(isinstance(t, TrialRecord) for t in view.trials)
    assert [t.key for t in view.trials] == sorted(t.key for t in view.trials)
    assert set(view.histories) == {t.trial for t in view.trials}


def _unstamped(html: str) -> str:
    return re.sub(r"built [^<]* from the run directory", "built (time) from the run directory", html)


def test_the_same_run_gives_the_same_report(image_run, tmp_path):
    a = zdim.build_report(image_run, out=tmp_path / "a.html").read_text()
    b = zdim.build_report(image_run, out=tmp_path / "b.html").read_text()
    assert _unstamped(a) == _unstamped(b)  # figures included (svg.hashsalt, no date in their metadata)
    assert "<dc:date>" not in a


NO_SIDE_EFFECTS = """
import copy, sys
import matplotlib
matplotlib.rcParams["font.size"] = 13.0  # the user's own settings, which the report must not touch
matplotlib.rcParams["axes.grid"] = False
backend = matplotlib.get_backend()
before = copy.deepcopy(dict(matplotlib.rcParams))
import zdim
zdim.build_report(sys.argv[1], out=sys.argv[2])
after = dict(matplotlib.rcParams)
changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
assert matplotlib.get_backend() == backend, ("backend changed", backend, matplotlib.get_backend())
assert not changed, ("rcParams changed", changed)
assert "matplotlib.pyplot" not in sys.modules, "the report imported pyplot"
print("unchanged", backend)
"""


def test_building_a_report_leaves_matplotlib_as_the_user_set_it(image_run, tmp_path):
    """``zdim.sweep(...)`` in a notebook must not switch the backend or restyle the user's plots."""
    out = tmp_path / "report.html"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "MPLBACKEND": "pdf"}  # a backend that is not Agg
    p = subprocess.run(
        [sys.executable, "-c", NO_SIDE_EFFECTS, str(image_run), str(out)], capture_output=True, text=True, env=env
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip() == "unchanged pdf" and out.is_file()
    assert sections(out.read_text()) == IMAGE_SECTIONS


def test_report_of_something_that_is_not_a_run_is_one_line_exit_2(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "zdim", "report", str(tmp_path)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
    )
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "no run.json" in p.stderr
    assert not (tmp_path / REPORT_HTML).exists()


# ---------------------------------------------------------------------------------- real browser
def _browser_module():
    spec = importlib.util.spec_from_file_location("screenshot_report", ROOT / "scripts" / "screenshot_report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def _chromium_or_skip():
    missing = [p for p in ("/usr/bin/chromium", "/usr/bin/chromedriver") if not Path(p).exists()]
    if missing:
        pytest.skip(
            f"headless Chromium is not installed ({', '.join(missing)} missing): "
            "apt-get install chromium chromium-driver (as .ci/run does)"
        )
    pytest.importorskip("selenium", reason="selenium is not installed: pip install -e '.[dev]'")
    return _browser_module()


@pytest.fixture
def browser(tmp_path):
    mod = _chromium_or_skip()
    driver = mod.open_chromium(1280, 1000, str(tmp_path / "profile"))
    yield mod, driver
    driver.quit()


def _load(mod, driver, path: Path):
    driver.get_log("performance")  # drain the start page's own requests
    driver.get(path.resolve().as_uri())
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    return errors, mod.network_requests(driver)


def test_report_in_headless_chromium(browser, image_run, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    mod, driver = browser
    errors, requests = _load(mod, driver, image_run / REPORT_HTML)
    assert errors == [], errors
    assert requests == [], requests
    rec = read_json(image_run / "recommendation.json")
    assert driver.find_element(By.ID, "recommended-dim").text == str(rec["dim"])
    # the answer beside its table: one row per size, the answer's row marked, each gap as recorded
    rows = driver.find_elements(By.CSS_SELECTOR, "#sizes tbody tr")
    assert [r.find_elements(By.TAG_NAME, "td")[0].text for r in rows] == [str(d["dim"]) for d in rec["per_dim"]]
    chosen = driver.find_element(By.CSS_SELECTOR, "#sizes tr.chosen")
    assert chosen.find_elements(By.TAG_NAME, "td")[0].text == str(rec["dim"]) and "answer" in chosen.text
    gaps = [r.find_elements(By.TAG_NAME, "td")[3].text for r in rows]
    assert gaps == [f"{d['gap']:+.2f}" for d in rec["per_dim"]]
    for sec in IMAGE_SECTIONS:
        el = driver.find_element(By.ID, sec)
        assert el.is_displayed() and el.size["height"] > 50, sec
    # Data-URI images decode asynchronously; on a loaded machine allow them a few seconds.
    from selenium.webdriver.support.ui import WebDriverWait

    decoded = "return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
    try:
        WebDriverWait(driver, 20).until(lambda d: d.execute_script(decoded))
    except Exception:
        broken = driver.execute_script(
            "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
            ".map(i => (i.alt || i.id || '?') + ' complete=' + i.complete + ' width=' + i.naturalWidth)"
        )
        raise AssertionError(f"embedded figures failed to decode: {broken}") from None
    header = driver.find_element(By.CSS_SELECTOR, '#trials-table th[data-col="4"]')  # NLL column
    header.click()
    header.click()  # descending
    nll = [
        float(td.get_attribute("data-sort"))
        for td in driver.find_elements(By.CSS_SELECTOR, "#trials-table tbody td:nth-child(5)")
    ]
    assert len(nll) == 6, nll
    assert nll == sorted(nll, reverse=True), nll
    shot = tmp_path / "report.png"
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text


def test_escaped_report_runs_no_script_in_chromium(browser, table_run):
    from selenium.common.exceptions import NoAlertPresentException

    mod, driver = browser
    errors, requests = _load(mod, driver, table_run / REPORT_HTML)
    assert errors == [], errors
    assert requests == [], requests
    assert EVIL in driver.title  # shown as text
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text
    # Gaussian data (issue 36): the table beside the answer has the linear model of each size, as recorded
    from selenium.webdriver.common.by import By

    rec = read_json(table_run / "recommendation.json")
    heads = [h.text for h in driver.find_elements(By.CSS_SELECTOR, "#sizes thead th")]
    col = heads.index("linear")
    cells = [
        r.find_elements(By.TAG_NAME, "td")[col].text for r in driver.find_elements(By.CSS_SELECTOR, "#sizes tbody tr")
    ]
    assert cells == [f"{d['linear_mean']:.2f}" for d in rec["per_dim"]]


def test_report_fits_a_narrow_screen(browser, image_run):
    mod, driver = browser
    driver.set_window_size(420, 900)
    _load(mod, driver, image_run / REPORT_HTML)
    overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow} px at 420 px wide"


def test_zdim_tune_adds_a_tuning_section(image_run, tmp_path):
    run = tmp_path / "tuned"
    shutil.copytree(image_run, run)
    assert main(["tune", str(run), "--trials", "2", "--epochs", "1", "--quiet"]) == 0
    html = (run / REPORT_HTML).read_text()
    assert "tuning" in sections(html) and 'id="fig-tuning"' in html
    tuning = read_json(run / "tuning.json")
    assert f"Tuning at latent size {tuning['dim']}" in html
