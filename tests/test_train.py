import math

import numpy as np
import pytest
import torch

from zdim.errors import ConfigError, TrainingDiverged
from zdim.evaluation.metrics import neg_elbo
from zdim.models.vae import VAE, VAEConfig
from zdim.training.config import TrainConfig, beta_at
from zdim.training.trainer import fit, kl_term

from .conftest import make_data


def model_for(data, k=2):
    torch.manual_seed(0)
    return VAE(VAEConfig(data.n_features, k, likelihood=data.likelihood, hidden=(32,)))


def test_training_lowers_validation_loss(tiny_gaussian):
    m = model_for(tiny_gaussian)
    before = neg_elbo(m, tiny_gaussian.val)
    res = fit(m, tiny_gaussian.train, tiny_gaussian.val, TrainConfig(epochs=20, batch_size=64))
    assert res.best_val < before - 1.0
    assert neg_elbo(m, tiny_gaussian.val) == pytest.approx(res.best_val)  # best weights restored
    assert [h["epoch"] for h in res.history] == list(range(1, len(res.history) + 1))


def test_training_is_reproducible(tiny_binary):
    cfg = TrainConfig(epochs=3, batch_size=64, seed=5)
    runs = []
    for _ in range(2):
        torch.manual_seed(5)
        m = model_for(tiny_binary)
        fit(m, tiny_binary.train, tiny_binary.val, cfg)
        runs.append(m.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_early_stopping_stops_and_keeps_best(tiny_binary):
    m = model_for(tiny_binary)
    # a learning rate this high makes validation loss wander: patience must end the run
    res = fit(m, tiny_binary.train, tiny_binary.val, TrainConfig(epochs=200, patience=2, lr=0.05, lr_patience=0))
    assert res.stopped_early and len(res.history) < 200
    assert len(res.history) - res.best_epoch == 2
    assert res.best_val == min(h["val_neg_elbo"] for h in res.history)


def test_nan_loss_is_reported(tiny_gaussian):
    bad = tiny_gaussian.train.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(TrainingDiverged, match="diverged at epoch 1"):
        fit(model_for(tiny_gaussian), bad, tiny_gaussian.val, TrainConfig(epochs=2))


def test_callback_sees_every_epoch_and_can_stop(tiny_binary):
    seen = []

    class Stop(Exception):
        pass

    def cb(epoch, rec):
        seen.append((epoch, rec["val_neg_elbo"]))
        if epoch == 3:
            raise Stop

    with pytest.raises(Stop):
        fit(model_for(tiny_binary), tiny_binary.train, tiny_binary.val, TrainConfig(epochs=10), callback=cb)
    assert [e for e, _ in seen] == [1, 2, 3] and all(math.isfinite(v) for _, v in seen)


def test_warmup_is_linear():
    cfg = TrainConfig(beta=2.0, warmup_epochs=2)
    assert beta_at(cfg, 0, 10) == pytest.approx(0.1)
    assert beta_at(cfg, 9, 10) == pytest.approx(1.0)
    assert beta_at(cfg, 19, 10) == pytest.approx(2.0)
    assert beta_at(cfg, 500, 10) == pytest.approx(2.0)
    assert beta_at(TrainConfig(beta=0.5), 0, 10) == 0.5


def test_free_bits_floor_each_unit():
    kl = torch.tensor([[0.1, 2.0], [0.3, 4.0]])  # batch means 0.2 and 3.0
    assert float(kl_term(kl, 0.0)) == pytest.approx(3.2)
    assert float(kl_term(kl, 0.5)) == pytest.approx(3.5)


@pytest.mark.parametrize(
    "field,value",
    [("epochs", 0), ("lr", -1.0), ("beta", float("nan")), ("free_bits", -0.1), ("batch_size", 0), ("device", "tpu")],
)
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**{field: value})


