"""The report's figures: matplotlib drawn to SVG (plots) or PNG (image grids), returned as data URIs.

Every figure is a pure function of a ``RunView`` / ``Pictures`` and returns a ``data:`` URI, so the
page embeds it with ``<img src=...>``: one self-contained file, no network, and each SVG keeps its own
element ids (inlined SVGs would share one id namespace).
"""

from __future__ import annotations

import base64
import io
from collections import defaultdict
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: the report is built on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from .collect import Pictures, RunView  # noqa: E402

plt.rcParams.update(
    {
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
)
ACCENT, SECOND, MUTED = "#1f6feb", "#d1495b", "#8a8f98"
METRICS = ("nll", "neg_elbo", "rec", "kl", "active_units", "gen_fd", "gen_precision", "gen_recall", "gen_coverage")


def svg_uri(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue().encode()).decode()


def png_uri(image: np.ndarray) -> str:
    """PNG data URI of an (H, W) or (H, W, 3) array in [0, 1]."""
    arr = (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def per_dim(view: RunView) -> dict[str, dict[int, tuple[float, float]]]:
    """metric -> dim -> (mean, standard error across seeds) over complete trials."""
    values: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for t in view.complete:
        for m in METRICS:
            v = t.get(m)
            if isinstance(v, (int, float)) and np.isfinite(v):
                values[m][int(t["dim"])].append(float(v))
    out: dict[str, dict[int, tuple[float, float]]] = {}
    for m, by_dim in values.items():
        out[m] = {
            d: (float(np.mean(v)), float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0)
            for d, v in sorted(by_dim.items())
        }
    return out


def _size_axis(ax: Any, dims: list[int]) -> None:
    if dims and max(dims) / max(min(dims), 1) > 8:
        ax.set_xscale("log", base=2)
    ax.set_xticks(dims)
    ax.set_xticklabels([str(d) for d in dims])
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


def curve(view: RunView, metrics: list[tuple[str, str, str]], ylabel: str, title: str) -> str:
    """One plot of per-size means (error bars: standard error across seeds) of ``metrics``."""
    agg = per_dim(view)
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    dims: list[int] = []
    for key, label, color in metrics:
        if agg.get(key):
            dims = sorted(set(dims) | set(_errorbar(ax, agg[key], label=label, color=color)))
    if not dims:
        plt.close(fig)
        return ""
    _mark(ax, view)
    _size_axis(ax, dims)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=9)
    return svg_uri(fig)


def active_units(view: RunView) -> str:
    """Active units against size with y = x: where the curve leaves the diagonal, units collapse."""
    agg = per_dim(view).get("active_units")
    if not agg:
        return ""
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
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
    ax.set_ylabel("active units")
    ax.set_title("Active units (posterior-mean variance > 0.01)")
    ax.legend(frameon=False, fontsize=9)
    return svg_uri(fig)


def rate_distortion(view: RunView) -> str:
    """Each complete trial in the (rate = KL, distortion = reconstruction term) plane, labelled by size."""
    pts = [
        (t["kl"], t["rec"], int(t["dim"]))
        for t in view.complete
        if np.isfinite(t.get("kl", np.nan)) and np.isfinite(t.get("rec", np.nan))
    ]
    if not pts:
        return ""
    fig, ax = plt.subplots(figsize=(5.6, 3.9))
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
    ax.set_xlabel("rate: KL(q(z|x) || p(z)) [nats]")
    ax.set_ylabel("distortion: -E log p(x|z) [nats]")
    ax.set_title("Rate-distortion plane (one point per trial)")
    return svg_uri(fig)


def kl_heatmap(view: RunView) -> str:
    """KL per latent unit, units sorted by KL, one row per size (mean over seeds of sorted KLs)."""
    rows: dict[int, list[np.ndarray]] = defaultdict(list)
    for t in view.complete:
        kl = np.asarray(t.get("kl_per_unit") or [], dtype=float)
        if kl.size:
            rows[int(t["dim"])].append(np.sort(kl)[::-1])
    if not rows:
        return ""
    dims = sorted(rows)
    width = max(dims)
    grid = np.full((len(dims), width), np.nan)
    for i, d in enumerate(dims):
        grid[i, :d] = np.mean(rows[d], axis=0)
    fig, ax = plt.subplots(figsize=(min(11.0, 3.0 + 0.12 * width), 0.9 + 0.32 * len(dims)))
    im = ax.imshow(
        grid, aspect="auto", cmap="magma", interpolation="nearest", extent=(0.5, width + 0.5, len(dims) - 0.5, -0.5)
    )
    ax.set_yticks(range(len(dims)))
    ax.set_yticklabels([str(d) for d in dims])
    ax.set_ylabel("latent size")
    ax.set_xlabel("latent unit, sorted by KL (blank: the size has fewer units)")
    ax.grid(False)
    fig.colorbar(im, ax=ax, label="KL [nats]", fraction=0.03)
    ax.set_title("KL per latent unit: which units carry information")
    return svg_uri(fig)


def _to_images(x: np.ndarray, shape: list[int], likelihood: str) -> np.ndarray:
    """(n, D) -> (n, H, W[, 3]) in [0, 1]; Gaussian (standardized) data is min-max scaled per image."""
    c, h, w = (shape + [1, 1])[:3] if len(shape) == 3 else (1, *shape[-2:])
    imgs = x.reshape(len(x), c, h, w)
    if likelihood != "bernoulli":
        lo = imgs.min(axis=(1, 2, 3), keepdims=True)
        hi = imgs.max(axis=(1, 2, 3), keepdims=True)
        imgs = (imgs - lo) / np.maximum(hi - lo, 1e-8)
    return imgs[:, 0] if c == 1 else imgs[:, :3].transpose(0, 2, 3, 1)


def image_strip(x: np.ndarray, shape: list[int], likelihood: str, min_px: int = 56) -> str:
    """One row of images as a PNG data URI, each upscaled (whole pixels) to at least ``min_px``."""
    imgs = _to_images(x, shape, likelihood)
    scale = max(1, -(-min_px // imgs.shape[1]))
    imgs = np.repeat(np.repeat(imgs, scale, axis=1), scale, axis=2)
    n, h, w = imgs.shape[:3]
    gap = 2
    canvas = np.ones((h, n * w + (n - 1) * gap) + imgs.shape[3:])
    for i, im in enumerate(imgs):
        canvas[:, i * (w + gap) : i * (w + gap) + w] = im
    return png_uri(canvas)


def feature_error(pics: Pictures, names: list[str] | None, dim: int, top: int = 40) -> str:
    """Per-feature mean squared reconstruction error of the recommended size (worst ``top``)."""
    err = pics.feature_error
    if err is None:
        return ""
    labels = names if names and len(names) == len(err) else [f"x{i}" for i in range(len(err))]
    order = np.argsort(err)[::-1][:top]
    fig, ax = plt.subplots(figsize=(6.4, 0.8 + 0.2 * len(order)))
    ax.barh(range(len(order)), err[order], color=ACCENT)
    ax.set_yticks(range(len(order)))
    ax.set_yticklabels([labels[i] for i in order], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("mean squared reconstruction error (model's scale)")
    shown = "all features" if len(order) == len(err) else f"the {len(order)} worst of {len(err)} features"
    ax.set_title(f"Reconstruction error per feature at size {dim} ({shown})")
    return svg_uri(fig)


def latent_view(pics: Pictures, labels: np.ndarray | None, label_names: list[str] | None, dim: int) -> str:
    """2-D view of the latent means of held-out inputs (PCA when the size is above 2), by label."""
    z = pics.latent
    if z is None or len(z) < 2:
        return ""
    fig, ax = plt.subplots(figsize=(5.6, 4.4))
    if z.shape[1] == 1:
        xy = np.column_stack([z[:, 0], np.random.default_rng(0).uniform(-0.4, 0.4, len(z))])
        xlabel, ylabel, how = "z1", "jitter", "the only latent unit"
    elif z.shape[1] == 2:
        xy, xlabel, ylabel, how = z, "z1", "z2", "both latent units"
    else:
        zc = z - z.mean(0)
        _, s, vt = np.linalg.svd(zc, full_matrices=False)
        xy = zc @ vt[:2].T
        var = (s[:2] ** 2) / max(float((s**2).sum()), 1e-12)
        xlabel, ylabel = f"PC1 ({var[0]:.0%} of variance)", f"PC2 ({var[1]:.0%})"
        how = "first two principal components of the latent means"
    if labels is not None and len(labels) == len(xy):
        classes = np.unique(labels)
        cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
        if len(classes) <= 20:
            for i, c in enumerate(classes):
                sel = labels == c
                name = (
                    label_names[int(c)]
                    if label_names and float(c).is_integer() and 0 <= int(c) < len(label_names)
                    else (str(int(c)) if float(c).is_integer() else f"{c:g}")
                )
                ax.scatter(xy[sel, 0], xy[sel, 1], s=8, color=cmap(i % cmap.N), label=name, alpha=0.8)
            ax.legend(frameon=False, fontsize=7, markerscale=1.5, loc="center left", bbox_to_anchor=(1, 0.5))
        else:
            sc = ax.scatter(xy[:, 0], xy[:, 1], s=8, c=labels, cmap="viridis", alpha=0.8)
            fig.colorbar(sc, ax=ax, label="label")
    else:
        ax.scatter(xy[:, 0], xy[:, 1], s=8, color=ACCENT, alpha=0.6)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"Latent means of {len(z)} held-out inputs at size {dim} ({how})", fontsize=9)
    return svg_uri(fig)


def tuning_history(tuning: dict[str, Any]) -> str:
    """Validation objective of every tuning trial, with the best so far and the untuned baseline."""
    pts = [
        (t["number"], t["value"])
        for t in tuning.get("trials", [])
        if t.get("state") == "COMPLETE" and isinstance(t.get("value"), (int, float))
    ]
    if not pts:
        return ""
    n, v = map(np.asarray, zip(*pts))
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    ax.scatter(n, v, s=18, color=MUTED, label="trial", zorder=3)
    ax.step(n, np.minimum.accumulate(v), where="post", color=ACCENT, lw=1.5, label="best so far")
    base = (tuning.get("baseline") or {}).get("value")
    if isinstance(base, (int, float)):
        ax.axhline(base, color=SECOND, ls="--", lw=1, label="untuned baseline")
    ax.set_xlabel("tuning trial")
    ax.set_ylabel(f"validation {tuning.get('objective', '')}")
    ax.set_title(f"Tuning at latent size {tuning.get('dim')}")
    ax.legend(frameon=False, fontsize=9)
    return svg_uri(fig)
