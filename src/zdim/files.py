"""Files as zdim writes them: atomically, in strict JSON, with the permissions the process's umask gives.

Every file zdim writes goes through ``atomic_write`` (temporary sibling, fsync, ``os.replace``), so a
reader sees either the old file or the whole new one, and a crash leaves no half-written file behind.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


def process_umask() -> int:
    """The process's file-creation mask, read without changing it where the system allows."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)  # no /proc: read it by setting it (and put it back at once)
    os.umask(old)
    return old


def file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file: ``0o666`` less the umask."""
    return 0o666 & ~process_umask()


def dir_mode() -> int:
    """The mode ``mkdir`` would give a new folder: ``0o777`` less the umask."""
    return 0o777 & ~process_umask()


def unwritable(folder: str | os.PathLike[str]) -> str | None:
    """Why files cannot be created in ``folder`` (``Permission denied``, ``Read-only file system``...), or
    None when they can: a probe file is created and removed at once."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".zdim-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        return e.strerror or str(e)
    return None


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Write ``data`` to ``path`` atomically: a temporary sibling, fsync, then ``os.replace``.

    The file gets the permissions of an ordinary new file under the process umask (``mkstemp`` alone
    would make it private to its owner, so a team could not read a shared run directory).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), file_mode())
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def _clean(o: Any) -> Any:
    """Replace NaN/inf floats by None so the JSON is strict (browsers reject NaN)."""
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


def dumps_json(obj: Any) -> str:
    """``obj`` as strict, indented JSON text (NaN/inf as null), as ``write_json`` writes it."""
    return json.dumps(_clean(obj), indent=2, default=_json_default) + "\n"


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write(path, dumps_json(obj))


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_csv(path: str | os.PathLike[str], rows: list[dict[str, Any]]) -> None:
    """Write dict rows as CSV (columns: union of keys in first-seen order), atomically."""
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write(path, buf.getvalue())


def read_csv_floats(path: str | os.PathLike[str]) -> list[dict[str, float]]:
    """Rows of a numeric CSV file (empty cells left out); [] when the file is absent or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]
    except (OSError, ValueError):
        return []


__all__ = ["atomic_write", "write_json", "read_json", "dumps_json", "write_csv", "read_csv_floats", "file_mode"]
