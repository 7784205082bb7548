"""Data of known answer, for tests and validation benchmarks.

``make_planted_data(d, D, n)`` draws ``d`` uniform latent variables and maps them into ``D`` dimensions
through a random smooth (two-layer tanh) map, plus small Gaussian noise: a nonlinear manifold of
intrinsic dimension ``d``. A correct bottleneck search should recommend a size close to ``d``.
"""

from __future__ import annotations

import numpy as np


def make_planted_data(d: int, D: int, n: int, *, noise: float = 0.01, seed: int = 0, width: int = 64) -> np.ndarray:
    """``(n, D)`` float32 samples of a ``d``-dimensional nonlinear manifold in ``D`` dimensions.

    Parameters
    ----------
    d, D : int
        Intrinsic and ambient dimensions (``1 <= d <= D``).
    n : int
        Number of samples.
    noise : float
        Standard deviation of isotropic Gaussian noise added to the (unit-scaled) manifold.
    seed : int
        Seed of the map and of the samples.
    width : int
        Hidden width of the random map (more width: more curvature).
    """
    if not 1 <= d <= D:
        raise ValueError(f"need 1 <= d <= D, got d={d}, D={D}")
    rng = np.random.default_rng(seed)
    u = rng.uniform(-1.0, 1.0, size=(n, d))
    w1 = rng.normal(size=(d, width)) * 1.5
    b1 = rng.uniform(-1.0, 1.0, size=width)
    w2 = rng.normal(size=(width, D)) / np.sqrt(width)
    x = np.tanh(u @ w1 + b1) @ w2
    x = (x - x.mean(0)) / (x.std(0) + 1e-8)
    x += noise * rng.normal(size=x.shape)
    return np.asarray(x, dtype=np.float32)
