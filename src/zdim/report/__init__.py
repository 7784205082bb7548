"""The HTML report of a run directory: ``build_report(run_dir)`` writes ``run_dir/report.html``.

Layout: ``collect`` reads the run directory (and decodes the saved inputs through the saved models),
``figures`` draws, ``page`` assembles one self-contained, escaped HTML file.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError
from ..files import atomic_write, unwritable
from ..sweeps.records.layout import REPORT_HTML
from ..sweeps.records.runs import RunDir
from .collect import RunView, load_run, pictures

__all__ = ["build_report", "load_run", "RunView", "REPORT_HTML"]


def build_report(run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> Path:
    """Build the report of a sweep from its run directory alone (no data, no retraining).

    Parameters
    ----------
    run_dir : path
        The ``--out`` folder of a sweep (finished, running or interrupted).
    out : path, optional
        Where to write the HTML; default ``run_dir/report.html``. Written atomically.

    Returns
    -------
    Path
        The written file.
    """
    from .page import render  # matplotlib is imported only when a report is drawn

    run = RunDir.open(run_dir)
    target = Path(out) if out is not None else run.report_html
    if out is None:
        run.check_writable("zdim report writes report.html; or pass --out FILE")
    elif not target.parent.is_dir():
        raise ConfigError(
            f"cannot write the report to {target}: folder {target.parent} does not exist; "
            "create it or choose another --out"
        )
    elif (why := unwritable(target.parent)) is not None:
        raise ConfigError(f"cannot write the report to {target} ({why}): choose a writable --out")
    view = load_run(Path(run_dir))
    html = render(view, pictures(view))
    try:
        atomic_write(target, html)
    except OSError as e:
        raise ConfigError(f"cannot write the report to {target} ({e.strerror or e}): choose another --out") from None
    return target
