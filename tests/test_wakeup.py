"""Wake-up levers of Gaussian VAEs (issue 22): noise-scale start and hold, free bits and learning-rate
warm-ups; the stopping rules wait for them; checkpoints and interleaving stay exact with them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from zdim.errors import ConfigError
from zdim.models.nested import NestedVAE
from zdim.models.vae import VAE, VAEConfig
from zdim.training.config import TrainConfig, free_bits_at, lr_at
from zdim.training.levers import PCA_FLOOR, pca_log_sigma, residual_log_sigma
from zdim.training.trainer import Trainer, fit

from .conftest import make_data

LEVERS = dict(warmup_epochs=2.0, free_bits=0.5, free_bits_epochs=2.0, sigma_init=0.3, sigma_warmup_epochs=1.5)
LEVERS |= dict(lr_warmup_epochs=1.0, sigma_after=0)


def gaussian_model(d: int = 8, k: int = 2, seed: int = 0, hidden=(16,)) -> VAE:
    torch.manual_seed(seed)
    return VAE(VAEConfig(d, k, likelihood="gaussian", hidden=hidden))


@pytest.mark.parametrize(
    "field,value,flag",
    [
        ("sigma_init", 0.0, "--sigma-init"),
        ("sigma_init", -1.0, "--sigma-init"),
        ("sigma_init", float("nan"), "--sigma-init"),
        ("sigma_init", "svd", "--sigma-init"),
        ("sigma_init", True, "--sigma-init"),
        ("sigma_warmup_epochs", -1.0, "--sigma-warmup"),
        ("sigma_warmup_epochs", float("inf"), "--sigma-warmup"),
        ("sigma_warmup_epochs", "pca", "--sigma-warmup"),
        ("sigma_after", -1, "--sigma-after"),
        ("sigma_after", 1.5, "--sigma-after"),
        ("free_bits_epochs", -0.5, "TrainConfig(free_bits_epochs="),
        ("lr_warmup_epochs", float("nan"), "TrainConfig(lr_warmup_epochs="),
    ],
)
def test_each_lever_rejects_a_bad_value_in_one_line_naming_its_flag(field, value, flag):
    with pytest.raises(ConfigError) as e:
        TrainConfig(**{field: value})
    msg = str(e.value)
    assert field in msg and flag in msg and "\n" not in msg


def test_the_levers_are_saved_and_read_back():
    cfg = TrainConfig(**LEVERS)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    pca = TrainConfig(sigma_init="pca")
    assert TrainConfig.from_dict(pca.to_dict()).sigma_init == "pca"
    assert TrainConfig(sigma_init=1).sigma_init == 1.0 and isinstance(TrainConfig(sigma_init=1).sigma_init, float)


def test_schedules_of_the_warm_ups():
    cfg = TrainConfig(lr=1e-2, lr_warmup_epochs=2, free_bits=0.5, free_bits_epochs=1, sigma_warmup_epochs=1.5)
    assert lr_at(cfg, 0, 10) == pytest.approx(5e-4) and lr_at(cfg, 19, 10) == lr_at(cfg, 500, 10) == 1e-2
    assert free_bits_at(cfg, 9, 10) == 0.5 and free_bits_at(cfg, 10, 10) == 0.0
    assert free_bits_at(TrainConfig(free_bits=0.5), 10**6, 10) == 0.5  # free_bits_epochs 0: throughout
    assert cfg.warm_epochs == 2  # the longest: lr 2, free bits 1, noise scale 1.5 -> 2
    assert TrainConfig(free_bits_epochs=9).resolve(None).warm_epochs == 0  # no free bits: nothing to wait for
    assert TrainConfig().resolve("bernoulli").warm_epochs == 0
    with pytest.raises(ValueError, match="resolve"):  # "auto" is not known before the likelihood is
        TrainConfig().warm_epochs


def test_pca_noise_scale_is_the_residual_of_the_first_principal_components():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5))
    x = (x - x.mean(0)) / x.std(0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    for k in (1, 3):
        resid = x - x @ vt[:k].T @ vt[:k]
        want = 0.5 * np.log(np.maximum((resid**2).mean(0), PCA_FLOOR**2))
        got = pca_log_sigma(torch.tensor(x, dtype=torch.float32), k).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    full = pca_log_sigma(torch.tensor(x, dtype=torch.float32), 5)  # nothing left over: the floor
    assert torch.allclose(full, torch.full((5,), math.log(PCA_FLOOR)))


def test_sigma_init_is_set_before_the_first_step_on_gaussian_models_only(tiny_gaussian, tiny_binary):
    m = gaussian_model()
    t = Trainer(m, tiny_gaussian.train, tiny_gaussian.val, TrainConfig(sigma_init=0.3, sigma_after=0))
    assert torch.allclose(m.log_sigma, torch.full((8,), math.log(0.3)))
    assert torch.equal(t.best_state["log_sigma"], m.log_sigma.detach())  # the start is the first best
    pca = gaussian_model()
    Trainer(pca, tiny_gaussian.train, tiny_gaussian.val, TrainConfig(sigma_init="pca", sigma_after=0))
    assert torch.allclose(pca.log_sigma, pca_log_sigma(tiny_gaussian.train, 2))
    nested = NestedVAE(VAEConfig(8, 4, likelihood="gaussian", hidden=(16,)), (1, 2, 4))
    Trainer(nested, tiny_gaussian.train, tiny_gaussian.val, TrainConfig(sigma_init="pca", sigma_after=0))
    for row, k in zip(nested.log_sigma, (1, 2, 4)):  # one noise scale per prefix: its own residual
        assert torch.allclose(row, pca_log_sigma(tiny_gaussian.train, k))
    torch.manual_seed(0)
    binary = VAE(VAEConfig(16, 2, likelihood="bernoulli", hidden=(16,)))
    before = {k: v.clone() for k, v in binary.state_dict().items()}
    Trainer(binary, tiny_binary.train, tiny_binary.val, TrainConfig(sigma_init=0.3))
    assert all(torch.equal(before[k], v) for k, v in binary.state_dict().items())


def test_the_noise_scale_is_held_then_set_from_the_residual_then_learned(tiny_gaussian):
    m = gaussian_model()
    cfg = TrainConfig(
        sigma_init=0.3, sigma_warmup_epochs=2, sigma_after=0, epochs=4, batch_size=64, patience=0, noise="learned",
        epoch_steps=1,
    )  # fmt: skip
    t = Trainer(m, tiny_gaussian.train, tiny_gaussian.val, cfg)
    held = torch.full((8,), math.log(0.3))
    first = [p.detach().clone() for p in m.encoder.parameters()]
    for _ in range(2):
        assert t.epoch == 0 or (t.warming and t.asleep)  # the stopping rules wait for the hold
        t.run_epoch()
        assert torch.equal(m.log_sigma.detach(), held)  # held, while the rest trains
    assert not all(torch.equal(a, b) for a, b in zip(first, m.encoder.parameters()))
    assert t.warming is False and t.epoch == cfg.warm_epochs == 2
    want = residual_log_sigma(m, t.train, cfg.seed)  # what the release sets (before its first step)
    seen = []
    real = m.elbo_terms

    def spy(x, *a, **k):
        if not seen:
            seen.append(m.log_sigma.detach().clone())
        return real(x, *a, **k)

    m.elbo_terms = spy  # type: ignore[method-assign]
    t.run_epoch()
    assert torch.equal(seen[0], want)
    assert not torch.equal(m.log_sigma.detach(), want)  # and learned from there


class _Flat(torch.nn.Module):
    """A stand-in VAE with a flat loss and a KL of 1 nat: awake from the first epoch, never improving."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def elbo_terms(self, x, gen=None, offset=0):
        return x.sum(1) * 0 + 1.0 + 0.0 * self.w, torch.full((x.shape[0], 2), 0.5) + 0.0 * self.w


