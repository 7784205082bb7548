"""Reading data sources into one validated ``Data`` object.

This module is zdim's one validation gate: every bad-input error is raised here as a ``DataError``
whose message names the bad value, what was expected and how to fix it.

A source (path, array, or embedded name) is read by a small per-format reader into ``_Raw`` (samples
in source order, unscaled); ``_build`` then shuffles with the seed, splits, scales, checks values,
picks the likelihood and standardizes Gaussian data with training statistics. Count data (``poisson``,
``nb``) are kept as raw counts: neither scaled nor standardized.
"""

from __future__ import annotations

import functools
import numbers
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ParamSpec

import numpy as np
import torch
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    import pandas as pd

from ..errors import DataError, DataNoteWarning
from ..formats import _FORMATS, EMBEDDED, LIKELIHOOD_CHOICES
from ..likelihoods import find as find_likelihood
from ..likelihoods import get as get_likelihood
from ..messages import python_message, speaks_python
from .columns import drop_columns, encode_raw, screen
from .prepare import (
    check_counts,
    check_finite,
    choose_likelihood,
    fingerprint_of,
    gather,
    spills,
    split_rows,
    standardize,
)
from .preprocessing import Preprocessing
from .raw import MIN_SAMPLES, _encode_labels, _raise_empty, _Raw  # noqa: F401 (MIN_SAMPLES re-exported)
from .readers import _has_columns, _read_source
from .spill import for_random_reads, spill_array

P = ParamSpec("P")


@dataclass(frozen=True, eq=False)
class Data:
    """A data set ready for training: flattened float32 tensors split three ways.

    Attributes
    ----------
    name : str
        Short display name (file stem, folder name, ``digits``, ``array``).
    source : str
        What the user passed (a path as given, an embedded name, or ``<array>``).
    train, val, test : torch.Tensor
        ``(n, D)`` float32. For ``gaussian`` data they are already standardized with statistics of
        the training split; for ``bernoulli`` and ``continuous-bernoulli`` data values lie in [0, 1];
        ``poisson`` and ``nb`` data are the raw non-negative integer counts.
    likelihood : {"bernoulli", "gaussian", "poisson", "nb", "continuous-bernoulli", "mixed:..."}
        Decoder likelihood inferred from the data (or forced by the caller): the name of a family of
        ``zdim.likelihoods`` (``zdim.likelihoods.get(data.likelihood)``); a mixed table's carries its
        column layout (``zdim.mixed``), and ``extra["columns"]`` its columns (``zdim.data.columns``).
    sample_shape : tuple of int
        Shape of one sample before flattening: ``(C, H, W)`` for images, ``(D,)`` otherwise.
    is_image : bool
        True for image sources (IDX images, image folders, ``digits``).
    y_train, y_val, y_test : numpy.ndarray or None
        Optional labels, kept for evaluation only.
    feature_names : list of str or None
        Column names for tabular data.
    mean, std : numpy.ndarray or None
        ``(D,)`` standardization statistics (gaussian data only), to map back to data units.
    scale : float
        What the reader divided the raw values by before standardization: 255 for 8-bit images and
        IDX pixels, 16 for ``digits``, 1 otherwise (count data are never scaled).
    fingerprint : str
        SHA-256 hex digest of the raw data and labels, recorded in ``run.json``.
    """

    name: str
    source: str
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    likelihood: str
    sample_shape: tuple[int, ...]
    is_image: bool = False
    y_train: np.ndarray | None = None
    y_val: np.ndarray | None = None
    y_test: np.ndarray | None = None
    feature_names: list[str] | None = None
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    fingerprint: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    scale: float = 1.0

    @property
    def n_features(self) -> int:
        return int(self.train.shape[1])

    @property
    def preprocessing(self) -> Preprocessing:
        """How raw samples of this data become the model's inputs (scale, then standardization)."""
        return Preprocessing.from_data(self)

    def summary(self) -> dict[str, Any]:
        """JSON-ready description: source, shape, likelihood, split sizes."""
        return {
            "name": self.name,
            "source": self.source,
            "sample_shape": list(self.sample_shape),
            "n_features": self.n_features,
            "likelihood": self.likelihood,
            "is_image": self.is_image,
            "n_train": int(self.train.shape[0]),
            "n_val": int(self.val.shape[0]),
            "n_test": int(self.test.shape[0]),
            "has_labels": self.y_train is not None,
            "fingerprint": self.fingerprint,
            **({"binarized": True} if self.extra.get("binarized") else {}),
            **({"notes": list(self.extra["notes"])} if self.extra.get("notes") else {}),
        }


