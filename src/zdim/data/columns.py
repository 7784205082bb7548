"""The columns of a mixed table: which kind each is, and its encoding to and from the model's rows.

A table (CSV, Parquet, DataFrame) whose columns are not all numbers is read as a mixed table
(``--likelihood auto`` picks ``mixed``; ``zdim.mixed`` is its likelihood). Each column is one of:

- ``number``: a numeric column of three or more distinct values; standardized with the training split's
  mean and std; Gaussian.
- ``binary``: a column with two distinct values in the training split (text, bool, or numbers such as
  0/1); encoded 0/1 (1 for the second of its sorted values); Bernoulli.
- ``category``: a text (or pandas categorical) column of three or more distinct values; one-hot over its
  training split's categories plus one ``<unknown>`` bucket; a softmax over them.

Vocabularies come from the training split. A category the training split never saw (in the validation
or test split, a ``--test`` table, or rows given to a saved model) falls in the ``<unknown>`` bucket; a
third value in a binary column is a one-line ``DataError`` naming the column and the value. A missing
text value is the category ``<missing>``; a missing number is refused as in every table.

The encoded row is ordered numbers, binaries, categories (``zdim.mixed.Layout``); ``Columns`` maps it
back to the table's own columns and order (``decode``: numbers, and each binary's and category's most
likely value).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError
from ..likelihoods import MIXED, Gaussian
from ..likelihoods import infer as infer_likelihood
from ..mixed import Layout
from .prepare import PIXEL_MAX
from .raw import _names

if TYPE_CHECKING:
    import pandas as pd

    from .raw import _Raw

UNKNOWN = "<unknown>"  # the bucket of a category the training split never saw
MISSING = "<missing>"  # a missing text value: a category of its own
MAX_CATEGORIES = 1000  # more distinct values than this in a text column: an identifier or free text
DISTINCT_SHARE = 0.9  # a text column with a distinct value in this share of the rows: an identifier or a date
KINDS = ("number", "binary", "category")


@dataclass(frozen=True)
class Column:
    """One column of a mixed table: its name, kind and (binary, category) values in encoding order."""

    name: str
    kind: str
    values: tuple[Any, ...] = ()  # binary: its two values (0, 1); category: categories, UNKNOWN last


def is_text(series: pd.Series) -> bool:
    """Whether a column is not numbers (text, pandas categorical, bool): a mixed table's sign."""
    import pandas as pd

    return bool(pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series))


def _key(value: Any, numeric: bool) -> Any:
    """A cell as the key of its category: numbers as floats, missing text as ``MISSING``, else text."""
    if numeric:
        return float(value)
    if value is None or (isinstance(value, float) and value != value):
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    return str(value)


