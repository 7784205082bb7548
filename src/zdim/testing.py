"""Data of known answer, for tests and validation benchmarks.

``make_planted_data(d, D, n)`` draws ``d`` uniform latent variables and maps them into ``D`` dimensions
through a random smooth (two-layer tanh) map, plus small Gaussian noise: a nonlinear manifold of
intrinsic dimension ``d``. A correct bottleneck search should recommend a size close to ``d``.
``make_planted_table`` draws a mixed table (numbers, two-valued and categorical text columns) the same way.
"""

from __future__ import annotations

from typing import Any

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


def make_planted_table(
    d: int,
    numbers: int,
    categories: tuple[int, ...] = (3, 4),
    binaries: int = 1,
    n: int = 1000,
    *,
    noise: float = 0.01,
    seed: int = 0,
    width: int = 64,
) -> Any:
    """A mixed table (a pandas DataFrame) whose columns all come from ``d`` latent variables: ``numbers``
    numeric columns of ``make_planted_data``'s kind (``num0``...), ``binaries`` two-valued text columns
    (``bin0``...: ``"no"``/``"yes"``) and one text column per entry of ``categories`` with that many
    categories (``cat0``...: ``"a"``, ``"b"``...). A binary or category is the argmax of logits drawn
    through another random smooth map of the same latents, so it carries no noise of its own: a correct
    search recommends a size close to ``d``."""
    import pandas as pd

    logits_width = binaries + sum(categories)
    x = make_planted_data(d, numbers + logits_width, n, noise=noise, seed=seed, width=width)
    table: dict[str, Any] = {f"num{j}": x[:, j] for j in range(numbers)}
    at = numbers
    for j in range(binaries):
        table[f"bin{j}"] = np.where(x[:, at] > 0, "yes", "no")
        at += 1
    for j, k in enumerate(categories):
        pick = np.argmax(x[:, at : at + k], axis=1)
        table[f"cat{j}"] = np.array([chr(ord("a") + i) for i in pick])
        at += k
    return pd.DataFrame(table)