def list_datasets() -> list[tuple[str, str]]:
    """Embedded data sets as ``(name, description)`` pairs; pass a name as ``source``."""
    return list(EMBEDDED.items())


def supported_formats() -> list[tuple[str, str]]:
    """File formats ``load_data`` reads from a path, as ``(pattern, description)`` pairs."""
    return list(_FORMATS)


def read_data(
    source: str | os.PathLike[str] | np.ndarray | torch.Tensor | pd.DataFrame,
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    label_column: str | None = None,
    likelihood: str = "auto",
    max_samples: int | None = None,
    layer: str | None = None,
    label_key: str | None = None,
    y: ArrayLike | None = None,
    test: str | os.PathLike[str] | np.ndarray | torch.Tensor | pd.DataFrame | None = None,
    array: str | None = None,
    binarize: bool = False,
    keep_columns: Sequence[str] | str | None = None,
) -> Data:
    """Read, validate and split a data source.

    Parameters
    ----------
    source : str, os.PathLike, numpy.ndarray, torch.Tensor or pandas.DataFrame
        A file or folder (see ``supported_formats()``), an embedded name (see ``list_datasets()``), an
        array ``(n, D)``, ``(n, H, W)`` or ``(n, C, H, W)``, or a DataFrame (take a label column out
        with ``label_column``; text columns make it a mixed table, see ``likelihood``).
    seed : int
        Seed of the shuffle that splits the samples (and picks ``max_samples`` of them).
    val_fraction, test_fraction : float
        Fractions in [0, 0.5) of the samples held out; each split gets at least one sample. A given
        test split (IDX folder with a t10k file) replaces ``test_fraction``.
    label_column : str, optional
        Table column (or ``.npz`` key, or ``.h5ad`` ``.obs`` column) taken as labels, kept for
        evaluation only.
    likelihood : {"auto", "bernoulli", "gaussian", "poisson", "nb", "continuous-bernoulli", "mixed"}
        ``auto``: bernoulli when every value lies in [0, 1]; ``nb`` (negative binomial) for count data:
        non-negative integers, some above 255 (integers all within 0..255 may be 8-bit pixels and stay
        gaussian, as do images: their readers scale them to [0, 1]); else gaussian. Gaussian data are
        standardized with the mean and std of the training split. ``poisson`` and ``nb`` need raw
        non-negative integer counts and keep them as they are (no scaling, no standardization).
        ``continuous-bernoulli`` (never picked by ``auto``) is the normalized density of grey levels in
        [0, 1] (Loaiza-Ganem & Cunningham 2019).
        ``mixed`` (``auto`` for a table with a text, bool or categorical column): each column its own
        likelihood (``zdim.data.columns``): numbers Gaussian (standardized), two-valued columns Bernoulli,
        other text columns categorical over the training split's values plus an ``<unknown>`` bucket;
        ``Data.likelihood`` is then the layout's name, e.g. ``mixed:g4,b5,c4.7``.
    max_samples : int, optional
        Keep only this many samples (of each file for an IDX folder) after the seeded shuffle.
    layer : str, optional
        ``.h5ad`` only: the ``.layers`` entry to read (e.g. ``"counts"``); default ``.X``.
    label_key : str, optional
        ``.h5ad`` only: the ``.obs`` column taken as labels (as ``label_column`` does for tables).
    y : array-like, optional
        Labels of the samples of ``source`` (one per sample), kept for evaluation only; they replace
        labels the source itself holds.
    test : path, array, tensor or DataFrame, optional
        A test split given by the user (read like ``source``, with the same ``label_column``, ``layer``
        and ``label_key``; an ``.npz`` or IDX folder holding a test split gives that split), replacing
        ``test_fraction`` and any test split of the source: it must have the same number of features,
        and gets the training split's scaling and standardization. Its labels (if any) are kept only
        when the training samples have labels too.
    array : str, optional
        ``.npz`` only: the key of the array to read (labels from ``y`` + its suffix, e.g. ``y_train``
        for ``X_train``, when present). Without it, a file holding ``X_train`` and ``X_test`` (and
        optionally ``y_train``, ``y_test``) gives the training samples and the test split.
    binarize : bool
        Data in [0, 1] only (Bernoulli likelihood): the validation and test splits are binarized once,
        with a fixed seed (pixel ~ Bernoulli(grey level)), as in the literature's dynamically binarized
        MNIST; the training split stays grey and is binarized afresh at every step when training with
        ``TrainConfig(binarize=True)``.
    keep_columns : sequence of str or str, optional
        Tables only: columns to model as they are (``"id,date"`` or a list). Without it a column that
        holds one value in every row is dropped, and a text column with a distinct value in nearly every
        row (an identifier or a date) is refused; what reading did is in ``Data.extra["notes"]``, one line
        each (``zdim.load_data`` also warns with each, as a ``zdim.errors.DataNoteWarning``).

    Returns
    -------
    Data
        Flattened float32 splits ``(n, D)`` with labels, likelihood and fingerprint.

    Raises
    ------
    DataError
        For any missing, malformed or unsuitable input; the message names the value and the fix.
    """
    _check_options(val_fraction, test_fraction, likelihood, max_samples)
    raw, given = _read_source(source, label_column, layer=layer, label_key=label_key, array=array)
    keep = (keep_columns.split(",") if isinstance(keep_columns, str) else list(keep_columns)) if keep_columns else []
    screen(raw, given, likelihood, keep)  # columns that cannot inform a model: dropped, refused or said
    if y is not None:
        _set_labels(raw, y, given)
    if test is not None:
        _set_test(raw, given, test, label_column, layer, label_key)
    if y is not None and raw.x_test is not None and (raw.y is None or raw.y_test is None):
        raise DataError(
            f"{given}: y= labels the training samples but the given test split has no labels, so the "
            "model could not be evaluated with them: give the test split labels too, or leave y out"
        )
    data = _build(
        raw,
        given,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        likelihood=likelihood,
        max_samples=max_samples,
    )
    return _binarized(data, seed) if binarize else data


