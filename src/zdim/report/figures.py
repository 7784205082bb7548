"""The report's figures: matplotlib drawn to SVG (plots) or PNG (image grids), returned as data URIs.

Every figure is a pure function of a ``RunView`` / ``Pictures`` and returns a ``data:`` URI, so the
page embeds it with ``<img src=...>``: one self-contained file, no network, and each SVG keeps its own
element ids (inlined SVGs would share one id namespace).

No global side effects: figures are ``matplotlib.figure.Figure`` objects (no pyplot, no backend switch)
and the report's look (``STYLE``) is applied only while a figure is drawn and saved (``report_style``),
so building a report from a notebook leaves the user's backend and ``rcParams`` as they were.
"""

from __future__ import annotations

import base64
import functools
import io
import math
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

import matplotlib
import matplotlib.style
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image

from ..answer.rules import per_size
from .collect import RunView

STYLE: dict[str, Any] = {
    "svg.fonttype": "none",  # text stays text: smaller files, selectable, crisp at any zoom
    "svg.hashsalt": "zdim",  # deterministic output for the same run
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "figure.dpi": 100,
}
ACCENT, SECOND, MUTED = "#1f6feb", "#d1495b", "#8a8f98"
METRICS = (
    "nll", "neg_elbo", "linear_nll", "rec", "kl", "active_units", "gen_fd", "gen_precision", "gen_recall",
    "gen_coverage",
)  # fmt: skip
HEATMAP_CMAP = "viridis"  # perceptually uniform: equal steps in KL look like equal steps in colour
ANNOTATE_UNITS = 12  # the heatmap writes each cell's KL when it has at most this many units and sizes

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def report_style() -> Iterator[None]:
    """Matplotlib's defaults plus ``STYLE`` while the block runs; the caller's rcParams come back after.

    Starting from the defaults (not from the caller's settings) keeps the report the same whatever the
    notebook it is built from has configured; the backend is never touched."""
    with matplotlib.style.context(["default", STYLE]):
        yield


def styled(fn: Callable[P, R]) -> Callable[P, R]:
    """Draw (and save) ``fn``'s figure under ``report_style``."""

    @functools.wraps(fn)
    def inner(*args: P.args, **kwargs: P.kwargs) -> R:
        with report_style():
            return fn(*args, **kwargs)

    return inner


def new_figure(width: float, height: float) -> tuple[Figure, Any]:
    """A figure with one axes, outside pyplot (nothing to close, no backend involved)."""
    fig = Figure(figsize=(width, height))
    return fig, fig.subplots()


def svg_uri(fig: Figure) -> str:
    buf = io.StringIO()
    # No date in the metadata: the same run gives the same bytes.
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue().encode()).decode()


