"""Per-format readers: each turns one kind of source into a ``_Raw`` (samples in source order, unscaled).

``zdim.data.dataset`` owns splitting, scaling, validation and the ``Data`` object; this module only reads,
raising a one-line ``DataError`` that names the file and the fix when a source cannot be read.
"""

from __future__ import annotations

import csv
import gzip
import importlib
import itertools
import os
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    import pandas as pd

from ..errors import DataError
from ..formats import _FORMATS, EMBEDDED
from .columns import is_text
from .image_readers import _read_folder, _read_idx
from .raw import (
    _IDX_RE,
    MIN_SAMPLES,
    _encode_labels,
    _from_array,
    _names,
    _raise_empty,
    _Raw,
    _read_errors,
    _stem,
)


def _read_source(
    source: object,
    label_column: str | None,
    *,
    layer: str | None = None,
    label_key: str | None = None,
    array: str | None = None,
) -> tuple[_Raw, str]:
    if isinstance(source, torch.Tensor):
        source = source.detach().cpu().numpy()
    if _is_frame(source):
        _no_anndata_options(layer, label_key, "a DataFrame")
        _no_array_option(array, "a DataFrame")
        return _from_frame(source, label_column, "<dataframe>"), "<dataframe>"  # type: ignore[arg-type]
    if isinstance(source, np.ndarray):
        _no_label_column(label_column, "an array")
        _no_anndata_options(layer, label_key, "an array")
        _no_array_option(array, "an array")
        return _from_array(source, "array", "<array>"), "<array>"
    if not isinstance(source, (str, os.PathLike)):
        raise DataError(
            f"data source of type {type(source).__name__} is not supported: pass a path, "
            "an embedded name (see `zdim datasets`), a NumPy array, a pandas DataFrame or a torch tensor"
        )
    given = os.fspath(source)
    path = Path(given).expanduser()
    if not path.exists() and given in EMBEDDED:
        _no_label_column(label_column, f"embedded '{given}' (its labels are read already)")
        _no_anndata_options(layer, label_key, f"embedded '{given}'")
        _no_array_option(array, f"embedded '{given}'")
        return _read_digits(), given
    if not path.exists():
        raise DataError(
            f"data source '{given}' not found: no such file or folder, and not an embedded "
            f"name ({', '.join(EMBEDDED)}); check the path, or run `zdim datasets`"
        )
    return _read_path(path, label_column, layer, label_key, array), given


def _is_frame(source: object) -> bool:
    """A pandas DataFrame, recognized without importing pandas."""
    return type(source).__name__ == "DataFrame" and type(source).__module__.startswith("pandas")


def _read_path(
    path: Path,
    label_column: str | None,
    layer: str | None = None,
    label_key: str | None = None,
    array: str | None = None,
) -> _Raw:
    kind = "folder" if path.is_dir() else _format_of(path)
    if kind != "npz":
        _no_array_option(array, f"a {kind}")
    if kind not in ("csv", "tsv", "parquet", "npz", "h5ad"):
        _no_label_column(label_column, f"a {kind} (labels come from IDX label files, subfolders or .npz keys)")
    if kind == "h5ad":
        if label_column is not None and label_key is not None and label_column != label_key:
            raise DataError(
                f"{path}: --label-column {label_column!r} and --label-key {label_key!r} both name the .obs "
                "label column: pass only one"
            )
        with _read_errors(path, ".h5ad file"):
            return _read_h5ad(path, layer, label_key if label_key is not None else label_column)
    _no_anndata_options(layer, label_key, f"a {kind}")
    readers = {
        "folder": lambda: _read_folder(path),
        "npy": lambda: _read_npy(path),
        "npz": lambda: _read_npz(path, label_column, array),
        "idx": lambda: _read_idx(path),
    }
    with _read_errors(path, "folder" if kind == "folder" else f"{kind} file"):
        return readers.get(kind, lambda: _read_table(path, kind, label_column))()


