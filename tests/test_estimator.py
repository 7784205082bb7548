"""VAETransformer: scikit-learn's estimator battery, pipelines, grid search and known answers."""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import zdim
from zdim.errors import ConfigError
from zdim.estimator import VAETransformer
from zdim.testing import make_planted_data

TINY = dict(hidden=(8,), epochs=3, k=5)


@parametrize_with_checks([VAETransformer(latent_dim=2, **TINY), VAETransformer(latent_dim="auto", **TINY)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def planted(n=400, d=2, D=6, seed=0):
    return make_planted_data(d, D, n, seed=seed, noise=0.05)


def test_exported_from_package():
    assert zdim.VAETransformer is VAETransformer and "VAETransformer" in zdim.__all__


def test_fit_transform_inverse_sample_shapes_and_units():
    x = planted() * 10.0 + 100.0  # far from the unit scale: inverse_transform must undo the standardization
    est = VAETransformer(latent_dim=3, hidden=(32,), epochs=30, batch_size=32, patience=0).fit(x)
    assert est.latent_dim_ == 3 and est.n_features_in_ == 6 and est.likelihood_ == "gaussian"
    assert est.sweep_result_ is None and len(est.history_) == 30
    z = est.transform(x)
    assert z.shape == (400, 3) and z.dtype == np.float32
    back = est.inverse_transform(z)
    assert back.shape == x.shape
    assert np.abs(back.mean(0) - x.mean(0)).max() < 0.5 * x.std(0).min()  # in the data's units
    assert ((back - x) ** 2).mean() < 0.5 * x.var(0).mean()  # reconstructs, better than the mean
    s = est.sample(5, random_state=1)
    assert s.shape == (5, 6) and np.array_equal(s, est.sample(5, random_state=1))
    assert not np.array_equal(s, est.sample(5, random_state=2))
    assert list(est.get_feature_names_out()) == ["vaetransformer0", "vaetransformer1", "vaetransformer2"]


def test_score_is_in_the_units_of_x():
    """Fitting on 10*X trains the same model (the data are standardized); its ELBO per sample is lower by
    exactly D*log(10), the log-Jacobian of the scaling."""
    x = planted()
    a = VAETransformer(latent_dim=2, hidden=(16,), epochs=5).fit(x)
    b = VAETransformer(latent_dim=2, hidden=(16,), epochs=5).fit(10.0 * x)
    assert b.score(10.0 * x) == pytest.approx(a.score(x) - 6 * np.log(10.0), abs=0.05)
    noise = np.random.default_rng(0).normal(size=x.shape).astype(np.float32) * 3
    assert a.score(x) > a.score(noise)  # data the model was fit on is more likely than noise


def test_binary_data_use_bernoulli():
    rng = np.random.default_rng(0)
    x = (rng.random((200, 12)) < 0.3).astype(np.float64)
    est = VAETransformer(latent_dim=2, hidden=(8,), epochs=3).fit(x)
    assert est.likelihood_ == "bernoulli" and est.mean_ is None
    back = est.inverse_transform(est.transform(x))
    assert back.min() >= 0 and back.max() <= 1


def nll_of(result, dim):
    return next(r["nll_mean"] for r in result.recommendation.per_dim if r["dim"] == dim)


def test_auto_searches_and_keeps_the_recommended_model():
    x = planted(n=600)
    est = VAETransformer(latent_dim="auto", dims=(1, 2, 4), hidden=(32,), epochs=40, batch_size=32, k=10).fit(x)
    rec = est.sweep_result_.recommendation
    tried = {t.dim for t in est.sweep_result_.trials}  # the grid asked for, and what refine and extend added
    assert est.latent_dim_ == rec.dim and {1, 2, 4} <= tried and rec.dim in tried
    assert nll_of(est.sweep_result_, 1) > nll_of(est.sweep_result_, 2)  # one unit cannot hold a 2-D manifold
    trial = next(t for t in est.sweep_result_.trials if t.dim == rec.dim)
    # the retrained model is the sweep's trial: same seed, same data, same best validation -ELBO
    assert min(h["val_neg_elbo"] for h in est.history_) == pytest.approx(trial.best_val_neg_elbo, rel=1e-6)
    assert est.transform(x).shape == (600, est.latent_dim_)


def test_in_a_pipeline_with_a_scaler():
    x = planted() * 5.0 + 3.0
    pipe = Pipeline([("scale", StandardScaler()), ("vae", VAETransformer(latent_dim=2, hidden=(16,), epochs=5))])
    z = pipe.fit_transform(x)
    assert z.shape == (400, 2) and np.isfinite(z).all()
    assert np.isfinite(pipe.score(x))
    assert pipe.inverse_transform(z).shape == x.shape


def test_grid_search_over_latent_dim_uses_the_held_out_elbo():
    """GridSearchCV ranks sizes by ``score`` (held-out ELBO) on each fold, as a hand-written loop does."""
    x = planted(n=300)
    folds = list(KFold(n_splits=2).split(x))
    grid = GridSearchCV(VAETransformer(hidden=(16,), epochs=5), {"latent_dim": [1, 3]}, cv=folds).fit(x)
    by_hand = {
        dim: np.mean([VAETransformer(latent_dim=dim, hidden=(16,), epochs=5).fit(x[a]).score(x[b]) for a, b in folds])
        for dim in (1, 3)
    }
    scores = dict(zip(grid.cv_results_["param_latent_dim"], grid.cv_results_["mean_test_score"]))
    assert scores == pytest.approx(by_hand, rel=1e-6) and np.isfinite(list(scores.values())).all()
    best = max(by_hand, key=by_hand.get)
    assert grid.best_params_ == {"latent_dim": best} and grid.best_estimator_.latent_dim_ == best


@pytest.mark.parametrize(
    "latent_dim,match", [(0, "not a positive integer"), ("big", "not a positive integer"), (7, "exceeds the 6 feature")]
)
def test_bad_latent_dim_is_a_clear_error(latent_dim, match):
    with pytest.raises(ConfigError, match=match):
        VAETransformer(latent_dim=latent_dim, **TINY).fit(planted(n=50))


def test_feature_constant_in_training_keeps_scores_finite():
    """A column that is constant when fitting (a blank pixel in one CV fold) but varies later must give a
    finite, low score, not NaN: zdim scales such a column by 1, not by load_data's 1e-6 floor."""
    x = planted(n=200)
    x[:, 0] = 0.0
    est = VAETransformer(latent_dim=2, hidden=(16,), epochs=3).fit(x)
    assert est.std_[0] == 1.0
    other = x.copy()
    other[:, 0] = 5.0
    assert np.isfinite(est.transform(other)).all()
    assert np.isfinite(est.score(other)) and est.score(other) < est.score(x)


def test_pickle_carries_safetensors_not_a_torch_module():
    import pickle

    x = planted(n=100)
    est = VAETransformer(latent_dim=2, **TINY).fit(x)
    raw = pickle.dumps(est)
    assert b"torch" not in raw  # no torch class is referenced: the weights travel as safetensors bytes
    back = pickle.loads(raw)
    assert np.array_equal(back.transform(x), est.transform(x)) and back.score(x) == est.score(x)
    assert "model_" in est.__dict__  # pickling left the original intact


def test_defaults_are_the_sweeps():
    from zdim.sweeps.planning.config import SweepConfig

    est, cfg = VAETransformer(), SweepConfig(dims=(2,))
    assert tuple(est.hidden) == cfg.hidden == (512, 256) and est.k == cfg.k == 100


def test_fitted_and_pickled_estimator_carries_its_preprocessing():
    import pickle

    x = planted(n=100) * 10.0 + 50.0
    est = VAETransformer(latent_dim=2, **TINY).fit(x)
    pre = est.preprocessing_
    assert pre.likelihood == "gaussian" and pre.scale == 1.0 and pre.n_features == 6
    np.testing.assert_array_equal(pre.mean, est.mean_)
    raw = pickle.dumps(est)
    assert b"zdim.data.dataset" not in raw  # carried as the model.json form (plain lists), like the weights
    back = pickle.loads(raw)
    assert back.preprocessing_.to_dict() == pre.to_dict()


def test_a_dataframe_with_text_columns_is_read_as_the_sweep_reads_it():
    """Issue 37, item 4: fit and transform a table with text columns (as zdim.sweep reads it), rows it
    cannot take are one ZdimError naming the column, and inverse_transform honours set_output."""
    from zdim.testing import make_planted_table

    t = make_planted_table(1, 3, (3,), 1, n=200, seed=2)  # num0..num2, bin0 (yes/no), cat0 (a, b, c)
    est = VAETransformer(latent_dim=2, **TINY).fit(t)
    assert est.likelihood_ == "mixed:g3,b1,c4" and est.n_features_in_ == 5
    assert list(est.feature_names_in_) == list(t.columns)
    z = est.transform(t.head(7))
    assert z.shape == (7, 2) and np.isfinite(est.score(t))
    back = est.inverse_transform(z)  # the table's own columns, each category its most likely value
    assert list(back.columns) == list(t.columns) and set(back["cat0"]) <= {"a", "b", "c", "<unknown>"}
    assert list(est.sample(3, random_state=0).columns) == list(t.columns)
    with pytest.raises(zdim.ZdimError, match=r"^X: lacks column\(s\) 'cat0' of the 5"):
        est.transform(t.drop(columns="cat0"))
    holed = t.head(4).copy()
    holed.loc[2, "num1"] = np.nan
    with pytest.raises(zdim.ZdimError, match=r"first at row 2, column 'num1'"):
        est.transform(holed)
    with pytest.raises(zdim.ZdimError, match=r"text column\(s\) 'bin0', 'cat0' cannot have likelihood 'gaussian'"):
        VAETransformer(latent_dim=2, likelihood="gaussian", **TINY).fit(t)
    numbers = t[["num0", "num1", "num2"]]
    plain = VAETransformer(latent_dim=2, **TINY).fit(numbers)
    assert isinstance(plain.inverse_transform(plain.transform(numbers)), np.ndarray)
    framed = VAETransformer(latent_dim=2, **TINY).set_output(transform="pandas").fit(numbers)
    out = framed.inverse_transform(framed.transform(numbers.head(3)))
    assert list(out.columns) == ["num0", "num1", "num2"] and out.shape == (3, 3)