@pytest.mark.parametrize(
    "lever",
    [
        {"warmup_epochs": 20.0},
        {"lr_warmup_epochs": 19.5},
        {"free_bits": 0.1, "free_bits_epochs": 20.0},
    ],
)
def test_patience_and_settle_convergence_wait_for_a_lever_while_it_acts(lever):
    from zdim.sweeps.executors.member import Member

    x = torch.randn(64, 3)
    cfg = TrainConfig(epochs=500, batch_size=32, patience=4, lr_patience=0, **lever).resolve(None)
    assert cfg.warm_epochs == 20
    plain = Trainer(_Flat(), x, x, TrainConfig(epochs=500, batch_size=32, patience=4, lr_patience=0))
    while not plain.done:
        plain.run_epoch()
    assert plain.epoch == 1 + 4  # without a lever: best at 1, awake at 1, then 4 epochs of patience
    no_noise = Trainer(
        _Flat(), x, x, TrainConfig(epochs=500, batch_size=32, patience=4, sigma_warmup_epochs=20, lr_patience=0)
    )
    while not no_noise.done:  # a noise-scale hold on a model without a noise scale: nothing to wait for
        no_noise.run_epoch()
    assert no_noise.epoch == 1 + 4
    t = Trainer(_Flat(), x, x, cfg)
    from zdim.sweeps.executors.engines import Status

    member = Member(dim=2, seed=0)
    while not t.done:
        t.run_epoch()
        status = Status(epoch=t.epoch, done=t.done, stopped_early=t.result.stopped_early, asleep=t.asleep, lr_drops=1)
        member.update(status, scored=False)
        member.scores.append(1.0)  # flat: converged, as far as the NLL goes
        if t.epoch < 20:
            assert t.warming and t.asleep and not member.converged(window=5, tol=1.0)
    assert t.epoch == 20 + 4 and t.result.stopped_early  # patience counted from the end of the warm-up