def _warns_notes(fn: Callable[P, Data]) -> Callable[P, Data]:
    """``fn`` with each note of what reading did (a column dropped, a column modelled as yes/no) given
    to the caller as a ``DataNoteWarning``, in keywords."""

    @functools.wraps(fn)
    def inner(*args: P.args, **kwargs: P.kwargs) -> Data:
        data = fn(*args, **kwargs)
        for note in data.extra.get("notes", ()):
            warnings.warn(python_message(f"{data.name}: {note}"), DataNoteWarning, stacklevel=2)
        return data

    return inner


load_data = _warns_notes(speaks_python(read_data))  # the public door: keywords, not flags; notes as warnings


def _binarized(data: Data, seed: int) -> Data:
    """``data`` with fixed binarized validation and test splits (see ``load_data(binarize=True)``)."""
    if not get_likelihood(data.likelihood).binary:
        raise DataError(
            f"{data.name}: binarize needs data in [0, 1] (a Bernoulli likelihood), found {data.likelihood} "
            "data: leave out binarize (--binarize), or pass data scaled to [0, 1]"
        )
    gen = torch.Generator().manual_seed(seed + 1)
    val, test = torch.bernoulli(data.val, generator=gen), torch.bernoulli(data.test, generator=gen)
    return replace(
        data,
        val=val,
        test=test,
        fingerprint=f"{data.fingerprint}-binarized-{seed}",
        extra={**data.extra, "binarized": True},
    )


