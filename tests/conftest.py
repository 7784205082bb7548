"""Shared fixtures: tiny data built directly (no loader), so model/train/search tests stay fast."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zdim.data.dataset import Data
from zdim.testing import make_planted_data

torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _no_folds_unless_asked():
    """A sweep of small data trains its grid once per fold by default (``zdim.data.folds``): five times the
    work. Tests of other features sweep tiny data in this process without them (module fixtures too:
    hence the session scope); the fold tests ask for folds by name (``folds=K``, ``--folds K``), which
    this does not touch. Sweeps in a subprocess get the default unless they pass ``--folds``."""
    import zdim.sweeps.planning.plan

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(zdim.sweeps.planning.plan, "auto_folds", lambda data: 1)
        yield


@pytest.fixture(autouse=True, scope="session")
def _one_pass_epochs_unless_asked():
    """An epoch is at least ``EPOCH_STEPS`` (100) optimizer steps by default, so a small table gets the steps a
    large one gets (issue 36): the tiny data of these tests (a few steps per pass) would train 20 to 100
    times longer per epoch than their epoch counts say. Tests in this process get one pass per epoch unless
    they ask (``TrainConfig(epoch_steps=...)``, ``--epoch-steps``); sweeps in a subprocess get the default."""
    import zdim.training.config

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(zdim.training.config, "EPOCH_STEPS", 1)
        yield


def pytest_collection_modifyitems(config, items):
    """Tests that drive headless Chromium are slow end-to-end tests (``make test-fast`` leaves them out)."""
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


def make_data(x: np.ndarray, likelihood: str = "gaussian", name: str = "tiny") -> Data:
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    n = len(t)
    a, b = int(n * 0.8), int(n * 0.9)
    return Data(
        name=name,
        source=name,
        train=t[:a],
        val=t[a:b],
        test=t[b:],
        likelihood=likelihood,
        sample_shape=(t.shape[1],),
        fingerprint=f"{name}-{n}",
    )


@pytest.fixture
def tiny_gaussian() -> Data:
    return make_data(make_planted_data(2, 8, 400, seed=1))


@pytest.fixture
def tiny_binary() -> Data:
    rng = np.random.default_rng(0)
    proto = rng.random((4, 16)) > 0.5
    x = proto[rng.integers(0, 4, 400)] ^ (rng.random((400, 16)) < 0.05)
    return make_data(x.astype(np.float32), likelihood="bernoulli", name="tinybin")
