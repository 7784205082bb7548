"""Stacked members (zdim.training.stacked): several VAEs of one shape trained as one batched model.

Every member of a stack must be the model ``zdim.training.trainer.Trainer`` trains alone. Not bit for bit: the
padding of the latent axis to the stack's largest size changes the rounding of a few GEMMs and
reductions by one ulp, and training carries those along; measured over these runs the weights differ by
about 1e-6 at most (full-size members without free bits are bit for bit), so the tolerance below is
``rtol=1e-4, atol=1e-5`` on every tensor and 1e-4 nats on the validation -ELBO of every epoch.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from zdim.errors import ConfigError, TrainingDiverged
from zdim.evaluation.metrics import evaluate, neg_elbo
from zdim.models.nested import NestedVAE
from zdim.models.vae import VAE, VAEConfig
from zdim.testing import make_planted_data
from zdim.training.config import TrainConfig
from zdim.training.stacked import StackedTrainer, can_stack, groups
from zdim.training.trainer import Trainer, fit

from .conftest import make_data

RTOL, ATOL = 1e-4, 1e-5  # on weights (see the module docstring)
VAL_TOL = 1e-4  # nats, on each epoch's validation -ELBO
NO_HOLD = {"sigma_init": 1.0, "sigma_warmup_epochs": 0.0, "noise": "learned"}  # Gaussian: levers off (else no stack)


def tiny(likelihood: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, val) of the planted 2-in-8 data, as the likelihood wants it."""
    data = make_data(make_planted_data(2, 8, 400, seed=1))
    train, val = data.train, data.val
    if likelihood in ("bernoulli", "continuous-bernoulli"):  # grey levels (binarized by some bernoulli members)
        return torch.sigmoid(train), torch.sigmoid(val)
    if likelihood in ("poisson", "nb"):  # counts
        return torch.round(torch.exp(train)), torch.round(torch.exp(val))
    return train, val


def build(k: int, seed: int, likelihood: str, hidden: tuple[int, ...] = (32, 16)) -> VAE:
    torch.manual_seed(seed)  # as settle mode builds its members: the same initial weights
    return VAE(VAEConfig(8, k, likelihood=likelihood, hidden=hidden))


# (latent size, seed, config changes): sizes 1..4 in one stack, other seeds, lr, KL weight and warm-up,
# free bits, weight decay, dynamic binarization
SPECS = [
    (1, 0, {}),
    (4, 1, {"lr": 1.5e-2}),
    (2, 2, {"beta": 0.5, "warmup_epochs": 3}),
    (4, 3, {"free_bits": 0.1, "weight_decay": 1e-4}),
]


def configs(
    likelihood: str, epochs: int = 40, device: str = "cpu", lr: float = 5e-3, lr_patience: int = 0
) -> list[TrainConfig]:
    """One per member of ``SPECS``, early stopping on: some stop within ``epochs``, some do not (without the
    plateaus of the learning rate unless ``lr_patience``: early stopping would wait for them)."""
    out = []
    for _, seed, kw in SPECS:
        kw = {"lr": lr, **NO_HOLD, **kw}
        if likelihood == "bernoulli" and seed % 2:
            kw["binarize"] = True
        out.append(
            TrainConfig(
                epochs=epochs,
                batch_size=32,
                patience=3,
                lr_patience=lr_patience,
                seed=seed,
                device=device,
                epoch_steps=1,
                **kw,
            )
        )
    return out


