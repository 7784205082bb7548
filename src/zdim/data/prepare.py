"""Splitting, checking and scaling the rows of a source: split sizes, rows gathered in chunks (spilled to
disk when huge), finite and count checks, the likelihood chosen from the values, training moments and
standardization. Every bad value is a one-line ``DataError``; ``zdim.data.dataset._build`` calls these."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    pass

from ..errors import DataError
from ..likelihoods import find as find_likelihood
from ..likelihoods import infer as infer_likelihood
from . import spill
from .raw import MIN_SAMPLES, _Raw
from .spill import release

# Non-negative integers all within 0..255 may be 8-bit pixel intensities (a flattened image array, a
# table of grey levels): ``auto`` keeps them Gaussian, as before count likelihoods existed; only
# integers above this bound are taken for counts. Pass likelihood="nb" to model small counts as counts.
PIXEL_MAX = 255.0


def split_size(n: int, fraction: float) -> int:
    return max(1, int(n * fraction + 1e-9))


def check_count(n: int, where: str, max_samples: int | None) -> None:
    if n < MIN_SAMPLES:
        fix = f"raise --max-samples (now {max_samples})" if max_samples is not None else "pass more data"
        raise DataError(
            f"{where}: found {n} sample(s), need at least {MIN_SAMPLES} so that train, "
            f"validation and test each get one or more: {fix}"
        )


def split_rows(
    raw: _Raw, x: np.ndarray, where: str, seed: int, val_fraction: float, test_fraction: float, max_samples: int | None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Map each split to ``(array it is taken from, its row indices in shuffled order)``."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))[:max_samples]
    check_count(len(order), where, max_samples)
    n_val = split_size(len(order), val_fraction)
    if raw.x_test is not None:
        x_test = raw.x_test.reshape(len(raw.x_test), -1)
        test = (x_test, rng.permutation(len(x_test))[:max_samples])
        if len(test[1]) == 0:
            raise DataError(f"{where}: the given test file holds no samples: use a complete t10k file")
        return {"train": (x, order[n_val:]), "val": (x, order[:n_val]), "test": test}
    n_test = split_size(len(order), test_fraction)
    return {
        "train": (x, order[n_test + n_val :]),
        "val": (x, order[n_test : n_test + n_val]),
        "test": (x, order[:n_test]),
    }


_CHUNK_BYTES = 64 << 20  # rows are copied and checked this many bytes at a time


def chunk_rows(n_features: int, itemsize: int = 4) -> int:
    return max(1, _CHUNK_BYTES // max(1, n_features * itemsize))


def gather(src: np.ndarray, rows: np.ndarray, scale: float = 1.0, out: np.ndarray | None = None) -> np.ndarray:
    """``src[rows] / scale`` as a float32 array ``(len(rows), D)``, copied in chunks of rows.

    ``out`` is a fresh array unless given (a spill file's map, see ``zdim.data.spill``). From a memory map
    the pages read are released from this process after each chunk (they stay in the page cache), so
    a large file is not resident here on top of the copy: peak memory is the copy, not the copy plus
    the file; a spilled ``out`` is released the same way.
    """
    if out is None:
        out = np.empty((len(rows), src.shape[1]), dtype=np.float32)
    step = chunk_rows(src.shape[1], src.itemsize)
    ordered = len(rows) < 2 or bool(np.all(rows[1:] >= rows[:-1]))
    start = 0
    while start < len(rows):
        end = min(start + step, len(rows))
        if ordered:  # a chunk also spans at most `step` rows of the source: sparse rows (a small
            # split of a large file) would otherwise fault the whole file in through the kernel's
            # read-around before the release below, and the peak RSS would be the file's size
            end = max(start + 1, min(end, int(np.searchsorted(rows, rows[start] + step))))
        out[start:end] = src[rows[start:end]]
        if scale != 1.0:
            out[start:end] /= np.float32(scale)
        release(src)  # a no-op for arrays in RAM and for copy-on-write maps
        release(out)
        start = end
    return out


def spills(split: dict[str, tuple[np.ndarray, np.ndarray]], rows: dict[str, np.ndarray]) -> bool:
    """Whether the splits go to spill files: a memory-mapped source whose float32 splits would take
    more than ``zdim.data.spill.threshold()`` bytes of RAM (the values are the same either way)."""
    mapped = all(isinstance(src, np.memmap) for src, _ in split.values())
    size = sum(len(r) * src.shape[1] * 4 for (src, _), r in zip(split.values(), rows.values()))
    return mapped and size > spill.threshold()


def check_finite(
    parts: dict[str, np.ndarray], rows: dict[str, np.ndarray], where: str, feature_names: list[str] | None
) -> None:
    count, first = 0, None  # first: (row, column) of the first bad value
    for key, values in parts.items():
        for start, chunk in chunks(values):  # a boolean mask of a chunk, not of the whole split
            bad = ~np.isfinite(chunk)
            if bad.any():
                count += int(bad.sum())
                r, c = np.argwhere(bad)[0]
                first = min(first or (np.inf, 0), (int(rows[key][start + r]), int(c)))
    if count and first is not None:
        row, col = first
        name = f" ('{feature_names[col]}')" if feature_names else ""
        raise DataError(
            f"{where}: {count} NaN or infinite value(s), the first at row {row}, column "
            f"{col}{name} (0-based): remove or impute them before running zdim"
        )


def chunks(values: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """``(first row, chunk)`` over row chunks of ``values`` (about ``_CHUNK_BYTES`` each); a spilled
    map's pages are released after each."""
    step = chunk_rows(values.shape[1])
    for start in range(0, len(values), step):
        yield start, values[start : start + step]
        release(values)


def is_whole(chunk: np.ndarray) -> np.ndarray:
    """Elementwise: the value is an integer (``chunk`` holds finite values)."""
    return np.asarray(np.floor(chunk) == chunk)


def choose_likelihood(parts: dict[str, np.ndarray], likelihood: str, where: str, is_image: bool) -> str:
    low, high, whole = np.inf, -np.inf, True
    for values in parts.values():  # one pass: a spilled split is read from its file once
        for _, chunk in chunks(values):
            low, high = min(low, float(chunk.min())), max(high, float(chunk.max()))
            whole = whole and bool(is_whole(chunk).all())
    family = find_likelihood(likelihood)
    if family is None:  # auto
        counts = whole and low >= 0.0 and high > PIXEL_MAX and not is_image
        return infer_likelihood(low >= 0.0 and high <= 1.0, counts).name
    family.check_range(low, high, where)
    return family.name


def check_counts(
    parts: dict[str, np.ndarray],
    rows: dict[str, np.ndarray],
    where: str,
    feature_names: list[str] | None,
    likelihood: str,
) -> None:
    """A count likelihood needs non-negative integers: else a ``DataError`` naming how many values are
    not, and the first (in source order) with its row and column."""
    count, first = 0, None  # first: (row, column, value) of the first bad value
    for key, values in parts.items():
        for start, chunk in chunks(values):
            bad = (chunk < 0) | ~is_whole(chunk)
            if bad.any():
                count += int(bad.sum())
                r, c = np.argwhere(bad)[0]
                here = (int(rows[key][start + r]), int(c), float(chunk[r, c]))
                first = here if first is None else min(first, here)
    if count and first is not None:
        row, col, value = first
        name = f" ('{feature_names[col]}')" if feature_names else ""
        raise DataError(
            f"{where}: likelihood '{likelihood}' needs raw counts (non-negative integers), found {count} "
            f"other value(s), the first {value:g} at row {row}, column {col}{name} (0-based): pass the raw "
            "counts (not normalized or log-transformed; for .h5ad a counts layer, e.g. layer='counts'), "
            "or a likelihood for real values: one of auto, bernoulli, gaussian"
        )


def fingerprint_of(parts: dict[str, np.ndarray], labels: dict[str, np.ndarray | None], kind: str) -> str:
    """SHA-256 of the data as used: splits in order (before standardization), labels, likelihood."""
    digest = hashlib.sha256(f"zdim-data-v1 {kind}".encode())
    for key, values in parts.items():
        digest.update(f"{key} {values.shape}".encode())
        for _, chunk in chunks(values):  # the same bytes in order as one update: the same digest
            digest.update(np.ascontiguousarray(chunk).data)  # hashed in place, no copy
        if labels[key] is not None:
            digest.update(np.ascontiguousarray(labels[key]).astype("<f8").data)
    return digest.hexdigest()


def train_moments(train: np.ndarray, spilled: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std ``(D,)`` (float64) of the training split; chunk by chunk when it is spilled (two
    passes, no whole-split temporary: numpy's ``std`` would make a float64 copy of it)."""
    if not spilled:
        return train.mean(axis=0, dtype=np.float64), train.std(axis=0, dtype=np.float64)
    total = np.zeros(train.shape[1])
    for _, chunk in chunks(train):
        total += chunk.sum(axis=0, dtype=np.float64)
    mean = total / len(train)
    sq = np.zeros(train.shape[1])
    for _, chunk in chunks(train):
        sq += ((chunk - mean) ** 2).sum(axis=0)
    return mean, np.sqrt(sq / len(train))


def standardize(
    parts: dict[str, np.ndarray], spilled: bool = False, keep: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Standardize every split in place with the training split's mean and std ``(D,)``; the features
    of the mask ``keep`` stay as they are (mean 0, std 1: a mixed table's binaries and categories)."""
    mean64, std = train_moments(parts["train"], spilled)
    if keep is not None:
        mean64, std = np.where(keep, 0.0, mean64), np.where(keep, 1.0, std)
    mean = mean64.astype(np.float32)
    # A feature constant in training keeps unit scale (as scikit-learn's StandardScaler does): a tiny
    # floor would blow a held-out value that differs into the millions and the encoder with it.
    std = np.where(std < 1e-6, 1.0, std).astype(np.float32)
    for values in parts.values():
        for _, chunk in chunks(values) if spilled else ((0, values),):
            chunk -= mean
            chunk /= std
    return mean, std
