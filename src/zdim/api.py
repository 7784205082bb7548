"""The package-level ``zdim.sweep``: the sweep, then its report (the report sits above the search)."""

from __future__ import annotations

from typing import Any

from .report import build_report
from .search import SweepResult
from .search import sweep as _sweep


def sweep(*args: Any, report: bool = True, **kwargs: Any) -> SweepResult:
    result = _sweep(*args, **kwargs)
    if report and result.run_dir is not None:
        build_report(result.run_dir)
    return result


sweep.__doc__ = (
    (_sweep.__doc__ or "")
    + """
    With a run directory (``out``), ``report=True`` (default) also writes ``out/report.html``
    (``zdim.build_report(out)`` rebuilds it).
    """
)

__all__ = ["sweep"]