def nice_ticks(lo: float, hi: float, n: int = 4, integer: bool = False) -> list[float]:
    """Round tick values inside [lo, hi] (matplotlib's ``MaxNLocator``), for hand-drawn axes."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        return [lo]
    values = MaxNLocator(nbins=n, integer=integer).tick_values(lo, hi)
    eps = (hi - lo) * 1e-9
    return [float(v) for v in values if lo - eps <= v <= hi + eps]


def tick_label(value: float, step: float) -> str:
    """``value`` with as many decimals as a tick spacing of ``step`` needs."""
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 and math.isfinite(step) else 2
    return f"{value:.{min(decimals, 6)}f}"


def _plain_y(ax: Any) -> None:
    """Tick labels that show the values themselves: no offset ("+1.234e2") and no scientific notation."""
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")


def png_uri(image: np.ndarray) -> str:
    """PNG data URI of an (H, W) or (H, W, 3) array in [0, 1]."""
    arr = (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def per_dim(view: RunView) -> dict[str, dict[int, tuple[float, float]]]:
    """metric -> dim -> (mean, standard error across seeds) over complete trials (``recommend.per_size``)."""
    return per_size(view.complete, METRICS)


MIN_LABEL_GAP = 0.06  # fraction of the size axis between two labelled ticks (a label is ~2 digits wide)


def size_labels(dims: list[int], log: bool) -> list[str]:
    """The tick labels of the size axis: every size has a tick, but a label only where it does not crowd
    the previous label (refinement adds neighbouring sizes such as 23, 24, 26); the first and the last
    size are always labelled."""
    dims = sorted(dims)
    if len(dims) < 2:
        return [str(d) for d in dims]
    pos = [math.log2(max(d, 1)) if log else float(d) for d in dims]
    span = (pos[-1] - pos[0]) or 1.0
    labels, last = [], -math.inf
    for i, (d, p) in enumerate(zip(dims, pos, strict=True)):
        room = (p - last) / span >= MIN_LABEL_GAP and (i == len(dims) - 1 or (pos[-1] - p) / span >= MIN_LABEL_GAP)
        if i == 0 or i == len(dims) - 1 or room:
            labels.append(str(d))
            last = p
        else:
            labels.append("")
    return labels


def _size_axis(ax: Any, dims: list[int]) -> None:
    dims = sorted(dims)
    log = bool(dims) and max(dims) / max(min(dims), 1) > 8
    if log:
        ax.set_xscale("log", base=2)
    ax.set_xticks(dims)
    ax.set_xticklabels(size_labels(dims, log))
    ax.minorticks_off()
    ax.set_xlabel("latent size")


def _mark(ax: Any, view: RunView) -> None:
    if view.recommended_dim is not None:
        ax.axvline(view.recommended_dim, color=MUTED, ls="--", lw=1, label=f"recommended ({view.recommended_dim})")


def _errorbar(ax: Any, series: dict[int, tuple[float, float]], **kw: Any) -> list[int]:
    dims = list(series)
    ax.errorbar(
        dims, [series[d][0] for d in dims], yerr=[series[d][1] for d in dims], marker="o", ms=4, capsize=3, lw=1.5, **kw
    )
    return dims


def _short(label: str) -> str:
    """``NLL (IWAE bound)`` -> ``NLL``: the name of a series in a one-line summary."""
    return label.split(" (")[0]


def value_range(series: dict[int, tuple[float, float]]) -> float:
    """How far the per-size means of one series spread: max - min."""
    means = [m for m, _ in series.values()]
    return max(means) - min(means) if means else 0.0


def range_note(ranges: list[tuple[str, float]], unit: str) -> str:
    """``range over sizes 0.14 nats`` (one series) or ``range over sizes: NLL 0.14, -ELBO 0.2 nats``."""
    tail = f" {unit}" if unit else ""
    if len(ranges) == 1:
        return f"range over sizes {ranges[0][1]:.3g}{tail}"
    return "range over sizes: " + ", ".join(f"{name} {r:.3g}" for name, r in ranges) + tail


def curve_figure(
    view: RunView, metrics: list[tuple[str, str, str]], ylabel: str, title: str, unit: str = ""
) -> Figure | None:
    """The figure of ``curve`` (None when no complete trial has any of ``metrics``)."""
    agg = per_dim(view)
    fig, ax = new_figure(5.6, 3.6)
    dims: list[int] = []
    ranges: list[tuple[str, float]] = []
    for key, label, color in metrics:
        if agg.get(key):
            dims = sorted(set(dims) | set(_errorbar(ax, agg[key], label=label, color=color)))
            ranges.append((_short(label), value_range(agg[key])))
    if not dims:
        return None
    _mark(ax, view)
    _size_axis(ax, dims)
    _plain_y(ax)
    ax.set_ylabel(ylabel)
    # The y-axis zooms to the data: say how large the whole visible spread is, so a 0.1-nat wiggle drawn
    # across the full height is read as 0.1 nats.
    ax.set_title(f"{title}\n({range_note(ranges, unit)})")
    ax.legend(frameon=False, fontsize=9)
    return fig


@styled
def curve(view: RunView, metrics: list[tuple[str, str, str]], ylabel: str, title: str, unit: str = "") -> str:
    """One plot of per-size means (error bars: standard error across seeds) of ``metrics``; the title
    states the spread of the means over sizes (in ``unit``)."""
    fig = curve_figure(view, metrics, ylabel, title, unit)
    return svg_uri(fig) if fig is not None else ""


@styled
def active_units(view: RunView) -> str:
    """Active units against size with y = x: where the curve leaves the diagonal, units collapse."""
    agg = per_dim(view).get("active_units")
    if not agg:
        return ""
    fig, ax = new_figure(5.6, 3.6)
    dims = list(agg)
    ax.plot(dims, dims, color=MUTED, lw=1, ls=":", label="y = x (every unit used)")
    _errorbar(ax, agg, label="active units", color=ACCENT)
    _mark(ax, view)
    if view.intrinsic_dim is not None:
        ax.axhline(
            view.intrinsic_dim, color=SECOND, lw=1, ls="-.", label=f"intrinsic dimension ≈ {view.intrinsic_dim:.1f}"
        )
    _size_axis(ax, dims)
    if max(dims) / max(min(dims), 1) > 8:
        ax.set_yscale("log", base=2)
        ax.set_yticks(dims)
        ax.set_yticklabels([str(d) for d in dims])
        ax.minorticks_off()
    else:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # unit counts: whole numbers
        _plain_y(ax)
    ax.set_ylabel("active units")
    ax.set_title("Active units (posterior-mean variance > 0.01)")
    ax.legend(frameon=False, fontsize=9)
    return svg_uri(fig)


@styled
def rate_distortion(view: RunView) -> str:
    """Each complete trial in the (rate = KL, distortion = reconstruction term) plane, labelled by size."""
    pts = [
        (rate, dist, t.dim)
        for t in view.complete
        if (rate := t.metric("kl")) is not None and (dist := t.metric("rec")) is not None
    ]
    if not pts:
        return ""
    fig, ax = new_figure(5.6, 3.9)
    kl, rec, dims = map(np.asarray, zip(*pts))
    sc = ax.scatter(kl, rec, c=np.log2(dims), cmap="viridis", s=30, zorder=3)
    for x, y, d in pts:
        ax.annotate(str(d), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if view.recommended_dim is not None:
        sel = dims == view.recommended_dim
        ax.scatter(
            kl[sel],
            rec[sel],
            s=120,
            facecolors="none",
            edgecolors=SECOND,
            lw=1.5,
            zorder=4,
            label=f"recommended ({view.recommended_dim})",
        )
        ax.legend(frameon=False, fontsize=9)
    cb = fig.colorbar(sc, ax=ax)
    ticks = sorted(set(dims.tolist()))
    cb.set_ticks(np.log2(ticks).tolist())
    cb.set_ticklabels([str(d) for d in ticks])
    cb.set_label("latent size")
    ax.ticklabel_format(useOffset=False, style="plain")
    ax.set_xlabel("rate: KL(q(z|x) || p(z)) [nats]")
    ax.set_ylabel("distortion: -E log p(x|z) [nats]")
    ax.set_title("Rate-distortion plane (one point per trial)")
    return svg_uri(fig)


def kl_grid(view: RunView) -> tuple[list[int], np.ndarray] | None:
    """Sizes and their rows of KL per unit (units sorted by KL, mean over seeds; NaN past a size)."""
    rows: dict[int, list[np.ndarray]] = defaultdict(list)
    for t in view.complete:
        kl = np.asarray(t.kl_per_unit or [], dtype=float)
        if kl.size:
            rows[t.dim].append(np.sort(kl)[::-1])
    if not rows:
        return None
    dims = sorted(rows)
    width = max(len(r) for rs in rows.values() for r in rs)
    grid = np.full((len(dims), width), np.nan)
    for i, d in enumerate(dims):
        n = min(len(r) for r in rows[d])
        grid[i, :n] = np.mean([r[:n] for r in rows[d]], axis=0)
    return dims, grid


def kl_heatmap_figure(view: RunView) -> Figure | None:
    """The figure of ``kl_heatmap`` (None without per-unit KLs)."""
    got = kl_grid(view)
    if got is None:
        return None
    dims, grid = got
    width = grid.shape[1]
    finite = grid[np.isfinite(grid)]
    top = float(finite.max()) if finite.size else 0.0
    fig, ax = new_figure(min(11.0, 3.4 + 0.12 * width), 1.5 + 0.32 * len(dims))
    # Anchored at 0 nats: the darkest colour means "carries nothing", not "carries the least of these".
    cmap = matplotlib.colormaps[HEATMAP_CMAP].with_extremes(bad="white")
    im = ax.imshow(
        grid,
        aspect="auto",
        cmap=cmap,
        vmin=0.0,
        vmax=max(top, 1e-3),
        interpolation="nearest",
        extent=(0.5, width + 0.5, len(dims) - 0.5, -0.5),
    )
    if width <= ANNOTATE_UNITS and len(dims) <= ANNOTATE_UNITS:  # few cells: write each KL in its cell
        for i, j in zip(*np.nonzero(np.isfinite(grid))):
            v = float(grid[i, j])
            r, g, b, _ = cmap(im.norm(v))
            ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
            ax.text(j + 1, i, f"{v:.2f}" if v < 10 else f"{v:.0f}", ha="center", va="center", fontsize=7, color=ink)
    ax.set_yticks(range(len(dims)))
    ax.set_yticklabels([str(d) for d in dims])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("latent size")
    ax.set_xlabel("latent unit, sorted by KL (blank: the size has fewer units)")
    ax.grid(False)
    cb = fig.colorbar(im, ax=ax, fraction=0.03)
    cb.set_label("KL [nats]")
    ax.set_title("KL per latent unit: which units carry information")
    return fig


@styled
def kl_heatmap(view: RunView) -> str:
    """KL per latent unit, units sorted by KL, one row per size (mean over seeds of sorted KLs); the
    colour scale starts at 0 nats and its colorbar is labelled in nats."""
    fig = kl_heatmap_figure(view)
    return svg_uri(fig) if fig is not None else ""


def settle_figure(settle: dict[str, Any]) -> Figure | None:
    """The figure of ``settle_history`` (None without a trace)."""
    pts = [(int(t["epoch"]), int(t["dim"])) for t in settle.get("trace", []) if "epoch" in t and "dim" in t]
    if not pts:
        return None
    e, d = map(np.asarray, zip(*pts))
    fig, ax = new_figure(5.6, 3.0)
    ax.step(e, d, where="post", color=ACCENT, lw=1.6, label="recommended size (validation)")
    window = int(settle.get("window", 0) or 0)
    if window and len(e) >= window:
        ax.axvspan(e[-window], e[-1], color=MUTED, alpha=0.15, lw=0, label=f"last {window} epochs")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("latent size")
    ax.set_title("When the answer settled")
    ax.legend(frameon=False, fontsize=9)
    return fig


@styled
def settle_history(settle: dict[str, Any]) -> str:
    """Settle mode: the size recommended on the validation subset after every epoch."""
    fig = settle_figure(settle)
    return svg_uri(fig) if fig is not None else ""


def tuning_figure(tuning: dict[str, Any]) -> Figure | None:
    """The figure of ``tuning_history`` (None without a complete tuning trial)."""
    pts = [
        (row["number"], row["value"])
        for row in tuning.get("trials", [])
        if row.get("state") == "COMPLETE" and isinstance(row.get("value"), (int, float))
    ]
    if not pts:
        return None
    n, v = map(np.asarray, zip(*pts))
    fig, ax = new_figure(5.6, 3.4)
    ax.scatter(n, v, s=18, color=MUTED, label="trial", zorder=3)
    ax.step(n, np.minimum.accumulate(v), where="post", color=ACCENT, lw=1.5, label="best so far")
    base = (tuning.get("baseline") or {}).get("value")
    if isinstance(base, (int, float)):
        ax.axhline(base, color=SECOND, ls="--", lw=1, label="untuned baseline")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # trial numbers: whole numbers
    _plain_y(ax)
    ax.set_xlabel("tuning trial")
    ax.set_ylabel(f"validation {tuning.get('objective', '')}")
    ax.set_title(f"Tuning at latent size {tuning.get('dim')}")
    ax.legend(frameon=False, fontsize=9)
    return fig


@styled
def tuning_history(tuning: dict[str, Any]) -> str:
    """Validation objective of every tuning trial, with the best so far and the untuned baseline."""
    fig = tuning_figure(tuning)
    return svg_uri(fig) if fig is not None else ""