def test_binarize_draws_binary_batches_and_fixes_the_held_out_splits():
    import numpy as np

    import zdim
    from zdim.errors import DataError
    from zdim.sweeps.planning.config import SweepConfig
    from zdim.sweeps.planning.plan import Options, resolve

    data = zdim.load_data("digits", binarize=True, max_samples=300)
    assert set(torch.unique(data.test).tolist()) <= {0.0, 1.0} and set(torch.unique(data.val).tolist()) <= {0.0, 1.0}
    assert len(torch.unique(data.train)) > 2  # the training split stays grey: binarized per batch
    again = zdim.load_data("digits", binarize=True, max_samples=300)
    assert torch.equal(data.test, again.test) and data.fingerprint == again.fingerprint  # fixed
    assert data.fingerprint != zdim.load_data("digits", max_samples=300).fingerprint
    seen = []

    class Spy(VAE):
        def elbo_terms(self, x, *a, **k):
            if self.training:
                seen.append(set(torch.unique(x).tolist()))
            return super().elbo_terms(x, *a, **k)

    model = Spy(VAEConfig(64, 2, likelihood="bernoulli", hidden=(16,)))
    fit(model, data.train, data.val, TrainConfig(epochs=1, binarize=True))
    assert seen and all(s <= {0.0, 1.0} for s in seen)
    with pytest.raises(DataError, match="binarize"):
        zdim.load_data(np.random.default_rng(0).normal(size=(50, 4)), binarize=True)
    grey = zdim.load_data("digits", max_samples=100)
    with pytest.raises(ConfigError, match="binarize"):  # binary training on grey held-out data: refused
        resolve(grey, Options(config=SweepConfig(dims=(2,), train=TrainConfig(binarize=True))))


