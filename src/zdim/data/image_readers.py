"""Readers of images: IDX files (MNIST's format, gzipped or not), a folder of IDX files, and a folder of
PNG/JPEG files (one sub-folder per label). Each returns a ``zdim.data.raw._Raw``; every bad file is a
one-line ``DataError``."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    pass

from ..errors import DataError
from .raw import (
    _IDX_DTYPES,
    _IDX_RE,
    _IMAGE_SUFFIXES,
    _encode_labels,
    _from_array,
    _names,
    _Raw,
    _read_errors,
    _stem,
)


def _read_idx_array(path: Path) -> np.ndarray:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with _read_errors(path, "IDX file"), opener(path, "rb") as f:
        buf = f.read()
    if len(buf) < 4 or buf[:2] != b"\0\0" or buf[2] not in _IDX_DTYPES:
        raise DataError(
            f"{path}: not an IDX file (magic number {buf[:4].hex() or 'missing'}): "
            "expected 0x0000, a type code 0x08-0x0E and the number of dimensions"
        )
    ndim, dtype = buf[3], np.dtype(_IDX_DTYPES[buf[2]])
    start = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", buf[4:start]) if len(buf) >= start else ()
    need = int(np.prod(dims)) * dtype.itemsize
    if len(dims) != ndim or len(buf) - start != need:
        raise DataError(
            f"{path}: IDX header says shape {dims} ({need} bytes) but {len(buf) - start} "
            "bytes follow: the file is truncated or corrupt; download it again"
        )
    return np.frombuffer(buf, dtype, offset=start).reshape(dims)


def _read_idx(path: Path) -> _Raw:
    x = _read_idx_array(path)
    raw = _from_array(x, _stem(path), str(path))
    raw.scale = 255.0 if x.dtype == np.uint8 else 1.0
    sibling = path.name.replace("idx3", "idx1").replace("images", "labels")
    for name in dict.fromkeys([sibling, sibling.removesuffix(".gz"), sibling.removesuffix(".gz") + ".gz"]):
        if name != path.name and (path.parent / name).is_file():
            labels = _read_idx_array(path.parent / name).reshape(-1)
            raw.y, _ = _encode_labels(labels, str(path.parent / name), len(x))
            break
    return raw


def _read_folder(path: Path) -> _Raw:
    files = sorted(p for p in path.iterdir() if p.is_file())
    idx = {}  # one file per name without .gz, preferring the uncompressed one
    for p in reversed(files):
        match = _IDX_RE.match(p.name.lower())
        if match and match["ndim"] == "3":
            idx[p.name.lower().removesuffix(".gz")] = p
    if idx:
        return _read_idx_folder(path, sorted(idx.values()))
    images = _image_files(path)
    if images:
        return _read_images(path, images)
    found = sorted(p.name for p in path.iterdir())
    raise DataError(
        f"{path}: no recognizable data in this folder (found {_names(found, 5) or 'nothing'}): "
        "expected IDX files (train-images-idx3-ubyte[.gz], t10k-images-idx3-ubyte[.gz]) or "
        ".png/.jpg/.jpeg images, directly or one subfolder deep"
    )


def _read_idx_folder(path: Path, files: list[Path]) -> _Raw:
    train = [p for p in files if p.name.lower().startswith("train")]
    test = [p for p in files if p.name.lower().startswith(("t10k", "test"))]
    if len(files) == 1:
        raw = _read_idx(files[0])
    elif len(train) == 1 and len(test) == 1:
        raw, given = _read_idx(train[0]), _read_idx(test[0])
        if given.sample_shape != raw.sample_shape:
            raise DataError(
                f"{path}: {test[0].name} holds samples of shape {given.sample_shape} but "
                f"{train[0].name} of shape {raw.sample_shape}: use files of one data set"
            )
        has_labels = raw.y is not None and given.y is not None
        raw.x_test, raw.y_test = given.x, given.y if has_labels else None
        raw.y = raw.y if has_labels else None
    else:
        raise DataError(
            f"{path}: several IDX image files ({_names(p.name for p in files)}) and no "
            "single train/t10k pair: pass one file, or keep train-images-idx3-ubyte and "
            "t10k-images-idx3-ubyte in the folder"
        )
    raw.name = path.name
    return raw


def _image_files(path: Path) -> list[tuple[Path, str | None]]:
    """Images directly in ``path`` (no label), or one subfolder deep (label: the subfolder name)."""

    def images_in(folder: Path) -> list[Path]:
        return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES)

    subfolders = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    nested: list[tuple[Path, str | None]] = [(p, d.name) for d in subfolders for p in images_in(d)]
    direct = images_in(path)
    if direct:  # labels only when every image sits in a class subfolder
        return [(p, None) for p in direct + [q for q, _ in nested]]
    return nested


def _read_images(path: Path, files: list[tuple[Path, str | None]]) -> _Raw:
    from PIL import Image

    def open_image(p: Path, mode: str | None = None) -> tuple[tuple[int, int], str, np.ndarray | None]:
        try:
            with Image.open(p) as im:
                return im.size, im.mode, None if mode is None else np.asarray(im.convert(mode))
        except (OSError, SyntaxError, ValueError) as e:
            raise DataError(
                f"{p}: corrupt or unreadable image ({' '.join(str(e).split())}): remove or replace the file"
            ) from e

    headers = [open_image(p)[:2] for p, _ in files]  # sizes and modes, without decoding pixels
    (width, height), _ = headers[0]
    for (p, _), (size, _) in zip(files, headers):
        if size != (width, height):
            raise DataError(
                f"{path}: images have different sizes: {files[0][0]} is {width}x{height} but "
                f"{p} is {size[0]}x{size[1]}: resize them to one size"
            )
    gray = all(mode in ("L", "LA", "1") for _, mode in headers)
    mode, channels = ("L", 1) if gray else ("RGB", 3)
    x = np.empty((len(files), channels, height, width), dtype=np.uint8)  # (n, C, H, W)
    for i, (p, _) in enumerate(files):
        pixels = open_image(p, mode)[2]
        assert pixels is not None  # decoded: a mode was given
        x[i] = pixels.reshape(height, width, channels).transpose(2, 0, 1)
    raw = _Raw(x=x, name=path.name, sample_shape=(channels, height, width), is_image=True, scale=255.0)
    if all(label is not None for _, label in files):
        raw.y, raw.label_names = _encode_labels(np.array([lab for _, lab in files]), str(path), len(x))
    return raw