# ----------------------------------------------------------------------------- options and dispatch


def _set_labels(raw: _Raw, y: ArrayLike, given: str) -> None:
    """Labels passed as ``y=``: one per sample of the source (they replace the reader's)."""
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    values = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)
    if values.ndim != 1:
        raise DataError(
            f"y of shape {values.shape} is not one label per sample: pass a 1-D array of {len(raw.x)} labels"
        )
    raw.y, raw.label_names = _encode_labels(values, f"{given}: y", len(raw.x))


def _set_test(
    raw: _Raw,
    given: str,
    test: object,
    label_column: str | None,
    layer: str | None,
    label_key: str | None,
) -> None:
    """Read a user-given test split into ``raw.x_test``/``raw.y_test``; a feature count other than the
    training data's is a one-line ``DataError``. A test source that holds a test split of its own (an
    ``.npz`` with ``X_test``, an IDX folder with a t10k file) gives that split."""
    what = _has_columns(test) if label_column is not None else None
    if what is not None:
        shown = os.fspath(test) if isinstance(test, (str, os.PathLike)) else f"<{what.split()[-1]}>"
        raise DataError(
            f"--test {shown}: {what} has no columns, so --label-column {label_column!r} cannot take its labels: "
            "pass a test table (.csv, .tsv, .parquet) with the same columns, or leave --test out"
        )
    test_raw, test_given = _read_source(test, label_column, layer=layer, label_key=label_key)
    if test_raw.x_test is not None:
        test_raw.x, test_raw.y = test_raw.x_test, test_raw.y_test
    if test_raw.table:  # the columns the training table left out
        drop_columns(test_raw, [n for n in raw.dropped if n in (test_raw.feature_names or [])])
    d_train, d_test = int(np.prod(raw.sample_shape)), int(np.prod(test_raw.sample_shape))
    if d_test != d_train:
        raise DataError(
            f"test split {test_given}: {d_test} features per sample, but the training data {given} has "
            f"{d_train}: pass a test split with the same {d_train} features"
        )
    if len(test_raw.x) == 0:
        raise DataError(f"test split {test_given}: no samples: pass a test split with at least one sample")
    raw.x_test, raw.frame_test = test_raw.x, test_raw.frame
    if test_raw.frame is not None and raw.frame is None:  # text in the test split only: read both as tables
        import pandas as pd

        raw.frame = pd.DataFrame(
            raw.x.reshape(len(raw.x), -1), columns=raw.feature_names or list(test_raw.frame.columns)
        )
    raw.test_where = test_given
    has_labels = raw.y is not None and test_raw.y is not None
    if has_labels and (raw.label_names is not None or test_raw.label_names is not None):
        if raw.label_names is None or test_raw.label_names is None:
            has_labels = False  # text labels on one side only: not comparable
        else:  # text labels: codes into the union of both splits' class names
            names = sorted(set(raw.label_names) | set(test_raw.label_names))
            index = {name: i for i, name in enumerate(names)}
            assert raw.y is not None and test_raw.y is not None
            raw.y = np.array([index[raw.label_names[c]] for c in raw.y], dtype=np.int64)
            test_raw.y = np.array([index[test_raw.label_names[c]] for c in test_raw.y], dtype=np.int64)
            raw.label_names = names
    raw.y_test = test_raw.y if has_labels else None
    if not has_labels:
        raw.y = raw.label_names = None


def _check_options(val_fraction: float, test_fraction: float, likelihood: str, max_samples: int | None) -> None:
    # Each fraction below 0.5 keeps their sum below 1, so the training split is never empty.
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 0.5:
            raise DataError(f"{name}={value!r} is outside [0, 0.5): pass a fraction such as 0.1")
    if likelihood not in LIKELIHOOD_CHOICES:
        raise DataError(
            f"likelihood={likelihood!r} is not one of {', '.join(LIKELIHOOD_CHOICES)}: "
            "pass --likelihood auto to infer it from the data"
        )
    if max_samples is not None and (
        isinstance(max_samples, bool) or not isinstance(max_samples, numbers.Integral) or max_samples < 1
    ):
        raise DataError(
            f"max_samples={max_samples!r} is not a positive integer: pass e.g. "
            "--max-samples 1000, or leave it out to use every sample"
        )