def _format_of(path: Path) -> str:
    name = path.name.lower()
    if _IDX_RE.match(name):
        return "idx"
    gz = name.endswith(".gz")
    suffix = Path(name[:-3] if gz else name).suffix
    if suffix in (".csv", ".tsv") or (suffix in (".npy", ".npz", ".parquet", ".h5ad") and not gz):
        return suffix[1:]
    shown = suffix + ".gz" if gz else suffix or "(none)"
    raise DataError(
        f"{path}: unknown data format, suffix '{shown}': supported are "
        f"{'; '.join(fmt for fmt, _ in _FORMATS)} (see `zdim datasets`)"
    )


def _no_label_column(label_column: str | None, what: str) -> None:
    if label_column is not None:
        raise DataError(
            f"--label-column {label_column!r} applies to tables (.csv, .tsv, .parquet) and "
            f".npz keys, not to {what}: leave --label-column out"
        )


def _no_anndata_options(layer: str | None, label_key: str | None, what: str) -> None:
    for flag, value in (("--layer", layer), ("--label-key", label_key)):
        if value is not None:
            raise DataError(f"{flag} {value!r} applies to AnnData (.h5ad) files, not to {what}: leave {flag} out")


def _no_array_option(array: str | None, what: str) -> None:
    if array is not None:
        raise DataError(f"--array {array!r} names an array of an .npz file, not of {what}: leave --array out")


def _has_columns(source: object) -> str | None:
    """None when ``source`` can hold a label column (a table, an .npz, a DataFrame); else what it is."""
    if _is_frame(source):
        return None
    if isinstance(source, (np.ndarray, torch.Tensor)):
        return "an array"
    path = Path(os.fspath(source)) if isinstance(source, (str, os.PathLike)) else None
    if path is None or not path.exists():
        return None  # reading it says what is wrong
    kind = "folder" if path.is_dir() else _format_of(path)
    return None if kind in ("csv", "tsv", "parquet", "npz", "h5ad") else f"a {kind}"


def _read_digits() -> _Raw:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return _Raw(x=x, name="digits", sample_shape=(1, 8, 8), is_image=True, scale=16.0, y=y.astype(np.int64))


def _read_npy(path: Path) -> _Raw:
    with open(path, "rb") as f:
        np.lib.format.read_magic(f)  # a clear error for a non-.npy file, before numpy tries pickle
    return _from_array(np.load(path, mmap_mode="r", allow_pickle=False), _stem(path), str(path))


_NPZ_PAIRS = (("X_train", "X_test", "y_train", "y_test"), ("x_train", "x_test", "y_train", "y_test"))


def _read_npz(path: Path, label_column: str | None, array: str | None = None) -> _Raw:
    """An ``.npz`` archive: the array named ``array``; else ``X_train`` and ``X_test`` as the training
    source and the given test split (labels ``y_train``/``y_test``); else the only array, or the one
    named X/x/data (labels from key y/labels, or ``label_column``)."""
    with np.load(path, allow_pickle=False) as archive:
        keys = list(archive.files)
        if label_column is not None and label_column not in keys:
            raise DataError(
                f"{path}: label key '{label_column}' not found; keys are {_names(keys)}: "
                "pass one of them to --label-column"
            )
        if array is not None and array not in keys:
            raise DataError(f"{path}: array '{array}' not found; keys are {_names(keys)}: pass one of them to --array")
        pair = next((p for p in _NPZ_PAIRS if p[0] in keys and p[1] in keys), None) if array is None else None
        if pair is not None:
            return _read_npz_pair(path, archive, keys, pair, label_column)
        x_key: str | None
        if array is not None:
            x_key = array
            suffix = array[1:] if array[:1] in ("X", "x") else None  # X_train -> y_train
            guess = [f"y{suffix}"] if suffix else []
            y_key = label_column or next((k for k in (*guess, "y", "labels") if k in keys and k != x_key), None)
        else:
            y_key = label_column or next((k for k in ("y", "labels") if k in keys), None)
            data_keys = [k for k in keys if k != y_key]
            x_key = (
                data_keys[0] if len(data_keys) == 1 else next((k for k in ("X", "x", "data") if k in data_keys), None)
            )
        if x_key is None:
            raise DataError(
                f"{path}: cannot tell which array holds the data among {_names(keys)}: "
                "choose one with --array NAME (Python: array='NAME'), name it X (labels: y), "
                "or save only one array"
            )
        raw = _from_array(archive[x_key], _stem(path), f"{path}[{x_key}]")
        if y_key is not None:
            raw.y, raw.label_names = _encode_labels(archive[y_key], f"{path}[{y_key}]", len(raw.x))
    return raw


