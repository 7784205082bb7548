"""The report's sections of figures: the curves against latent size, reconstructions and prior samples,
the per-feature error of a table, and the latent space."""

from __future__ import annotations

from typing import Any

from . import figures
from .collect import Pictures, RunView
from .html import esc
from .html import figure as _figure
from .html import section as _section
from .images import feature_error, image_strip, latent_view


def _features(view: RunView) -> str:
    names = sorted({str(g) for t in view.complete if (g := t.generation.get("gen_features"))})
    return ", ".join(names) or "none recorded"


def curves(view: RunView) -> str:
    f = figures
    parts = [
        _figure(
            f.curve(
                view,
                [
                    ("nll", "NLL (IWAE bound)", f.ACCENT),
                    ("neg_elbo", "-ELBO", f.MUTED),
                    ("linear_nll", "linear (PPCA of the size)", f.SECOND),
                ],
                "nats per sample",
                "Held-out NLL and -ELBO",
                "nats",
            ),
            "held-out NLL and -ELBO against latent size",
            "fig-nll",
            "Lower is better. The gap between the first two curves is the slack of the ELBO. The linear curve "
            "(Gaussian data) is probabilistic PCA of each size on the same held-out samples, the best linear model "
            "of it: a size above it has not reached what its size can reach.",
        ),
        _figure(
            f.curve(
                view,
                [("rec", "reconstruction term", f.ACCENT)],
                "nats per sample",
                "Reconstruction term -E log p(x|z)",
                "nats",
            ),
            "reconstruction term against latent size",
            "fig-rec",
            "Falls as the bottleneck widens, then flattens when more units add nothing.",
        ),
        _figure(
            f.curve(view, [("kl", "KL", f.SECOND)], "nats per sample", "KL(q(z|x) || p(z))", "nats"),
            "KL against latent size",
            "fig-kl",
            "The information the code carries (the rate).",
        ),
        _figure(
            f.active_units(view),
            "active units against latent size",
            "fig-active",
            "Where the curve leaves the diagonal, extra units collapse to the prior.",
        ),
        _figure(
            f.curve(
                view,
                [("gen_fd", "Frechet distance", f.ACCENT)],
                "distance (feature space)",
                "Generation: prior samples against held-out data",
            ),
            "Frechet distance of prior samples to held-out data against latent size",
            "fig-gen-fd",
            "Lower is better: decoded prior samples against held-out data, in the feature space "
            f"fitted on the training split ({esc(_features(view))}; docs/recommendation.md).",
        ),
        _figure(
            f.curve(
                view,
                [
                    ("gen_precision", "precision", f.ACCENT),
                    ("gen_recall", "recall", f.SECOND),
                    ("gen_coverage", "coverage", f.MUTED),
                ],
                "fraction",
                "Generation: fidelity and diversity",
            ),
            "precision, recall and coverage of prior samples against latent size",
            "fig-gen-prdc",
            "Precision: samples that look like data. Recall and coverage: data the samples reach.",
        ),
    ]
    body = '<div class="grid">' + "".join(parts) + "</div>"
    return _section(
        "curves",
        "Against latent size",
        body,
        "Means over seeds; error bars are standard errors across seeds when there are several. "
        "The dashed line marks the recommended size. Each y-axis zooms to its data: the title says how far "
        "the means spread over sizes, so a small difference is not mistaken for a large one.",
    )


def images(view: RunView, pics: Pictures) -> str:
    meta = view.inputs_meta
    shape, lik = list(meta.get("sample_shape", [])), meta.get("likelihood")
    if pics.inputs is None or not pics.reconstructions:
        return ""
    rec_dim = view.recommended_dim

    def row(label: str, x: Any, mark: bool = False) -> str:
        cls = ' class="rec"' if mark else ""
        return (
            f'<tr{cls}><th>{esc(label)}</th><td><img class="strip" src="{image_strip(x, shape, lik)}" '
            f'alt="{esc(label)}"></td></tr>'
        )

    recon = row("input", pics.inputs) + "".join(
        row(f"size {d}", x, d == rec_dim) for d, x in sorted(pics.reconstructions.items())
    )
    samples = "".join(row(f"size {d}", x, d == rec_dim) for d, x in sorted(pics.samples.items()))
    return _section(
        "reconstructions",
        "Reconstructions",
        f'<div class="scroll"><table class="images">{recon}</table></div>',
        "The same held-out inputs decoded at every size (decoder mean at the posterior mean; "
        "best seed of each size). The recommended size is highlighted.",
    ) + _section(
        "samples",
        "Samples from the prior",
        f'<div class="scroll"><table class="images">{samples}</table></div>',
        "Decoder means for z drawn from N(0, I), same draws for every size.",
    )


def tabular(view: RunView, pics: Pictures) -> str:
    dim = view.recommended_dim
    if dim is None:
        return ""
    names = view.inputs_meta.get("feature_names")
    fe = _figure(
        feature_error(pics, names, dim),
        "reconstruction error per feature",
        "fig-feature-error",
        "Features the recommended size reconstructs worst come first.",
    )
    return _section("feature-error", f"Reconstruction per feature (size {dim})", fe)


def latent(view: RunView, pics: Pictures) -> str:
    dim = view.recommended_dim
    if dim is None:
        return ""
    uri = latent_view(pics, view.labels, view.inputs_meta.get("label_names"), dim)
    note = "Coloured by label." if view.labels is not None else "No labels were given."
    return _section(
        "latent", f"Latent space (size {dim})", _figure(uri, "latent means of held-out inputs", "fig-latent", note)
    )


__all__ = ["curves", "images", "tabular", "latent"]