# ----------------------------------------------------------------------------- per-format readers


def _build(
    raw: _Raw,
    given: str,
    *,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    likelihood: str,
    max_samples: int | None,
) -> Data:
    x = raw.x.reshape(len(raw.x), int(np.prod(raw.sample_shape)))  # (n, D); a view of a memory map
    if x.size == 0:
        _raise_empty(given, *x.shape)
    split = split_rows(raw, x, given, seed, val_fraction, test_fraction, max_samples)
    columns = encode_raw(raw, split["train"][1], likelihood, given)
    if columns is not None:  # the encoded table replaces the placeholder rows; its likelihood is its layout
        x, likelihood = raw.x, columns.likelihood
        split = {k: (raw.x_test if k == "test" and raw.x_test is not None else x, idx) for k, (_, idx) in split.items()}
    rows = {key: np.sort(idx) for key, (_, idx) in split.items()}  # sorted reads suit memory maps
    spilled = spills(split, rows)
    asked = find_likelihood(likelihood)  # None for auto
    counts = asked is not None and asked.counts
    scale = 1.0 if counts else raw.scale  # counts stay raw (pixels 0..255)
    parts = {
        key: gather(src, rows[key], scale, spill_array(len(rows[key]), src.shape[1]) if spilled else None)
        for key, (src, _) in split.items()
    }  # float32 copies, in RAM or in unlinked spill files
    apart = raw.test_where is not None  # a test split given apart (--test) is named in its own messages
    groups = [({k: v for k, v in parts.items() if not (apart and k == "test")}, given)]
    if apart:
        groups.append(({"test": parts["test"]}, f"test split {raw.test_where}"))
    for group, where in groups:
        check_finite(group, rows, where, raw.feature_names)
        if counts:
            check_counts(group, rows, where, raw.feature_names, likelihood)
    kind = likelihood if columns is not None else choose_likelihood(parts, likelihood, given, raw.is_image)
    labels: dict[str, np.ndarray | None] = {key: None for key in parts}
    if raw.y is not None:
        y_test = raw.y if raw.x_test is None else raw.y_test
        assert y_test is not None  # readers keep labels only when the given test split has them too
        labels = {"train": raw.y[rows["train"]], "val": raw.y[rows["val"]], "test": y_test[rows["test"]]}
    fingerprint = fingerprint_of(parts, labels, kind)
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    if columns is not None:  # only the numbers are standardized (mean 0, std 1 elsewhere)
        mean, std = standardize(parts, spilled, ~columns.numeric_mask())
    elif get_likelihood(kind).standardized:
        mean, std = standardize(parts, spilled)
    extra_spill = {"spilled": True} if spilled else {}
    for values in parts.values() if spilled else ():
        values.flush()  # type: ignore[attr-defined]  # written back now: clean pages, reclaimable
        for_random_reads(values)  # training gathers random rows: no read-ahead
    extra: dict[str, Any] = {
        "test_split": "given" if raw.x_test is not None else "random",
        "n_source": len(x),
        **extra_spill,
    }
    if raw.label_names is not None:
        extra["label_names"] = raw.label_names
    if columns is not None:
        extra["columns"] = columns.to_dict()
    if raw.notes:
        extra["notes"] = list(raw.notes)
    tensors = {key: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for key, v in parts.items()}
    return Data(
        name=raw.name,
        source=given,
        train=tensors["train"],
        val=tensors["val"],
        test=tensors["test"],
        likelihood=kind,
        sample_shape=raw.sample_shape,
        is_image=raw.is_image,
        y_train=labels["train"],
        y_val=labels["val"],
        y_test=labels["test"],
        feature_names=raw.feature_names,
        mean=mean,
        std=std,
        fingerprint=fingerprint,
        extra=extra,
        scale=float(scale),
    )