def assert_same_model(a: VAE, b: VAE) -> None:
    for (name, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert va.shape == vb.shape, name
        assert torch.allclose(va, vb, rtol=RTOL, atol=ATOL), (name, float((va - vb).abs().max()))


def assert_same_history(a: list[dict], b: list[dict]) -> None:
    assert [r["epoch"] for r in a] == [r["epoch"] for r in b]
    for ra, rb in zip(a, b):
        assert abs(ra["val_neg_elbo"] - rb["val_neg_elbo"]) < VAL_TOL, (ra, rb)
        assert abs(ra["train_loss"] - rb["train_loss"]) < VAL_TOL, (ra, rb)
        assert abs(ra["train_kl"] - rb["train_kl"]) < VAL_TOL and ra["beta"] == pytest.approx(rb["beta"])


def alone_and_stacked(likelihood: str, device: str = "cpu", lr_patience: int = 0, stops: bool = True) -> None:
    """Each member trained alone with ``fit`` and all of them in one stack end the same."""
    train, val = tiny(likelihood)
    cfgs = configs(likelihood, device=device, lr_patience=lr_patience)
    alone = []
    for (k, seed, _), c in zip(SPECS, cfgs):
        model = build(k, seed, likelihood)
        alone.append((model, fit(model, train, val, c)))
    models = [build(k, seed, likelihood) for k, seed, _ in SPECS]
    stack = StackedTrainer(models, cfgs, train, val)
    frozen: dict[int, dict[str, torch.Tensor]] = {}
    while not all(m.done for m in stack.members):
        stack.run_epoch()
        for m in stack.members:
            if m.done and m.index not in frozen:  # its weights the moment it stopped
                frozen[m.index] = {k: v.clone() for k, v in m.model.state_dict().items()}
    # a stopped member does not move at all while the others go on
    for m in stack.members:
        for k, v in m.model.state_dict().items():
            assert torch.equal(v, frozen[m.index][k]), (m.index, k)
    results = [m.finish() for m in stack.members]
    epochs = [len(r.history) for r in results]
    if stops:
        assert any(r.stopped_early for r in results) and len(set(epochs)) > 1  # they stopped at different epochs
    for (a, ra), b, rb in zip(alone, models, results):
        assert (ra.best_epoch, ra.stopped_early, len(ra.history)) == (rb.best_epoch, rb.stopped_early, len(rb.history))
        assert ra.best_val == pytest.approx(rb.best_val, abs=VAL_TOL)
        assert_same_history(ra.history, rb.history)
        assert_same_model(a, b)
        assert not b.training  # finish() leaves it in evaluation mode, as Trainer.finish


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli", "poisson", "nb", "continuous-bernoulli"])
def test_stacked_members_equal_the_members_trained_alone(likelihood):
    alone_and_stacked(likelihood)


def test_stacked_members_lower_their_learning_rates_on_their_own_plateaus_as_alone():
    """Each member's plateaus lower its own rate (TrainConfig.lr_patience), at its own epochs, in the stack
    as alone."""
    alone_and_stacked("bernoulli", lr_patience=1, stops=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA here")
@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
def test_stacked_members_equal_the_members_trained_alone_on_cuda(likelihood):
    alone_and_stacked(likelihood, device="cuda")


def test_a_stacked_resume_in_the_middle_equals_the_uninterrupted_stack():
    train, val = tiny("gaussian")
    cfgs = configs("gaussian")
    whole = StackedTrainer([build(k, s, "gaussian") for k, s, _ in SPECS], cfgs, train, val)
    while not all(m.done for m in whole.members):
        whole.run_epoch()
    cut = StackedTrainer([build(k, s, "gaussian") for k, s, _ in SPECS], cfgs, train, val)
    for _ in range(32):  # two members have stopped (at 30), two go on to 40
        cut.run_epoch()
    saved = [m.state() for m in cut.members]
    assert any(meta["done"] for _, meta in saved) and not all(meta["done"] for _, meta in saved)
    # a new stack, other initial weights: everything comes from the saved states
    resumed = StackedTrainer([build(k, s + 10, "gaussian") for k, s, _ in SPECS], cfgs, train, val)
    for m, (tensors, meta) in zip(resumed.members, saved):
        m.load_state(tensors, meta)
    while not all(m.done for m in resumed.members):
        resumed.run_epoch()
    for a, b in zip(whole.members, resumed.members):
        ra, rb = a.finish(), b.finish()
        assert [r["val_neg_elbo"] for r in ra.history] == [r["val_neg_elbo"] for r in rb.history]
        assert (ra.best_epoch, ra.stopped_early) == (rb.best_epoch, rb.stopped_early)
        for (name, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
            assert torch.equal(va, vb), name  # the same computation: bit for bit


def test_a_stacked_member_state_is_a_trainer_state_and_back():
    """``StackedMember.state()`` is ``Trainer.state()``'s format: a Trainer goes on from a stacked
    member's checkpoint, and a stacked member from a Trainer's, each ending as the uninterrupted one."""
    train, val = tiny("gaussian")
    cfg = TrainConfig(epochs=16, batch_size=32, patience=0, seed=5, device="cpu", lr=3e-3, **NO_HOLD)
    ref = build(2, 5, "gaussian")
    fit(ref, train, val, cfg)
    ref_state = ref.state_dict()

    # stacked for 8 epochs (beside a larger member), then a plain Trainer
    stack = StackedTrainer([build(2, 5, "gaussian"), build(4, 6, "gaussian")], [cfg, replace(cfg, seed=6)], train, val)
    for _ in range(8):
        stack.run_epoch()
    tensors, meta = stack.members[0].state()
    plain_keys = set(Trainer(build(2, 5, "gaussian"), train, val, cfg).state()[0])
    assert plain_keys - {k for k in plain_keys if k.startswith("opt.")} <= set(tensors)
    model = build(2, 0, "gaussian")
    trainer = Trainer(model, train, val, cfg)
    trainer.load_state(tensors, meta)
    while not trainer.done:
        trainer.run_epoch()
    trainer.finish()
    for (name, va), vb in zip(ref_state.items(), model.state_dict().values()):
        assert torch.allclose(va, vb, rtol=RTOL, atol=ATOL), name

    # a plain Trainer for 8 epochs, then stacked
    first = Trainer(build(2, 5, "gaussian"), train, val, cfg)
    for _ in range(8):
        first.run_epoch()
    stack = StackedTrainer([build(2, 0, "gaussian"), build(4, 6, "gaussian")], [cfg, replace(cfg, seed=6)], train, val)
    stack.members[0].load_state(*first.state())
    while not stack.members[0].done:
        stack.run_epoch([0])
    stack.members[0].finish()
    assert stack.members[1].epoch == 0  # run_epoch(which) trains only those
    for (name, va), vb in zip(ref_state.items(), stack.members[0].model.state_dict().values()):
        assert torch.allclose(va, vb, rtol=RTOL, atol=ATOL), name


def test_a_diverging_stacked_member_fails_alone():
    train, val = tiny("gaussian")
    specs = [(1, 0), (2, 1), (4, 2)]
    cfgs = [TrainConfig(epochs=6, batch_size=32, patience=0, seed=s, device="cpu", **NO_HOLD) for _, s in specs]
    cfgs[1] = replace(cfgs[1], lr=9.0)  # absurd: its loss becomes NaN or infinite
    with pytest.raises(TrainingDiverged) as alone_err:
        fit(build(*specs[1], "gaussian"), train, val, cfgs[1])
    stack = StackedTrainer([build(k, s, "gaussian") for k, s in specs], cfgs, train, val)
    bad = stack.members[1]
    while not all(m.done for m in stack.members):
        records = stack.run_epoch()  # raises nothing
        assert (records[1] is None) == bool(bad.failed)  # no record for the epoch it diverged in
    assert bad.done and len(bad.result.history) == bad.epoch - 1
    assert bad.failed.startswith(f"training diverged at epoch {bad.epoch}: ")
    assert "try a smaller --lr (now 9.0)" in bad.failed
    assert str(alone_err.value).split(":")[0] == bad.failed.split(":")[0]  # at the same epoch as alone
    assert stack.score(val[:20])[1] is None  # a failed member is not scored
    for i in (0, 2):  # the others trained as if it were not there
        m = stack.members[i]
        assert not m.failed and m.epoch == 6
        alone = build(*specs[i], "gaussian")
        fit(alone, train, val, cfgs[i])
        m.finish()
        assert_same_model(alone, m.model)


def test_the_stacked_score_is_evaluate_per_member():
    train, val = tiny("gaussian")
    cfgs = configs("gaussian", epochs=5)
    models = [build(k, s, "gaussian") for k, s, _ in SPECS]
    stack = StackedTrainer(models, cfgs, train, val)
    subset = val[:30]
    for _ in range(3):
        records = stack.run_epoch()
        scores = stack.score(subset)
        for model, m, rec, got in zip(models, stack.members, records, scores):
            assert m.model is model  # the member's own VAE, holding its current weights after every epoch
            want = evaluate(model, subset, k=10, seed=0, per_sample=True)
            assert got is not None and rec is not None
            assert got["nll"] == pytest.approx(want["nll"], rel=1e-6, abs=1e-5)
            assert got["active_units"] == want["active_units"]
            assert got["nll_per_sample"].dtype == torch.float64 and got["nll_per_sample"].shape == (30,)
            assert torch.allclose(got["nll_per_sample"], want["nll_per_sample"], rtol=1e-6, atol=1e-4)
            # and the epoch's validation -ELBO is neg_elbo of the member's weights
            assert rec["val_neg_elbo"] == pytest.approx(neg_elbo(m.model, val, seed=m.config.seed), abs=1e-5)
    some = stack.score(subset, k=3, which=[2])
    assert some[0] is None and some[2] is not None
    want = evaluate(stack.members[2].model, subset, k=3, seed=0, per_sample=True)
    assert some[2]["nll"] == pytest.approx(want["nll"], rel=1e-6, abs=1e-5)


def test_which_members_can_share_a_stacked_trainer():
    def vae(k: int, **kw) -> VAE:
        return VAE(VAEConfig(**{"input_dim": 16, "latent_dim": k, "hidden": (8,), **kw}))

    image = VAEConfig(16, 2, hidden=(8,), arch="conv", image_shape=(1, 4, 4))
    models = [
        vae(1),
        vae(4),
        vae(2, likelihood="gaussian"),
        NestedVAE(VAEConfig(16, 4, hidden=(8,)), (2, 4)),
        VAE(image),
        vae(2, hidden=(16,)),
        vae(8),
    ]
    assert groups(models) == [[0, 1, 6], [2], [3], [4], [5]]
    assert can_stack([models[0], models[1], models[6]]) and not can_stack(models[:3]) and not can_stack([])
    assert not can_stack([models[3]]) and not can_stack([models[4]])  # nested and conv never stack
    cfgs = [TrainConfig(batch_size=32, device="cpu"), TrainConfig(batch_size=64, device="cpu")]
    assert groups(models[:2], cfgs) == [[0], [1]] and not can_stack(models[:2], cfgs)
    x = torch.rand(64, 16)
    with pytest.raises(ConfigError, match="cannot train as one stack"):
        StackedTrainer(models[:3], [TrainConfig(device="cpu")] * 3, x, x)
    with pytest.raises(ConfigError, match="one per model"):
        StackedTrainer(models[:2], [TrainConfig(device="cpu")], x, x)
    # a wake-up lever the stack does not train leaves the member to Trainer: a sleeper's noise-scale hold
    # (after epoch sigma_after), a hold of a learned noise scale, free bits for the first epochs, a
    # learning-rate warm-up; the KL warm-up, a calibrated noise scale and its hold from the start stack
    g = [vae(2, likelihood="gaussian"), vae(3, likelihood="gaussian")]
    lin = [vae(2, likelihood="gaussian", linear=True), vae(3, likelihood="gaussian", linear=True)]
    plain = TrainConfig(device="cpu", **NO_HOLD)
    assert TrainConfig(device="cpu", sigma_init=1.0, sigma_warmup_epochs=0.0).levers("gaussian") == ["noise"]
    assert TrainConfig(device="cpu").levers("gaussian", linear=True) and not TrainConfig(device="cpu").levers(
        "bernoulli"
    )
    assert groups(g, [TrainConfig(device="cpu")] * 2) == [[0, 1]]  # calibrated: stacks
    assert groups(lin, [TrainConfig(device="cpu")] * 2) == [[0, 1]]  # and with the linear start's hold
    assert groups([g[0], lin[1]], [TrainConfig(device="cpu")] * 2) == [[0], [1]]  # a linear path is a shape
    sleeper = TrainConfig(device="cpu", sigma_init=0.3, sigma_warmup_epochs=5.0, sigma_after=4)
    held_learned = TrainConfig(device="cpu", noise="learned", sigma_init=0.3, sigma_warmup_epochs=1.0, sigma_after=0)
    for lever in (sleeper, held_learned):
        assert groups(g, [lever] * 2) == [[0], [1]] and not can_stack(g[:1], [lever])
    assert groups(g, [plain, replace(plain, warmup_epochs=5.0)]) == [[0, 1]]
    for lever in ({"lr_warmup_epochs": 2.0}, {"free_bits": 0.5, "free_bits_epochs": 3.0}):
        assert groups(models[:2], [TrainConfig(device="cpu"), TrainConfig(device="cpu", **lever)]) == [[0], [1]]
    with pytest.raises(ConfigError, match="wake-up levers"):
        StackedTrainer(g, [sleeper] * 2, x, x)
    stack = StackedTrainer(models[:2], [TrainConfig(device="cpu")] * 2, x, x)
    assert stack.train.data_ptr() == x.data_ptr()  # the data are shared, not copied per member
    assert stack.k_max == 4 and math.isinf(stack.members[0].result.best_val)


def test_a_stacked_trainer_trains_under_bf16_autocast():
    """The batched layers' own backward takes autocast's lower-precision gradients (bench_gpu's bf16 run)."""
    train, val = tiny("gaussian")
    cfgs = [TrainConfig(epochs=2, batch_size=32, patience=0, seed=s, device="cpu", **NO_HOLD) for s in (0, 1)]
    stack = StackedTrainer([build(1, 0, "gaussian"), build(2, 1, "gaussian")], cfgs, train, val)
    before = stack.params["encoder.0.weight"].clone()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        records = stack.run_epoch()
    assert all(r is not None and math.isfinite(r["val_neg_elbo"]) for r in records)
    assert stack.params["encoder.0.weight"].dtype == torch.float32  # the weights stay float32
    assert not torch.equal(before, stack.params["encoder.0.weight"])


def test_stacked_members_with_a_linear_start_and_a_calibrated_noise_scale_equal_them_alone():
    """Issue 39: Gaussian members as zdim trains them (a linear path started at probabilistic PCA, the noise
    scale held at 0.1 for the first passes and calibrated from then on, the learning rate lowered on its
    plateaus) stack, and each ends as it ends alone."""
    train, val = tiny("gaussian")
    specs = [(1, 0, {}), (3, 1, {"lr": 1e-2}), (2, 2, {"beta": 0.5}), (4, 3, {"weight_decay": 1e-4})]
    cfgs = [
        TrainConfig(epochs=25, batch_size=32, patience=3, lr_patience=2, seed=s, device="cpu", epoch_steps=20, **kw)
        for _, s, kw in specs
    ]

    def linear(k: int, seed: int) -> VAE:
        torch.manual_seed(seed)
        return VAE(VAEConfig(8, k, likelihood="gaussian", hidden=(32, 16), linear=True))

    alone = []
    for (k, s, _), c in zip(specs, cfgs):
        model = linear(k, s)
        alone.append((model, fit(model, train, val, c)))
    models = [linear(k, s) for k, s, _ in specs]
    assert can_stack(models, cfgs)
    stack = StackedTrainer(models, cfgs, train, val)
    assert all(m._release == 20 and m.calibrated for m in stack.members)  # held for one epoch of 20 steps
    while not all(m.done for m in stack.members):
        stack.run_epoch()
    results = [m.finish() for m in stack.members]
    for (a, ra), b, rb in zip(alone, models, results):
        assert (ra.best_epoch, ra.stopped_early, len(ra.history)) == (rb.best_epoch, rb.stopped_early, len(rb.history))
        assert ra.best_val == pytest.approx(rb.best_val, abs=VAL_TOL)
        assert_same_history(ra.history, rb.history)
        assert_same_model(a, b)
    assert any(m.lr_drops for m in stack.members)  # the plateaus acted
