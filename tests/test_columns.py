"""Tables with categorical columns (issue 31): column kinds, their encoding, the mixed likelihood."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import zdim
from zdim.data.columns import UNKNOWN, Columns
from zdim.data.dataset import read_data
from zdim.data.preprocessing import Preprocessing
from zdim.errors import DataError
from zdim.likelihoods import get
from zdim.mixed import Layout
from zdim.testing import make_planted_table

ROOT = Path(__file__).resolve().parents[1]


def _table(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "smoker": rng.choice(["no", "yes"], n),
            "flag": rng.choice([0, 1], n),
            "city": rng.choice(["Oslo", "Lima", "Pune", "Kobe"], n),
            "ok": rng.choice([True, False], n),
            "count": rng.integers(0, 9, n),
        }
    )


def test_column_kinds_and_layout() -> None:
    t = _table()
    cols = Columns.fit(t, "t")
    kinds = {c.name: c.kind for c in cols.columns}
    assert kinds == {
        "age": "number",
        "smoker": "binary",
        "flag": "binary",
        "city": "category",
        "ok": "binary",
        "count": "number",
    }
    city = next(c for c in cols.columns if c.name == "city")
    assert city.values == ("Kobe", "Lima", "Oslo", "Pune", UNKNOWN)
    assert cols.layout == Layout(2, 3, (5,))
    assert cols.likelihood == "mixed:g2,b3,c5" and Layout.parse(cols.likelihood) == cols.layout
    assert cols.layout.columns == 6 and cols.layout.width == 10


def test_encode_decode_round_trip_and_json() -> None:
    t = _table()
    cols = Columns.from_dict(Columns.fit(t, "t").to_dict())  # through JSON's kinds of values
    x = cols.encode(t, "t")
    assert x.shape == (60, 10) and set(np.unique(x[:, 2:])) <= {0.0, 1.0}
    np.testing.assert_array_equal(x[:, 5:].sum(1), 1.0)  # one category per row
    back = cols.decode(x)
    assert list(back.columns) == list(t.columns)
    np.testing.assert_allclose(back["age"], t["age"], rtol=1e-6)
    for name in ("smoker", "flag", "city", "ok", "count"):
        assert [str(v) for v in back[name]] == [str(v) for v in t[name].astype(back[name].dtype)], name


def test_unseen_category_goes_to_unknown_and_binary_refuses() -> None:
    t = _table()
    cols = Columns.fit(t, "t")
    new = t.head(2).copy()
    new.loc[0, "city"] = "Accra"
    x = cols.encode(new, "rows")
    assert x[0, 5 + 4] == 1.0  # the <unknown> bucket, last of city's block
    new.loc[1, "smoker"] = "sometimes"
    with pytest.raises(DataError, match=r"column 'smoker' takes two values .*'no' and 'yes'.*'sometimes' at row 1"):
        cols.encode(new, "rows")


def test_log_prob_against_torch_distributions() -> None:
    lay = Layout(2, 1, (3, 4))
    fam = get(lay.name)
    torch.manual_seed(0)
    out = torch.randn(5, lay.width)
    cats = [torch.randint(0, k, (5,)) for k in lay.categories]
    x = torch.cat(
        [
            torch.randn(5, 2),
            torch.randint(0, 2, (5, 1)).float(),
            *(torch.eye(k)[c] for k, c in zip(lay.categories, cats)),
        ],
        dim=1,
    )
    log_sigma = torch.randn(lay.width) * 0.3
    got = fam.log_prob(x, out, {"log_sigma": log_sigma})
    d = torch.distributions
    want = d.Normal(out[:, :2], log_sigma[:2].exp()).log_prob(x[:, :2]).sum(1)
    want += d.Bernoulli(logits=out[:, 2]).log_prob(x[:, 2])
    for (s, e), c in zip(lay.blocks(), cats):
        want += d.Categorical(logits=out[:, s:e]).log_prob(c)
    torch.testing.assert_close(got, want)
    # a leading member axis (stacked, nested) broadcasts
    assert fam.log_prob(x, out.expand(3, 5, -1), {"log_sigma": log_sigma.expand(3, 1, -1)}).shape == (3, 5)
    mean = fam.mean(out)
    for s, e in lay.blocks():
        torch.testing.assert_close(mean[:, s:e].sum(1), torch.ones(5))
    ref = fam.reference(x, x)  # the per-column model that ignores the latents, by hand
    assert ref is not None and ref.baseline.shape == (5,)
    xd = x.double()
    want = -d.Normal(xd[:, :2].mean(0), xd[:, :2].std(0)).log_prob(xd[:, :2]).sum(1)
    want -= d.Bernoulli(probs=xd[:, 2].mean().clamp(1e-6, 1 - 1e-6)).log_prob(xd[:, 2])
    for (s, e), c in zip(lay.blocks(), cats):
        freq = xd[:, s:e].mean(0).clamp(min=1e-6)
        want -= d.Categorical(probs=freq / freq.sum()).log_prob(c)
    np.testing.assert_allclose(ref.baseline, want.numpy(), rtol=1e-6)


def test_read_data_mixed_table_and_refusals(tmp_path: Path) -> None:
    t = _table(200)
    data = read_data(t)
    assert data.likelihood == "mixed:g2,b3,c5" and data.n_features == 10
    assert data.feature_names is not None and data.feature_names[5] == "city=Kobe"
    # only the numbers are standardized
    assert data.std is not None and data.mean is not None
    assert (data.std[2:] == 1).all() and (data.mean[2:] == 0).all()
    assert abs(float(data.train[:, 0].mean())) < 1e-5
    pre = Preprocessing.from_dict(data.preprocessing.to_dict())
    assert pre.columns == data.extra["columns"]
    with pytest.raises(DataError, match=r"text column\(s\) 'smoker', 'city'.*likelihood 'gaussian'.*auto"):
        read_data(t, likelihood="gaussian")
    # a table of numbers with a two-valued column (issue 37): the column modelled as yes/no, and said;
    # Gaussian when asked for, and a table of numbers without one stays Gaussian
    num = t[["age", "flag", "count"]]
    assert read_data(num).likelihood == "mixed:g2,b1,c"
    assert read_data(num).extra["notes"] == ["column 'flag' takes two values, 0 and 1: modelled as yes/no (1 is yes)"]
    assert read_data(num, likelihood="gaussian").likelihood == "gaussian"
    assert read_data(num, likelihood="mixed").likelihood == "mixed:g2,b1,c"
    assert read_data(t[["age", "count"]]).likelihood == "gaussian"
    bad = t.copy()
    bad.loc[7, "count"] = np.nan
    with pytest.raises(DataError, match=r"1 NaN .* row 7, column 1 \('count'\)"):
        read_data(bad)
    with pytest.raises(DataError, match="likelihood 'mixed' is for tables"):
        read_data("digits", likelihood="mixed")
    # labels are still taken out
    lab = read_data(t, label_column="city")
    assert lab.likelihood == "mixed:g2,b3,c" and lab.y_train is not None


@pytest.mark.filterwarnings("ignore::zdim.UnsettledAnswerWarning")
def test_saved_model_takes_and_gives_raw_rows(tmp_path: Path) -> None:
    t = make_planted_table(1, 3, (3,), 1, n=200, seed=2)
    r = zdim.sweep(t, dims=[1], seeds=1, epochs=3, hidden=[32], out=tmp_path / "run", folds=1)
    best = r.trials[0]
    assert best.baseline_nll is not None and best.nll is not None and best.generation
    m = zdim.load_model(tmp_path / "run" / "trials" / "dim-001-seed-0")
    assert m.transform(t.head(7)).shape == (7, 1)
    back = m.reconstruct(t.iloc[3:10])
    assert list(back.columns) == list(t.columns) and set(back["bin0"]) <= {"no", "yes"}
    assert list(back.index) == list(range(3, 10))
    assert set(m.sample(5, seed=0)["cat0"]) <= {"a", "b", "c", UNKNOWN}
    assert np.isfinite(m.score(t.head(7)))
    new = t.head(2).copy()
    new.loc[0, "cat0"] = "never seen"
    assert m.transform(new).shape == (2, 1)  # the <unknown> bucket
    with pytest.raises(DataError, match="lacks column"):
        m.transform(t.drop(columns="cat0"))
    # issue 37: its errors name the table's columns, never "feature 1" nor the encoded width
    holed = t.head(3).copy()
    holed.loc[1, "num1"] = np.nan
    with pytest.raises(DataError, match=r"first at row 1, column 'num1': nan"):
        m.transform(holed)
    wanted = r"a table of 5 columns \('num0', 'num1', 'num2', 'bin0', 'cat0', 8 features encoded\): pass a DataFrame"
    with pytest.raises(DataError, match=r"^X holds strings \(dtype object\); this model was trained on " + wanted):
        m.transform(t.head(3).to_numpy())
    with pytest.raises(DataError, match=r"^X has 3 features per sample; this model was trained on " + wanted):
        m.transform(t[["num0", "num1", "num2"]].head(3).to_numpy())


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::zdim.UnsettledAnswerWarning")
def test_planted_table_sweep_finds_d(tmp_path: Path) -> None:
    t = make_planted_table(2, 6, (3, 4), 1, n=1200, seed=0)
    r = zdim.sweep(t, dims=[1, 2, 4], seeds=1, epochs=40, out=tmp_path / "run", folds=1)
    assert r.data["likelihood"] == "mixed:g6,b1,c4.5"
    assert r.recommendation.dim == 2
    m = zdim.load_model(tmp_path / "run" / "trials" / "dim-002-seed-0")
    back = m.reconstruct(t.head(50))
    assert (back["cat0"] == t["cat0"].head(50)).mean() >= 0.7  # categories come back from 2 latents


@pytest.mark.slow
def test_cli_sweep_on_mixed_csv(tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    make_planted_table(1, 3, (3,), 1, n=300, seed=1).to_csv(csv, index=False)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "zdim", "sweep", str(csv), "--dims", "1,2", "--seeds", "1", "--epochs", "5"]
    done = subprocess.run(
        [*cmd, "--folds", "1", "--out", str(out)], capture_output=True, text=True, env={"PYTHONPATH": str(ROOT / "src")}
    )
    assert done.returncode == 0, done.stderr
    assert (out / "recommendation.json").is_file() and (out / "report.html").is_file()
    assert "mixed:g3,b1,c4" in (out / "run.json").read_text()


def test_columns_that_cannot_inform_a_model_are_named_before_training(tmp_path: Path, capsys, monkeypatch) -> None:
    """Issue 37, item 3: a column holding one value is dropped and said; an identifier or date (a distinct
    text value in nearly every row) is refused in one line naming it (exit 2, nothing written), unless
    --keep-columns keeps it; a two-valued numeric column is modelled as yes/no and said."""
    from zdim.cli import main
    from zdim.errors import DataNoteWarning
    from zdim.report.collect import load_run
    from zdim.report.page import _summary

    monkeypatch.setattr("zdim.printing.write_report", lambda *a: None)  # its summary alone is read below

    t = _table(200)[["age", "flag", "count", "city"]]
    t = t.assign(unit="kg", id=[f"P{i:04d}" for i in range(200)], day=pd.date_range("2024-01-01", periods=200))
    t["day"] = t["day"].astype(str)
    t.to_csv(tmp_path / "t.csv", index=False)
    out = tmp_path / "run"
    argv = ["sweep", str(tmp_path / "t.csv"), "--dims", "1", "--seeds", "1", "--epochs", "1", "--hidden", "8",
            "--k", "2", "--folds", "1", "--no-refine", "--no-extend", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "text column 'id' holds a distinct value in 200 of its 200 rows" in err
    assert "an identifier or a date" in err and "keep it with --keep-columns 'id'" in err and not out.exists()
    assert main([*argv, "--keep-columns", "id,day", "--resume"]) == 2  # no run to resume: refused in execute
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'unit'" not in err  # the notes wait for every check: one line still
    assert main([*argv, "--keep-columns", "id,day"]) == 0
    err = capsys.readouterr().err
    assert "zdim: t: column 'unit' holds one value ('kg') in every row: dropped" in err
    assert "column 'flag' takes two values, 0 and 1: modelled as yes/no (1 is yes)" in err and "'id'" not in err
    info = zdim.files.read_json(out / "run.json")
    assert info["loader"]["keep_columns"] == ["id", "day"] and len(info["data"]["notes"]) == 2
    assert info["data"]["likelihood"].startswith("mixed:g2,b1,")  # age, count; flag; city, id, day
    assert "column &#x27;unit&#x27; holds one value" in _summary(load_run(out))  # said in the report
    with pytest.raises(DataError, match=r"text column 'day' .*keep_columns='day'$"):
        zdim.load_data(t, keep_columns=["id"])
    with pytest.warns(DataNoteWarning, match=r"keep_columns='unit' keeps it"):
        zdim.load_data(t, keep_columns=["id", "day"])
    with pytest.raises(DataError, match="keep_columns names column 'nope', which the table does not have"):
        zdim.load_data(t, keep_columns="nope")


def test_a_two_valued_feature_of_an_array_is_said_and_left_gaussian() -> None:
    """An array has no column names to build a yes/no column from: a feature with two values stays under the
    Gaussian ``auto`` chose, and a note says what that does to the NLL and how to model it as yes/no (a table);
    asked for a likelihood, or given a feature with a third value, it says nothing."""
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(size=300), rng.choice([1.0, 2.0], size=300), rng.normal(size=300)])
    data = read_data(x)
    assert data.likelihood == "gaussian"
    (note,) = data.extra["notes"]
    assert note.startswith("feature 2 takes two values, 1 and 2: under a Gaussian") and "as a table" in note
    assert not read_data(x, likelihood="gaussian").extra.get("notes")
    x[0, 1] = 3.0
    assert not read_data(x).extra.get("notes")
    framed = read_data(pd.DataFrame(x[1:], columns=["a", "flag", "b"]))  # the same columns as a table
    assert framed.likelihood.startswith("mixed") and "modelled as yes/no" in framed.extra["notes"][0]
