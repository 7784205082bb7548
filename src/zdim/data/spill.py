"""Splits of a large memory-mapped source kept on disk instead of in RAM.

``load_data`` copies the samples of each split into a float32 array. For a memory-mapped source
whose splits would take more than ``SPILL_BYTES`` of RAM, that array is instead a memory map of a
temporary file (``spill_array``): the same values, as a ``torch.Tensor`` like any other split, but
its pages live in the page cache, not in the process. The file is unlinked as soon as it is mapped,
so nothing is left on disk when the process ends, however it ends.

While the splits are built (copied, checked, hashed, standardized chunk by chunk), ``release`` drops
the pages just walked from the process (``madvise(MADV_DONTNEED)``; the data stay in the file and the
page cache), so loading takes little memory of its own. Training then reads random rows: the pages it
touches are mapped into the process and count in its resident size (on recent kernels a whole large
page-cache folio per row), but they are clean file pages that the kernel reclaims when memory is short,
where an in-RAM copy of the same splits would be anonymous memory that has to fit.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import tempfile
from typing import Any

import numpy as np

from ..errors import DataError

SPILL_BYTES = 1 << 30  # splits of a memory-mapped source larger than this (float32) go to disk


def threshold() -> int:
    """Bytes of float32 splits above which a memory-mapped source spills: ``$ZDIM_SPILL_BYTES``, else
    ``SPILL_BYTES`` (0: always spill; a huge value: never)."""
    raw = os.environ.get("ZDIM_SPILL_BYTES")
    if not raw:
        return SPILL_BYTES
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise DataError(
            f"ZDIM_SPILL_BYTES={raw!r} is not a number of bytes >= 0: set e.g. ZDIM_SPILL_BYTES=1e9, or unset it"
        )
    return int(value)


def spill_dir() -> str:
    """Where spill files go: ``$ZDIM_SPILL_DIR``, else the system's temporary folder."""
    return os.environ.get("ZDIM_SPILL_DIR") or tempfile.gettempdir()


def spill_array(rows: int, cols: int, folder: str | None = None) -> np.memmap:
    """A writable float32 ``(rows, cols)`` memory map of a fresh file in ``folder``, already unlinked.

    The file's blocks are reserved up front (``posix_fallocate``): a disk that fills up while the map is
    written would otherwise kill the process with SIGBUS. Raises ``DataError`` when the folder cannot
    hold it.
    """
    where = folder or spill_dir()
    size = max(1, rows * cols * 4)
    try:
        fd, path = tempfile.mkstemp(prefix="zdim-spill-", suffix=".f32", dir=where)
    except OSError as e:
        raise DataError(
            f"cannot create a spill file in {where!r} ({e.strerror}): set ZDIM_SPILL_DIR to a writable folder"
        ) from e
    try:
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as e:
            raise DataError(
                f"{where!r} has no room for a {size / 1e9:.2f} GB spill file of the data's splits ({e.strerror}): "
                "set ZDIM_SPILL_DIR to a folder with room, or ZDIM_SPILL_BYTES above the data's size to keep "
                "the splits in RAM"
            ) from e
        arr = np.memmap(path, dtype=np.float32, mode="r+", shape=(rows, cols))
    finally:
        os.close(fd)
        try:
            os.unlink(path)  # the map keeps the file alive until it is closed
        except OSError:  # a system that cannot unlink an open file: removed at exit instead
            import atexit

            atexit.register(_remove, path)
    return arr


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _shared_map(arr: Any) -> mmap.mmap | None:
    """The ``mmap`` under a memmap or any view of one (followed through ``.base``), unless it is a
    copy-on-write map (mode ``c``, whose pages may hold changes that exist nowhere else); else None."""
    while arr is not None:
        if isinstance(arr, mmap.mmap):
            return arr
        m = getattr(arr, "_mmap", None) if isinstance(arr, np.memmap) else None
        if m is not None:
            return None if arr.mode == "c" else m
        arr = getattr(arr, "base", None)
    return None


def _advise(arr: Any, name: str) -> None:
    """``madvise(mmap.<name>)`` on the shared map under ``arr``; a no-op where there is none."""
    m, advice = _shared_map(arr), getattr(mmap, name, None)
    if m is not None and advice is not None and not m.closed:
        with contextlib.suppress(OSError, ValueError):
            m.madvise(advice)


def for_random_reads(arr: Any) -> None:
    """Tell the kernel that ``arr``'s map will be read at random rows (``MADV_RANDOM``): no read-ahead.

    Training gathers random rows. When the file does not fit in the page cache (data larger than the
    free memory), read-ahead turns each row of a few KB into megabytes read from disk, and a sweep
    under a memory limit slows by orders of magnitude (``benchmarks/bench_memory.py`` runs a whole
    sweep inside a memory cgroup).
    """
    _advise(arr, "MADV_RANDOM")


def release(arr: Any) -> None:
    """Drop the resident pages of the memory map under ``arr`` from this process (no-op otherwise).

    Only shared maps (read-only ``r`` or writable ``r+``/``w+``) are released: their data live in the
    file. A copy-on-write map's pages may hold changes that exist nowhere else.
    """
    _advise(arr, "MADV_DONTNEED")


__all__ = ["SPILL_BYTES", "threshold", "spill_array", "spill_dir", "release", "for_random_reads"]
