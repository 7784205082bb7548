"""k folds of a small table, so that every row is held out once.

Under ``SMALL_TEST`` test rows, one test split is too small to tell sizes apart (the answer is flagged).
``fold_splits`` cuts the data's rows (train, validation and test together, in a seeded order) into k
folds: fold j is the test split of the j-th part, and the other rows are its training and validation
splits (in the data's own proportion). ``zdim.sweeps.execute`` trains the grid once per fold and
``zdim.answer.decide.pool`` joins the folds' held-out evidence: every row is held out once, in the same order
for every size, so the comparison stays paired.

The rows of Gaussian data keep the standardization of the data's first training split (its mean and
standard deviation are those of a split that overlaps every fold's test rows a little).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from ..errors import ConfigError
from .dataset import Data

SMALL_TEST = 150  # test rows below which the held-out evidence comes from k folds (folds "auto")
DEFAULT_FOLDS = 5
MIN_FOLD_TEST = 10  # rows a fold's test split needs at least


def auto_folds(data: Data) -> int:
    """The folds a sweep of ``data`` uses when not told: ``DEFAULT_FOLDS`` under ``SMALL_TEST`` test rows
    (where the data have rows enough for them), else 1 (no folds)."""
    rows = _rows(data)
    if int(data.test.shape[0]) >= SMALL_TEST or rows < DEFAULT_FOLDS * MIN_FOLD_TEST:
        return 1
    return DEFAULT_FOLDS


def check_folds(folds: int, data: Data) -> int:
    """``folds`` if the data can be cut into that many (0 and 1: no folds), else ``ConfigError``."""
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 0:
        raise ConfigError(f"folds must be an integer >= 0 (0 or 1: none), got {folds!r}: fix --folds")
    rows = _rows(data)
    if folds > 1 and rows // folds < MIN_FOLD_TEST:
        raise ConfigError(
            f"{folds} folds of {data.name}'s {rows} rows leave fewer than {MIN_FOLD_TEST} test rows a fold: "
            f"choose --folds <= {max(1, rows // MIN_FOLD_TEST)}"
        )
    return max(1, folds)


def _rows(data: Data) -> int:
    return int(data.train.shape[0] + data.val.shape[0] + data.test.shape[0])


def fold_order(data: Data, folds: int, seed: int) -> list[np.ndarray]:
    """The row indices (into train, validation and test together) of each fold's test split: a seeded
    permutation cut into ``folds`` parts of nearly equal size."""
    return list(np.array_split(np.random.default_rng(seed).permutation(_rows(data)), folds))


def fold_splits(data: Data, folds: int, seed: int = 0) -> list[Data]:
    """``data`` once per fold: fold j's test split is the j-th part of ``fold_order``; its other rows are
    the training and validation splits, in the data's own proportion of validation rows."""
    x = torch.cat([data.train, data.val, data.test])
    labels = [data.y_train, data.y_val, data.y_test]
    y = np.concatenate([np.asarray(v) for v in labels]) if all(v is not None for v in labels) else None
    share = data.val.shape[0] / max(1, data.train.shape[0] + data.val.shape[0])
    parts = fold_order(data, folds, seed)
    out = []
    for j, test in enumerate(parts):
        rest = np.concatenate([p for i, p in enumerate(parts) if i != j])
        n_val = max(1, round(share * len(rest)))
        val, train = rest[:n_val], rest[n_val:]
        pick = (lambda idx: None) if y is None else (lambda idx: y[idx])  # noqa: E731
        out.append(
            replace(
                data,
                train=x[torch.from_numpy(train)],
                val=x[torch.from_numpy(val)],
                test=x[torch.from_numpy(test)],
                y_train=pick(train),
                y_val=pick(val),
                y_test=pick(test),
                extra={**data.extra, "fold": [j, folds]},
            )
        )
    return out


__all__ = ["SMALL_TEST", "DEFAULT_FOLDS", "auto_folds", "check_folds", "fold_order", "fold_splits"]
