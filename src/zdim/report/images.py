"""The report's pictures of samples: image strips of inputs, reconstructions and prior samples, the
reconstruction error per feature of a table, and the latent means of held-out inputs."""

from __future__ import annotations

import matplotlib
import numpy as np

from ..likelihoods import find as find_likelihood
from .collect import Pictures
from .figures import ACCENT, new_figure, png_uri, styled, svg_uri


def _to_images(x: np.ndarray, shape: list[int], likelihood: str | None) -> np.ndarray:
    """(n, D) -> (n, H, W[, 3]) in [0, 1]; data of a likelihood not confined to [0, 1] (Gaussian:
    standardized) is min-max scaled per image (data of no known likelihood are taken as in [0, 1])."""
    c, h, w = (shape + [1, 1])[:3] if len(shape) == 3 else (1, *shape[-2:])
    imgs = x.reshape(len(x), c, h, w)
    family = find_likelihood(likelihood)
    if family is not None and not family.unit_interval:
        lo = imgs.min(axis=(1, 2, 3), keepdims=True)
        hi = imgs.max(axis=(1, 2, 3), keepdims=True)
        imgs = (imgs - lo) / np.maximum(hi - lo, 1e-8)
    return imgs[:, 0] if c == 1 else imgs[:, :3].transpose(0, 2, 3, 1)


def image_strip(x: np.ndarray, shape: list[int], likelihood: str | None, min_px: int = 56) -> str:
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


@styled
def feature_error(pics: Pictures, names: list[str] | None, dim: int, top: int = 40) -> str:
    """Per-feature mean squared reconstruction error of the recommended size (worst ``top``)."""
    err = pics.feature_error
    if err is None:
        return ""
    labels = names if names and len(names) == len(err) else [f"x{i}" for i in range(len(err))]
    order = np.argsort(err)[::-1][:top]
    fig, ax = new_figure(6.4, 0.8 + 0.2 * len(order))
    ax.barh(range(len(order)), err[order], color=ACCENT)
    ax.set_yticks(range(len(order)))
    ax.set_yticklabels([labels[i] for i in order], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("mean squared reconstruction error (model's scale)")
    shown = "all features" if len(order) == len(err) else f"the {len(order)} worst of {len(err)} features"
    ax.set_title(f"Reconstruction error per feature at size {dim} ({shown})")
    return svg_uri(fig)


@styled
def latent_view(pics: Pictures, labels: np.ndarray | None, label_names: list[str] | None, dim: int) -> str:
    """2-D view of the latent means of held-out inputs (PCA when the size is above 2), by label."""
    z = pics.latent
    if z is None or len(z) < 2:
        return ""
    fig, ax = new_figure(5.6, 4.4)
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
        cmap = matplotlib.colormaps["tab10" if len(classes) <= 10 else "tab20"]
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


__all__ = ["image_strip", "feature_error", "latent_view"]
