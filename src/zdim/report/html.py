"""The report's HTML primitives: escaping (``esc``), number formatting (``fmt``), a figure and a section.

Every string that comes from the user or the run directory goes through ``esc``; only markup written
by the report's modules is left raw.
"""

from __future__ import annotations

import html
import math
from typing import Any


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: Any, spec: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        if spec == "d":
            return f"{value:.0f}" if value.is_integer() else f"{value:.2f}"
        return format(value, spec or ".4g")
    if isinstance(value, int) and not isinstance(value, bool) and spec and spec != "d" and spec != "s":
        return format(float(value), spec)
    return str(value)


def figure(uri: str, alt: str, fig_id: str, caption: str) -> str:
    # Eager: the figures are data URIs already in the file, so lazy loading saves no transfer, and a
    # lazy figure far below the fold was sometimes never decoded (blank in a screenshot or a print).
    if not uri:
        return ""
    return (
        f'<figure id="{fig_id}"><img src="{uri}" alt="{esc(alt)}" decoding="async">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def section(sec_id: str, title: str, body: str, intro: str = "") -> str:
    if not body.strip():
        return ""
    intro_html = f'<p class="intro">{intro}</p>' if intro else ""
    return f'<section id="{sec_id}" data-section="{sec_id}"><h2>{title}</h2>{intro_html}{body}</section>'


__all__ = ["esc", "fmt", "figure", "section"]