def _read_npz_pair(
    path: Path, archive: Any, keys: list[str], pair: tuple[str, str, str, str], label_column: str | None
) -> _Raw:
    x_key, xt_key, y_key, yt_key = pair
    raw = _from_array(archive[x_key], _stem(path), f"{path}[{x_key}]")
    test = _from_array(archive[xt_key], _stem(path), f"{path}[{xt_key}]")
    if test.sample_shape != raw.sample_shape:
        raise DataError(
            f"{path}: {xt_key} holds samples of shape {test.sample_shape} but {x_key} of shape "
            f"{raw.sample_shape}: save a test split of the training data's shape"
        )
    raw.x_test = test.x
    if label_column is None and y_key in keys and yt_key in keys:
        y, names = _encode_labels(archive[y_key], f"{path}[{y_key}]", len(raw.x))
        y_test, names_test = _encode_labels(archive[yt_key], f"{path}[{yt_key}]", len(test.x))
        if names is None and names_test is None:
            raw.y, raw.y_test = y, y_test
        else:  # text labels: codes into the union of both splits' class names
            both = np.concatenate([archive[y_key].astype(str), archive[yt_key].astype(str)])
            codes, raw.label_names = _encode_labels(both, f"{path}[{y_key}, {yt_key}]", len(both))
            raw.y, raw.y_test = codes[: len(raw.x)], codes[len(raw.x) :]
    return raw


def _read_table(path: Path, kind: str, label_column: str | None) -> _Raw:
    import pandas as pd

    note = None
    if kind == "parquet":
        frame = pd.read_parquet(path)
    else:
        expected = "\t" if kind == "tsv" else ","
        sep, decimal = _sniff(path, expected)
        frame = _read_csv(path, sep, label_column, decimal)
        _check_delimiter(path, frame, sep)
        if sep != expected:
            comma = ", with decimal commas" if decimal == "," else ""
            note = f"read as {_SEPARATORS[sep]}-separated{comma} (the separator its lines hold)"
    raw = _from_frame(frame, label_column, str(path), "--label-column NAME")
    raw.name = _stem(path)
    raw.notes += [note] if note else []
    return raw


_SEPARATORS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
_DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+")