def test_a_checkpoint_taken_during_the_warm_ups_resumes_exactly(tiny_gaussian):
    cfg = TrainConfig(epochs=5, batch_size=64, patience=0, **LEVERS)
    whole = gaussian_model()
    fit(whole, tiny_gaussian.train, tiny_gaussian.val, cfg)

    cut = gaussian_model()
    t = Trainer(cut, tiny_gaussian.train, tiny_gaussian.val, cfg)
    t.run_epoch()  # inside every warm-up: the noise scale is still held
    tensors, meta = t.state()
    again = gaussian_model(seed=7)  # other initial weights: the state replaces them
    t2 = Trainer(again, tiny_gaussian.train, tiny_gaussian.val, cfg)
    t2.load_state(tensors, meta)
    torch.randn(11)  # someone else drawing from the global RNG changes nothing
    while not t2.done:
        t2.run_epoch()
    t2.finish()
    for (k, va), vb in zip(whole.state_dict().items(), again.state_dict().values()):
        assert torch.equal(va, vb), k


def test_interleaved_trainers_with_the_levers_give_the_models_trained_alone(tiny_gaussian):
    cfgs = [TrainConfig(epochs=4, batch_size=32, patience=0, seed=s, **LEVERS) for s in (0, 1)]
    alone = []
    for c in cfgs:
        m = gaussian_model(seed=c.seed)
        fit(m, tiny_gaussian.train, tiny_gaussian.val, c)
        alone.append(m)
    together = [gaussian_model(seed=c.seed) for c in cfgs]
    trainers = [Trainer(m, tiny_gaussian.train, tiny_gaussian.val, c) for m, c in zip(together, cfgs)]
    while not all(t.done for t in trainers):
        for t in trainers:
            if not t.done:
                t.run_epoch()
                torch.randn(7)
    for a, b in zip(alone, together):
        for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(va, vb), k


def test_a_settle_sweep_with_a_lever_stops_no_member_before_the_lever_ends():
    from zdim.sweeps.execute import sweep
    from zdim.sweeps.planning.config import SweepConfig
    from zdim.testing import make_planted_data

    data = make_data(make_planted_data(2, 6, 300, seed=2))
    train = TrainConfig(epochs=30, batch_size=64, patience=1, warmup_epochs=8.0, lr=1e-2)
    r = sweep(
        data,
        config=SweepConfig(dims=(1, 2, 4), hidden=(16,), k=3, train=train),
        mode="settle",
        extend=False,
        refine=False,
    )
    assert all(t.epochs_run >= 8 for t in r.trials)


# ------------------------------------------------------------------------------- the Gaussian default


