"""What every reader returns (``_Raw``: samples in source order, unscaled, labels, a given test split)
and the helpers readers share: the fewest samples accepted, one-line errors for unreadable or empty
sources, names shown in messages, labels encoded to integers."""

from __future__ import annotations

import re
import struct
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from ..errors import DataError

MIN_SAMPLES = 10
"""Fewest samples accepted: enough that train, validation and test each get one or more."""


def _raise_empty(where: str, n: int, d: int) -> None:
    raise DataError(
        f"{where}: empty data ({n} samples x {d} features): pass a source with at least "
        f"{MIN_SAMPLES} samples and one feature"
    )


_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


_IDX_RE = re.compile(r"^(?P<stem>.+?)[-.]idx(?P<ndim>\d)-ubyte(?P<gz>\.gz)?$")


_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, struct.error)


@dataclass
class _Raw:
    """What a reader returns: samples ``(n, ...)`` in source order, before scaling by ``1/scale``."""

    x: np.ndarray
    name: str
    sample_shape: tuple[int, ...]
    is_image: bool = False
    scale: float = 1.0
    y: np.ndarray | None = None
    label_names: list[str] | None = None
    feature_names: list[str] | None = None
    x_test: np.ndarray | None = None  # a given test split (IDX folder with a t10k file)
    y_test: np.ndarray | None = None
    test_where: str | None = None  # where a test split given apart came from (``--test``), for messages
    frame: pd.DataFrame | None = None  # a table with text columns (zdim.data.columns encodes it); x: placeholder
    frame_test: pd.DataFrame | None = None  # the same, of a test split given apart
    table: bool = False  # rows of named columns (CSV, TSV, Parquet, DataFrame): zdim.data.columns.screen reads them
    dropped: list[str] = field(default_factory=list)  # columns left out (one value in every row)
    notes: list[str] = field(default_factory=list)  # what reading did that the user should hear, one line each


@contextmanager
def _read_errors(path: Path, what: str) -> Iterator[None]:
    """Turn a library's read error into a ``DataError`` naming the file."""
    try:
        yield
    except DataError:
        raise
    except _READ_ERRORS as e:
        reason = " ".join(str(e).split())
        raise DataError(f"{path}: cannot read it ({reason}): check that it is a valid, complete {what}") from e


def _stem(path: Path) -> str:
    name = path.name[:-3] if path.name.lower().endswith(".gz") else path.name
    match = _IDX_RE.match(path.name.lower())
    return path.name[: len(match["stem"])] if match else Path(name).stem


def _names(values: Iterable[object], limit: int = 10) -> str:
    names = [str(v) for v in values]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(f"'{v}'" for v in names[:limit]) + more


def _from_array(x: np.ndarray, name: str, where: str) -> _Raw:
    if x.dtype.kind not in "biuf":
        raise DataError(f"{where}: values of dtype {x.dtype} are not numbers: pass a float, integer or bool array")
    if x.ndim not in (2, 3, 4):
        raise DataError(
            f"{where}: array of shape {tuple(x.shape)} has {x.ndim} dimension(s), expected "
            "(n, D), (n, H, W) or (n, C, H, W): reshape it, e.g. x.reshape(len(x), -1)"
        )
    shape = (1, *x.shape[1:]) if x.ndim == 3 else tuple(x.shape[1:])
    return _Raw(x=x, name=name, sample_shape=tuple(int(s) for s in shape), is_image=x.ndim > 2)


def _encode_labels(values: np.ndarray, where: str, n: int) -> tuple[np.ndarray, list[str] | None]:
    """Integer labels as int64; text labels as codes into sorted class names."""
    values = np.asarray(values)
    if len(values) != n:
        raise DataError(f"{where}: {len(values)} labels for {n} samples: give one label per sample")
    if values.dtype.kind in "biu":
        return values.astype(np.int64), None
    if values.dtype.kind == "f" and np.isfinite(values).all():
        whole = np.array_equal(values, np.round(values))
        return (values.astype(np.int64) if whole else values.astype(np.float64)), None
    missing = int(np.sum([v is None or (isinstance(v, float) and not np.isfinite(v)) for v in values]))
    if missing:
        raise DataError(f"{where}: {missing} label(s) missing: fill or drop those rows")
    names, codes = np.unique(values.astype(str), return_inverse=True)
    return codes.astype(np.int64).reshape(-1), [str(s) for s in names]