def _sniff(path: Path, expected: str) -> tuple[str, str]:
    """The separator of a CSV or TSV file and its decimal mark, read from its first lines: the separator
    that splits the most of them into one number (> 1) of fields, ``expected`` first among equals (a
    semicolon-separated file, often with decimal commas, is read as such; a ragged one is read with the
    separator its lines hold, so its error names it); ``expected`` when none splits a line."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", newline="", errors="replace") as f:
            lines = [line for line in itertools.islice(f, 200) if line.strip()]
    except OSError:
        return expected, "."
    best, agree = expected, 0
    for sep in (expected, *(s for s in _SEPARATORS if s != expected)):
        widths = Counter(len(row) for row in csv.reader(lines, delimiter=sep))
        width, count = widths.most_common(1)[0] if widths else (1, 0)
        if width > 1 and count > agree:
            best, agree = sep, count
    cells = [c.strip() for row in csv.reader(lines[1:], delimiter=best) for c in row]
    return best, "," if best != "," and any(_DECIMAL_COMMA.fullmatch(c) for c in cells) else "."


def _from_frame(frame: pd.DataFrame, label_column: str | None, where: str, fix: str = "label_column='NAME'") -> _Raw:
    """A table: its columns are the features, ``label_column`` (if given) the labels. ``fix`` is how
    the caller names the label-column option in messages (a flag, or the Python keyword). A table with a
    text (or bool, or pandas categorical) column keeps its frame (``zdim.data.columns``)."""
    frame = frame.copy(deep=False)
    frame.columns = [str(c) for c in frame.columns]
    y = label_names = None
    if label_column is not None:
        if label_column not in frame.columns:
            raise DataError(
                f"{where}: label column '{label_column}' not found; columns are "
                f"{_names(frame.columns)}: pass one of them as {fix.split(' ')[0].split('=')[0]}"
            )
        y, label_names = _encode_labels(
            frame.pop(label_column).to_numpy(), f"{where} column '{label_column}'", len(frame)
        )
    if frame.size == 0:
        _raise_empty(where, *frame.shape)
    name = "dataframe" if where == "<dataframe>" else where
    if any(is_text(frame[c]) for c in frame.columns):  # a mixed table: encoded once its splits are known
        raw = _Raw(x=np.zeros((len(frame), frame.shape[1]), np.float32), name=name, sample_shape=(frame.shape[1],))
        raw.y, raw.label_names, raw.feature_names, raw.frame = y, label_names, list(frame.columns), frame
        raw.table = True
        return raw
    raw = _from_array(frame.to_numpy(dtype=np.float64), name, where)
    raw.y, raw.label_names, raw.feature_names, raw.table = y, label_names, list(frame.columns), True
    return raw


def _read_csv(path: Path, sep: str, label_column: str | None, decimal: str = ".") -> pd.DataFrame:
    import pandas as pd

    try:
        head = pd.read_csv(path, sep=sep, header=None, dtype=str, nrows=100, keep_default_na=False)
        cells = np.vectorize(lambda c: c.replace(",", "."))(head.to_numpy()) if decimal == "," else head.to_numpy()
        header = _has_header(cells, label_column)
        frame = pd.read_csv(path, sep=sep, header=0 if header else None, decimal=decimal)
    except pd.errors.EmptyDataError as e:
        raise DataError(f"{path}: the file is empty: pass a table with at least {MIN_SAMPLES} rows") from e
    except pd.errors.ParserError as e:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(e))
        if found is None:
            raise
        expected, line, saw = found.groups()
        raise _ragged(path, line, saw, expected, sep) from e
    if frame.isna().to_numpy().any():
        _check_short_rows(path, sep)  # pandas pads short rows with NaN silently
    return frame


def _check_delimiter(path: Path, frame: pd.DataFrame, sep: str) -> None:
    """A table read as one column whose cells hold another delimiter was written with that delimiter:
    say so, rather than "non-numeric column 'a;b;c'"."""
    if frame.shape[1] != 1:
        return
    cells = [str(frame.columns[0]), *(str(v) for v in frame.iloc[:20, 0])]
    for other, name in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe"), (",", "comma"), (" ", "space")):
        if other != sep and all(other in c for c in cells):
            want = "comma-separated (.csv)" if sep == "," else "tab-separated (.tsv)"
            raise DataError(
                f"{path}: every row reads as one column holding {name}s: the file looks {name}-separated, and "
                f"zdim reads it as {want}: convert it, e.g. pandas.read_csv(path, sep={other!r}).to_csv("
                "'table.csv', index=False), or save it with the right suffix"
            )


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _has_header(cells: np.ndarray, label_column: str | None) -> bool:
    """A header: a first row whose text cells sit over numeric columns, or a first row of text only."""
    first, rest = cells[0], cells[1:]
    text = [c != "" and not _is_number(c) for c in first]
    if label_column in first or (any(text) and all(t or c == "" for t, c in zip(text, first))):
        return True
    return any(t and all(_is_number(v) for v in rest[:, j] if v != "") for j, t in enumerate(text))


def _check_short_rows(path: Path, sep: str) -> None:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", newline="") as f:
        widths = ((i, len(row)) for i, row in enumerate(csv.reader(f, delimiter=sep), 1) if row)
        _, expected = next(widths)
        for line, width in widths:
            if width != expected:
                raise _ragged(path, line, width, expected, sep)


def _ragged(path: Path, line: object, width: object, expected: object, sep: str) -> DataError:
    return DataError(
        f"{path}: ragged table: line {line} has {width} fields, expected {expected}, read as "
        f"{_SEPARATORS.get(sep, repr(sep))}-separated: give every row the same number of columns"
    )


def _read_h5ad(path: Path, layer: str | None, label_key: str | None) -> _Raw:
    """An AnnData file: ``.X`` (or ``.layers[layer]``) as float32 ``(n_obs, n_vars)``, copied in row
    chunks so that a sparse matrix is never densified whole; labels from ``.obs[label_key]``; feature
    names from ``.var_names``. ``.X`` is read from the file lazily (``backed="r"``)."""
    try:
        anndata = importlib.import_module("anndata")  # optional extra; untyped, so imported by name
    except ImportError as e:
        raise DataError(f"{path}: reading .h5ad needs anndata: pip install 'zdim[anndata]'") from e

    adata = anndata.read_h5ad(path, backed="r")
    try:
        if layer is None:
            matrix = adata.X
            what = ".X"
        else:
            if layer not in adata.layers:
                raise DataError(
                    f"{path}: layer '{layer}' not found; layers are {_names(adata.layers.keys()) or 'none'}: "
                    "pass one of them as layer, or leave layer out to read .X"
                )
            matrix = adata.layers[layer]
            what = f".layers['{layer}']"
        if matrix is None:
            raise DataError(f"{path}: {what} is empty (no matrix stored): pass a layer that holds the data")
        x = _dense_rows(matrix, path, what)
        y = label_names = None
        if label_key is not None:
            columns = [str(c) for c in adata.obs.columns]
            if label_key not in columns:
                raise DataError(
                    f"{path}: label column '{label_key}' not found in .obs; columns are "
                    f"{_names(columns) or 'none'}: pass one of them as the label key"
                )
            y, label_names = _encode_labels(adata.obs[label_key].to_numpy(), f"{path} .obs['{label_key}']", len(x))
        feature_names = [str(v) for v in adata.var_names]
    finally:
        if adata.isbacked:
            adata.file.close()
    raw = _from_array(x, _stem(path), f"{path} {what}")
    raw.y, raw.label_names, raw.feature_names = y, label_names, feature_names
    return raw


_H5AD_CHUNK_BYTES = 64 << 20  # dense float32 bytes per row chunk read from an AnnData matrix


def _dense_rows(matrix: object, path: Path, what: str) -> np.ndarray:
    """Rows of an AnnData matrix (dense array, h5py dataset, scipy sparse or backed sparse) as one
    float32 array, read ``_H5AD_CHUNK_BYTES`` of dense rows at a time."""
    shape = getattr(matrix, "shape", None)
    dtype = getattr(matrix, "dtype", None)
    if shape is None or len(shape) != 2:
        raise DataError(f"{path}: {what} of type {type(matrix).__name__} is not a 2-D matrix: store a matrix there")
    if dtype is not None and np.dtype(dtype).kind not in "biuf":
        raise DataError(f"{path}: {what} holds values of dtype {dtype}, not numbers: store a numeric matrix")
    n, d = int(shape[0]), int(shape[1])
    out = np.empty((n, d), dtype=np.float32)
    step = max(1, _H5AD_CHUNK_BYTES // max(1, 4 * d))
    for start in range(0, n, step):
        block = matrix[start : start + step]  # type: ignore[index]
        if hasattr(block, "toarray"):  # scipy sparse rows: densified a chunk at a time
            block = block.toarray()
        out[start : start + step] = np.asarray(block, dtype=np.float32)
    return out