def _linear_nearly_full_rank(n: int = 600) -> np.ndarray:
    """7 latent dimensions embedded linearly in 8 features, plus a little noise, standardized."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 7)) @ rng.normal(size=(7, 8)) + 0.01 * rng.normal(size=(n, 8))
    return ((x - x.mean(0)) / x.std(0)).astype(np.float32)


def _wake_epochs(x: np.ndarray, sizes, train: TrainConfig) -> list[int]:
    data = make_data(x)
    out = []
    for k in sizes:
        torch.manual_seed(0)
        model = VAE(VAEConfig(x.shape[1], k, likelihood="gaussian", hidden=(128, 64)))
        t = Trainer(model, data.train, data.val, train)
        while not t.done:
            t.run_epoch()
        out.append(t.awake)
    return out


OFF = dict(sigma_init=1.0, sigma_warmup_epochs=0.0, sigma_after=0)


def test_the_gaussian_default_starts_a_curved_set_in_few_features_within_five_epochs():
    from zdim.testing import make_planted_data

    x = make_planted_data(2, 3, 600, seed=4)  # 2 curved dimensions in 3 features
    train = dict(epochs=6, batch_size=16, patience=0, epoch_steps=1)  # 30 steps per epoch
    assert all(0 < w <= 5 for w in _wake_epochs(x, (1, 2, 3), TrainConfig(**train)))
    learned = TrainConfig(**train, **OFF, noise="learned")  # without it, and a noise scale learned from 1
    assert any(w == 0 or w > 5 for w in _wake_epochs(x, (1, 2, 3), learned))


def test_the_gaussian_default_holds_the_noise_scale_for_a_few_passes_at_most(tiny_gaussian):
    """The Gaussian default holds the noise scale of a model that starts at its linear model at 0.1 for one
    epoch, but never more than HOLD_PASSES passes over a small training split (it would memorize its rows),
    then calibrates it; a model started at random gets no hold."""
    from zdim.training.config import HOLD_PASSES

    plain = Trainer(gaussian_model(), tiny_gaussian.train, tiny_gaussian.val, TrainConfig(epoch_steps=100))
    assert plain._release == -1 and plain.config.sigma_init == 1.0
    torch.manual_seed(0)
    m = VAE(VAEConfig(8, 2, likelihood="gaussian", hidden=(16,), linear=True))
    t = Trainer(m, tiny_gaussian.train, tiny_gaussian.val, TrainConfig(epochs=2, batch_size=64, epoch_steps=100))
    assert t.per_pass * t.passes == t.steps_per_epoch >= 100 and t.passes > HOLD_PASSES  # a small table
    assert t._release == HOLD_PASSES * t.per_pass  # the hold: 5 passes, not the epoch's
    assert torch.allclose(m.log_sigma, torch.full((8,), math.log(0.1)))
    t.run_epoch()
    assert torch.equal(m.log_sigma.detach(), residual_log_sigma(m, t.train, 0, floor=math.exp(-6.0)))


def test_the_default_resolves_per_likelihood_and_an_explicit_value_wins(tiny_binary):
    from zdim.training.config import LEVERS_OFF, WAKEUP_DEFAULTS

    auto = TrainConfig()
    assert auto.to_dict()["sigma_init"] == "auto" and TrainConfig.from_dict(auto.to_dict()) == auto
    gaussian = auto.resolve("gaussian")
    assert {k: getattr(gaussian, k) for k in LEVERS_OFF} == WAKEUP_DEFAULTS["gaussian"]
    for lik in ("bernoulli", "poisson", "nb", None):
        assert {k: getattr(auto.resolve(lik), k) for k in LEVERS_OFF} == LEVERS_OFF
    mine = TrainConfig(sigma_init=0.5, sigma_after=4).resolve("gaussian")
    assert (mine.sigma_init, mine.sigma_after, mine.sigma_warmup_epochs) == (0.5, 4, 1.0)
    # Bernoulli data: the default trains exactly as with every lever off
    runs = []
    for kw in ({}, OFF):
        torch.manual_seed(0)
        m = VAE(VAEConfig(16, 2, likelihood="bernoulli", hidden=(16,)))
        fit(m, tiny_binary.train, tiny_binary.val, TrainConfig(epochs=6, batch_size=64, **kw))
        runs.append(m.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_a_sleeper_is_held_from_epoch_four_and_a_checkpoint_in_the_hold_resumes_exactly():
    from zdim.testing import make_planted_data

    data = make_data(make_planted_data(2, 3, 300, seed=4))
    cfg = TrainConfig(  # few steps per epoch: still asleep at 4 (the levers of issue 22, before the linear start)
        epochs=11, batch_size=64, patience=3, sigma_init=0.3, sigma_warmup_epochs=5, sigma_after=4, noise="learned",
        epoch_steps=1, lr_patience=0,
    )  # fmt: skip

    def build() -> VAE:
        torch.manual_seed(0)
        return VAE(VAEConfig(3, 2, likelihood="gaussian", hidden=(16,)))

    whole = build()
    t = Trainer(whole, data.train, data.val, cfg)
    sigmas = []
    while not t.done:
        t.run_epoch()
        sigmas.append(whole.log_sigma.detach().clone())
        if 4 <= t.epoch < 9:
            assert t.warming and t.asleep and not t.done  # the stopping rules wait for the hold
    assert not t.result.history[3]["train_kl"] >= 0.5  # asleep after epoch 4: held at 0.3 from there
    assert all(torch.allclose(s, torch.full((3,), math.log(0.3))) for s in sigmas[3:9])
    assert t.result.best_epoch >= 9  # the best weights come from the end of the hold on
    t.finish()

    cut = build()
    first = Trainer(cut, data.train, data.val, cfg)
    for _ in range(6):  # inside the hold
        first.run_epoch()
    tensors, meta = first.state()
    again = build()
    resumed = Trainer(again, data.train, data.val, cfg)
    resumed.load_state(tensors, meta)
    while not resumed.done:
        resumed.run_epoch()
    resumed.finish()
    assert resumed.epoch == t.epoch and resumed.result.best_epoch == t.result.best_epoch
    for (k, va), vb in zip(whole.state_dict().items(), again.state_dict().values()):
        assert torch.equal(va, vb), k


@pytest.mark.parametrize(
    "flag,value", [("--sigma-init", "0"), ("--sigma-init", "svd"), ("--sigma-warmup", "-2"), ("--sigma-after", "2.5")]
)
def test_the_cli_rejects_a_bad_lever_in_one_line(flag, value, tmp_path, capsys):
    from zdim.cli import main

    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32))
    assert main(["sweep", str(x), "--dims", "1", flag, value, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zdim: error: ") and flag in err and err.count("\n") == 1


def test_the_cli_and_api_pass_the_levers_on(tmp_path):
    import zdim
    from zdim.sweeps.records.runs import RunDir

    x = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
    r = zdim.sweep(x, dims=(1,), epochs=2, seeds=1, hidden=(8,), k=2, sigma_init="pca", sigma_after=0, report=False)
    train = r.config["train"]
    assert (train["sigma_init"], train["sigma_warmup_epochs"], train["sigma_after"]) == ("pca", "auto", 0)
    from zdim.cli import main

    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "run"
    args = ["sweep", str(tmp_path / "x.npy"), "--dims", "1", "--epochs", "2", "--seeds", "1", "--hidden", "8"]
    assert main([*args, "--k", "2", "--sigma-init", "0.5", "--sigma-warmup", "0", "--out", str(out), "--quiet"]) == 0
    train = RunDir(out).read_info()["sweep"]["train"]
    assert (train["sigma_init"], train["sigma_warmup_epochs"], train["sigma_after"]) == (0.5, 0.0, "auto")


def test_a_nested_model_saved_before_the_levers_existed_is_loaded_not_refused(tmp_path):
    import json

    from zdim.sweeps.executors import nested

    vcfg = VAEConfig(8, 2, likelihood="gaussian", hidden=(8,))
    model = NestedVAE(vcfg, (1, 2))
    train = TrainConfig(epochs=1)
    nested._save(tmp_path, model, nested.FitResult(best_epoch=1, best_val=1.0), (1, 2), train)
    meta = tmp_path / f"{nested.STEM}.json"
    info = json.loads(meta.read_text())
    for key in ("sigma_init", "sigma_warmup_epochs", "sigma_after", "free_bits_epochs", "lr_warmup_epochs"):
        del info["train"][key]  # as an earlier version wrote it
    meta.write_text(json.dumps(info))
    assert nested._load(tmp_path, vcfg, (1, 2), train) is not None