def _json(value: Any) -> Any:
    """A category value as JSON keeps it (whole floats of a numeric binary as ints)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class Columns:
    """The schema of a mixed table, fitted on its training rows: ``encode`` (table -> float32 rows in
    the layout's order, numbers in their own units), ``decode`` (rows in those units -> table)."""

    def __init__(self, columns: list[Column]) -> None:
        self.columns = columns
        order = {k: i for i, k in enumerate(KINDS)}
        self.ordered = sorted(columns, key=lambda c: order[c.kind])  # stable: the table's order per kind

    # ------------------------------------------------------------------------------------ describe

    @property
    def layout(self) -> Layout:
        kinds = [c.kind for c in self.ordered]
        cats = tuple(len(c.values) for c in self.ordered if c.kind == "category")
        return Layout(kinds.count("number"), kinds.count("binary"), cats)

    @property
    def likelihood(self) -> str:
        return self.layout.name

    @property
    def names(self) -> list[str]:
        """The table's column names, in its order."""
        return [c.name for c in self.columns]

    @property
    def feature_names(self) -> list[str]:
        """The encoded features' names: a number or binary its column's, a category ``column=value``."""
        out: list[str] = []
        for c in self.ordered:
            out += [f"{c.name}={v}" for v in c.values] if c.kind == "category" else [c.name]
        return out

    def numeric_mask(self) -> np.ndarray:
        """``(D,)`` bool: the encoded features that are numbers (the only ones standardized)."""
        return np.arange(self.layout.width) < self.layout.numbers

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": [{"name": c.name, "kind": c.kind, "values": [_json(v) for v in c.values]} for c in self.columns]
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Columns:
        """The inverse of ``to_dict``; ``ValueError``/``KeyError``/``TypeError`` on a malformed dict."""
        cols = []
        for c in d["columns"]:
            kind = str(c["kind"])
            if kind not in KINDS:
                raise ValueError(f"column kind {kind!r} is not one of {KINDS}")
            cols.append(Column(str(c["name"]), kind, tuple(c.get("values") or ())))
        return cls(cols)

    # ------------------------------------------------------------------------------------ fit

    @classmethod
    def fit(cls, frame: pd.DataFrame, where: str, whole: pd.DataFrame | None = None) -> Columns:
        """The kind and values of each column of ``frame`` (the training rows); a numeric column's kind
        (two values: binary) is read on ``whole`` when given (every row of the source), so that a third
        value outside the training rows makes it a number rather than an error."""
        import pandas as pd

        cols = []
        for name in frame.columns:
            s = frame[name]
            numeric = not is_text(s)
            if numeric:
                s = whole[name] if whole is not None else s
                distinct = pd.unique(s.dropna())
                if len(distinct) == 2 and not s.isna().any():
                    cols.append(Column(str(name), "binary", tuple(sorted(float(v) for v in distinct))))
                else:
                    cols.append(Column(str(name), "number"))
                continue
            keys = sorted({_key(v, False) for v in s.to_numpy()}, key=lambda v: (str(type(v)), v))
            if len(keys) > MAX_CATEGORIES:
                raise DataError(
                    f"{where}: text column '{name}' has {len(keys)} distinct values in the training split (more "
                    f"than {MAX_CATEGORIES}): an identifier or free text? drop it, or pass it as --label-column"
                )
            if len(keys) == 2:
                cols.append(Column(str(name), "binary", tuple(keys)))
            else:
                cols.append(Column(str(name), "category", (*keys, UNKNOWN)))
        return cls(cols)

    # ------------------------------------------------------------------------------------ encode

    def encode(self, frame: pd.DataFrame, where: str, rows: np.ndarray | None = None) -> np.ndarray:
        """``frame``'s rows as float32 ``(n, D)`` in the layout's order (numbers unstandardized). A column
        of the schema missing from ``frame``, or a third value of a binary column, is a ``DataError``;
        ``rows`` (source row numbers) name the row in that message."""
        missing = [n for n in self.names if n not in set(map(str, frame.columns))]
        if missing:
            shown = ", ".join(repr(n) for n in missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise DataError(
                f"{where}: lacks column(s) {shown} of the {len(self.names)} the table was read with: "
                "pass rows with the same columns"
            )
        frame = frame.set_axis([str(c) for c in frame.columns], axis=1)
        n = len(frame)
        out = np.zeros((n, self.layout.width), dtype=np.float32)
        at = 0
        for c in self.ordered:
            cells = frame[c.name].to_numpy()
            if c.kind == "number":
                try:
                    out[:, at] = np.asarray(cells, dtype=np.float64)
                except (TypeError, ValueError) as e:
                    raise DataError(
                        f"{where}: column '{c.name}' holds a value that is not a number ({e}): "
                        "pass numbers in it, as in the training rows"
                    ) from None
                at += 1
                continue
            numeric = isinstance(c.values[0], (int, float)) and not isinstance(c.values[0], bool)
            keys = [_key(v, numeric) for v in cells] if len(cells) else []
            index = {v: i for i, v in enumerate(c.values)}
            if c.kind == "binary":
                codes = np.array([index.get(k, -1) for k in keys], dtype=np.int64)
                bad = np.nonzero(codes < 0)[0]
                if len(bad):
                    i = int(bad[0])
                    row = int(rows[i]) if rows is not None else i
                    raise DataError(
                        f"{where}: column '{c.name}' takes two values in the training split ({_pair(c.values)}), "
                        f"found {keys[i]!r} at row {row}: keep only those values in it, or drop the column"
                    )
                out[:, at] = codes
                at += 1
            else:
                unknown = len(c.values) - 1
                codes = np.array([index.get(k, unknown) for k in keys], dtype=np.int64)
                out[np.arange(n), at + codes] = 1.0
                at += len(c.values)
        return out

    # ------------------------------------------------------------------------------------ decode

    def decode(self, x: np.ndarray) -> pd.DataFrame:
        """Rows ``(n, D)`` in the data's units (numbers unstandardized; binaries and categories as
        probabilities or one-hot) -> a table in the original column order: numbers, and the most likely
        value of each binary and category."""
        import pandas as pd

        out: dict[str, Any] = {}
        at = 0
        for c in self.ordered:
            if c.kind == "number":
                out[c.name] = x[:, at].astype(np.float64)
                at += 1
            elif c.kind == "binary":
                pick = np.where(x[:, at] >= 0.5, 1, 0)
                out[c.name] = np.array([c.values[i] for i in pick], dtype=object)
                at += 1
            else:
                pick = np.argmax(x[:, at : at + len(c.values)], axis=1)
                out[c.name] = np.array([c.values[i] for i in pick], dtype=object)
                at += len(c.values)
        for c in self.columns:  # a two-valued numeric column (0/1) comes back as numbers
            if c.kind == "binary" and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in c.values):
                out[c.name] = out[c.name].astype(np.float64)
        frame: pd.DataFrame = pd.DataFrame({n: out[n] for n in self.names})
        return frame


def screen(raw: _Raw, where: str, likelihood: str = "auto", keep: Sequence[str] = ()) -> None:
    """The columns of a table that cannot inform a model, before anything is split or trained (issue 37):

    - a column holding one value in every row is dropped (``raw.dropped``), with a note;
    - a text column with a distinct value in nearly every row (``DISTINCT_SHARE``: an identifier or a
      date, whose every test row would be a category the training split never saw) is refused in one
      line naming it;
    - a numeric column with two values is modelled as yes/no (Bernoulli), with a note: a table of
      numbers that ``auto`` would read as Gaussian is then read as a mixed table.

    ``keep`` (``--keep-columns``) names columns to model as they are. The notes go to ``raw.notes``, one
    line each. Only tables (named columns) are screened: a pixel that is always 0 is a feature of images.
    An array of numbers that ``auto`` reads as Gaussian is not changed, but its two-valued features are
    said (``two_valued_words``)."""
    if not raw.table:
        if keep:
            raise DataError(
                f"{where}: --keep-columns names table columns, and these data have no named columns: leave "
                "--keep-columns out"
            )
        raw.notes += two_valued_words(raw, likelihood)
        return
    import pandas as pd

    frame = raw.frame if raw.frame is not None else pd.DataFrame(raw.x, columns=raw.feature_names)
    names = [str(c) for c in frame.columns]
    unknown = [k for k in keep if k not in names]
    if unknown:
        raise DataError(
            f"{where}: --keep-columns names column '{unknown[0]}', which the table does not have; columns are "
            f"{_names(names)}: fix --keep-columns"
        )
    constant, binary = [], []
    for name, column in zip(names, frame.columns, strict=True):
        s = frame[column]
        if name in keep:
            continue
        if s.nunique(dropna=False) <= 1:
            constant.append(name)
            raw.notes.append(
                f"column '{name}' holds one value ({_cell(s.iloc[0])}) in every row: dropped, it cannot inform a "
                f"model (--keep-columns '{name}' keeps it)"
            )
        elif is_text(s) and not pd.api.types.is_bool_dtype(s):
            distinct = int(s.nunique(dropna=True))
            if distinct >= DISTINCT_SHARE * len(s):
                raise DataError(
                    f"{where}: text column '{name}' holds a distinct value in {distinct} of its {len(s)} rows: an "
                    "identifier or a date, which cannot inform a model (every test row would be a value the "
                    f"training split never saw): drop it from the table, or keep it with --keep-columns '{name}'"
                )
        elif not is_text(s) and s.nunique(dropna=True) == 2 and not s.isna().any():
            binary.append((name, sorted(float(v) for v in pd.unique(s))))
    if len(constant) == len(names):
        raise DataError(
            f"{where}: every column holds one value in every row: nothing to model; pass a table whose "
            "columns vary, or keep them with --keep-columns"
        )
    drop_columns(raw, constant)
    if raw.frame is not None and not any(is_text(raw.frame[c]) for c in raw.frame.columns):
        raw.x, raw.frame = raw.frame.to_numpy(dtype=np.float64), None  # its only text columns were dropped
    if binary and raw.frame is None and likelihood == "auto" and _auto_gaussian(raw.x):
        raw.frame = pd.DataFrame(raw.x, columns=raw.feature_names)  # read as a mixed table: yes/no and numbers
    if raw.frame is not None or likelihood == MIXED:
        for name, (no, yes) in binary:
            raw.notes.append(
                f"column '{name}' takes two values, {no:g} and {yes:g}: modelled as yes/no ({yes:g} is yes)"
            )


def two_valued_words(raw: _Raw, likelihood: str) -> list[str]:
    """One line per feature of a 2-D array, read as Gaussian by ``auto``, that takes two values: a Gaussian
    density on such a feature grows as the model learns it, up to the noise floor
    (``zdim.likelihoods.MIN_LOG_SIGMA``), so the held-out NLL rewards memorizing it over the structure of
    the rest (scikit-learn's diabetes, whose ``sex`` column is two values, reads so as an array). A table
    models such a column as yes/no; an array has no names to build one from, so zdim says it and leaves the
    likelihood as it is."""
    x = raw.x
    if likelihood != "auto" or raw.is_image or x.ndim != 2 or x.shape[1] < 2:
        return []
    # read on the first rows (a memory-mapped array is not read whole here): a feature with a third value
    # in them is not two-valued, and they say whether ``auto`` reads the array as Gaussian
    head = np.asarray(x[: min(len(x), 10_000)])
    maybe = [j for j in range(x.shape[1]) if len(np.unique(head[:, j])) <= 2]
    if not maybe or not _auto_gaussian(head):
        return []
    two = [(j, v) for j in maybe if len(v := np.unique(x[:, j])) == 2 and bool(np.isfinite(v).all())]
    names = raw.feature_names or []
    return [
        f"feature {j + 1}{f' ({names[j]!r})' if j < len(names) else ''} takes two values, {a:g} and {b:g}: "
        "under a Gaussian its density grows as the model learns it, so the held-out NLL rewards memorizing "
        "it; pass the data as a table (a DataFrame, or a CSV with a header) to model it as yes/no"
        for j, (a, b) in ((j, (float(v[0]), float(v[1]))) for j, v in two)
    ]


def drop_columns(raw: _Raw, names: Sequence[str]) -> None:
    """``names`` left out of ``raw``'s table (its frame, or its rows and feature names), and recorded in
    ``raw.dropped``, so that a test split given apart drops them too."""
    if not names:
        return
    gone = set(names)
    keep = [i for i, n in enumerate(raw.feature_names or []) if n not in gone]
    if raw.frame is not None:
        raw.frame = raw.frame.drop(columns=[c for c in raw.frame.columns if str(c) in gone])
        raw.x = np.zeros((len(raw.frame), raw.frame.shape[1]), np.float32)
    else:
        raw.x = raw.x[:, keep]
    raw.feature_names = [n for n in raw.feature_names or [] if n not in gone]
    raw.sample_shape = (len(raw.feature_names),)
    raw.dropped += [n for n in names if n not in raw.dropped]


def _cell(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return "missing" if value != value else f"{float(value):g}"
    return repr(value) if isinstance(value, str) else str(value)


def _auto_gaussian(x: np.ndarray) -> bool:
    """Whether ``--likelihood auto`` reads a table of numbers ``x`` as Gaussian (not [0, 1], not counts)."""
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        return False
    low, high = float(finite.min()), float(finite.max())
    counts = bool(np.all(finite == np.round(finite))) and low >= 0 and high > PIXEL_MAX
    return infer_likelihood(low >= 0 and high <= 1, counts).name == Gaussian.name


def _pair(values: tuple[Any, ...]) -> str:
    return " and ".join(repr(v) for v in values)


def encode_table(
    frame: pd.DataFrame, train_rows: np.ndarray, where: str, test: pd.DataFrame | None = None, test_where: str = ""
) -> tuple[np.ndarray, np.ndarray | None, Columns]:
    """A mixed table as encoded rows: the schema fitted on ``frame``'s ``train_rows``, the whole of
    ``frame`` (and of a given ``test`` table) encoded with it."""
    columns = Columns.fit(frame.iloc[np.sort(train_rows)], where, whole=frame)
    x = columns.encode(frame, where)
    x_test = columns.encode(test, test_where) if test is not None else None
    return x, x_test, columns


def encode_raw(raw: _Raw, train_rows: np.ndarray, likelihood: str, where: str) -> Columns | None:
    """A table with text columns (or any table under ``likelihood="mixed"``) encoded by ``zdim.data.columns``
    with the vocabularies of its training rows ``train_rows``: ``raw.x`` (and ``raw.x_test``) become the
    encoded rows, ``sample_shape`` their width and ``feature_names`` theirs. None for every other source;
    a ``DataError`` for text columns under another likelihood, and for ``mixed`` asked of images."""
    if raw.frame is None and likelihood == MIXED and (raw.is_image or len(raw.sample_shape) != 1):
        raise DataError(
            f"{where}: likelihood 'mixed' is for tables (rows of columns), and these data are samples of shape "
            f"{raw.sample_shape}: pass --likelihood auto, or a table"
        )
    if raw.frame is None and likelihood != MIXED:
        return None
    import pandas as pd  # only here: reading an array costs no pandas import

    if raw.frame is not None and likelihood not in ("auto", MIXED):
        text = [str(c) for c in raw.frame.columns if is_text(raw.frame[c])]
        raise DataError(
            f"{where}: text column(s) {', '.join(repr(c) for c in text[:5])} cannot have likelihood "
            f"'{likelihood}': pass --likelihood auto (or mixed) to model each column with its own likelihood, "
            "drop them, or take one as labels with --label-column"
        )
    names = raw.feature_names or [f"x{j}" for j in range(raw.x.shape[1])]
    frame = raw.frame if raw.frame is not None else pd.DataFrame(raw.x, columns=names)
    test = raw.frame_test
    if test is None and raw.x_test is not None:
        test = pd.DataFrame(raw.x_test.reshape(len(raw.x_test), -1), columns=names)
    x, x_test, columns = encode_table(frame, train_rows, where, test, f"test split {raw.test_where}")
    raw.x, raw.x_test, raw.sample_shape, raw.feature_names = x, x_test, (x.shape[1],), columns.feature_names
    return columns


__all__ = [
    "Column",
    "Columns",
    "encode_table",
    "encode_raw",
    "is_text",
    "screen",
    "drop_columns",
    "UNKNOWN",
    "MISSING",
    "MAX_CATEGORIES",
    "DISTINCT_SHARE",
]
