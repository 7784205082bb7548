"""The HTML report of a run directory: ``build_report(run_dir)`` writes ``run_dir/report.html``.

Layout: ``collect`` reads the run directory (and decodes the saved inputs through the saved models),
``figures`` draws, ``page`` assembles one self-contained, escaped HTML file.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError
from ..files import atomic_write
from ..runs import REPORT_HTML, RunDir
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

    target = Path(out) if out is not None else RunDir(run_dir).report_html
    if not target.parent.is_dir():
        raise ConfigError(
            f"cannot write the report to {target}: folder {target.parent} does not exist; "
            "create it or choose another --out"
        )
    view = load_run(Path(run_dir))
    atomic_write(target, render(view, pictures(view)))
    return target