class _Sleeper(torch.nn.Module):
    """A stand-in VAE whose loss is flat and whose KL is ``kl`` nats (set from outside): a model that
    has not (yet) started to use its latent code."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.kl = 0.0

    def elbo_terms(self, x, gen=None, offset=0):
        rec = (x.sum(1) * 0 + 1.0) + 0.0 * self.w  # flat: the validation loss never improves
        kl_units = torch.full((x.shape[0], 2), self.kl / 2) + 0.0 * self.w
        return rec, kl_units


def test_patience_waits_for_a_model_to_use_its_latents():
    from zdim.records import EMPTY_KL
    from zdim.training.stopping import WAKE_GRACE
    from zdim.training.trainer import Trainer

    x = torch.randn(64, 3)
    cfg = TrainConfig(epochs=500, batch_size=32, patience=4, lr_patience=0)  # patience alone (no plateaus)

    def run(wake_at):
        model = _Sleeper()

        def cb(epoch, record):
            model.kl = 1.0 if wake_at is not None and epoch >= wake_at else 0.1

        trainer = Trainer(model, x, x, cfg, callback=cb)
        while not trainer.done:
            trainer.run_epoch()
        return trainer

    asleep = run(None)  # never uses its latents: stopped as plain patience would, after the grace
    assert asleep.epoch == WAKE_GRACE * cfg.patience and asleep.result.stopped_early and not asleep.awake
    woke = run(12)  # KL >= EMPTY_KL from epoch 13 (the callback runs after an epoch): patience from there
    assert EMPTY_KL <= 1.0 and woke.awake == 13 and woke.epoch == 13 + cfg.patience
    assert [round(r["train_kl"], 3) for r in woke.result.history[11:13]] == [0.1, 1.0]


def test_the_noise_scale_is_the_residual_scale_of_the_training_split_after_training(tiny_gaussian):
    """Issue 36 (calibrated decoders, Rybkin et al. 2021): the Gaussian noise scale is not chased by Adam; after
    training it is, per feature, the root mean squared residual of the training split at the kept weights."""
    import math

    from zdim.training.levers import residual_log_sigma
    from zdim.training.trainer import CALIBRATION_FLOOR

    torch.manual_seed(0)
    model = VAE(VAEConfig(8, 2, likelihood="gaussian", hidden=(16,)))
    fit(model, tiny_gaussian.train, tiny_gaussian.val, TrainConfig(epochs=20, batch_size=64, patience=0))
    want = residual_log_sigma(model, tiny_gaussian.train, 0, floor=CALIBRATION_FLOOR)
    assert torch.equal(model.log_sigma.detach(), want)
    assert float(model.log_sigma.max()) < 0.0 and math.isfinite(float(model.log_sigma.min()))  # below the data's 1
    learned = VAE(VAEConfig(8, 2, likelihood="gaussian", hidden=(16,)))
    fit(
        learned,
        tiny_gaussian.train,
        tiny_gaussian.val,
        TrainConfig(epochs=4, batch_size=64, patience=0, noise="learned"),
    )
    assert not torch.equal(learned.log_sigma.detach(), residual_log_sigma(learned, tiny_gaussian.train, 0))


def test_a_member_with_a_linear_path_is_never_worse_than_probabilistic_pca_of_its_size():
    """Issue 36: on a planted linear table (a factor model of rank 3 in 10 features), a member of size d starts
    at probabilistic PCA of size d and keeps the better of that start and its training on validation: its
    held-out NLL is at most PPCA-d's (scikit-learn's PCA.score_samples) plus a little."""
    from sklearn.decomposition import PCA

    from zdim.evaluation.metrics import evaluate
    from zdim.sweeps.planning.config import SweepConfig, build_sweep_model

    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 3)) @ rng.normal(size=(3, 10)) + 0.3 * rng.normal(size=(600, 10))
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    data = make_data(x)
    for d in (1, 2, 3, 5):
        cfg = SweepConfig(dims=(d,), hidden=(16, 16), train=TrainConfig(epochs=3, batch_size=64))
        torch.manual_seed(0)
        model = build_sweep_model(data, d, cfg)
        assert model.config.linear
        fit(model, data.train, data.val, cfg.train)
        nll = evaluate(model, data.test, k=50)["nll"]
        ppca = -PCA(n_components=d).fit(data.train.numpy()).score_samples(data.test.numpy()).mean()
        assert nll <= ppca + 0.1, (d, nll, ppca)


def test_the_linear_start_is_probabilistic_pca_exactly():
    """A VAE whose linear path is set to probabilistic PCA (and whose MLPs start at zero) computes PPCA's exact
    posterior: every importance weight is the PPCA density, so its ELBO equals PPCA's log-likelihood."""
    from sklearn.decomposition import PCA

    from zdim.evaluation.metrics import evaluate
    from zdim.likelihoods import REGISTRY

    rng = np.random.default_rng(1)
    x = torch.tensor(rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6)), dtype=torch.float32)
    for k in (1, 3):
        model = VAE(VAEConfig(6, k, likelihood="gaussian", hidden=(8,), linear=True))
        model.set_linear_start(REGISTRY["gaussian"].linear_start(x, k))
        pca = PCA(n_components=k).fit(x.numpy())
        ev = evaluate(model, x, k=20)
        ll = pca.score_samples(x.numpy()).mean()
        assert ev["nll"] == pytest.approx(-ll, abs=0.05) and ev["neg_elbo"] == pytest.approx(-ll, abs=0.05)


def test_train_config_checks_its_fields_by_their_option_rows(monkeypatch):
    """Issue 38: a bound is written once, in its option row (zdim.option_table); TrainConfig asks the row
    (the message names the field and the row's flag), and a field no row sets has its own bound."""
    from dataclasses import replace

    from zdim import options as table
    from zdim.options import Bounds, option

    with pytest.raises(ConfigError, match=r"^warmup_epochs must be a float >= 0, got -1.0: fix --warmup$"):
        TrainConfig(warmup_epochs=-1.0)
    with pytest.raises(ConfigError, match=r"^noise must be one of calibrated, learned, got 'x': fix --noise$"):
        TrainConfig(noise="x")
    with pytest.raises(
        ConfigError, match=r"^lr_factor must be a float in \(0, 1\), got 1.0: fix TrainConfig\(lr_factor="
    ):
        TrainConfig(lr_factor=1.0)
    assert TrainConfig(epoch_steps=None).epoch_steps is None  # None is the field's default
    row = option("lr")
    tighter = replace(row, check=Bounds("a float", 0, 1, strict=True))
    monkeypatch.setattr(table, "OPTIONS", tuple(tighter if o is row else o for o in table.OPTIONS))
    with pytest.raises(ConfigError, match=r"^lr must be a float in \(0, 1\), got 2.0: fix --lr$"):
        TrainConfig(lr=2.0)
