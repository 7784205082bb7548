"""The report's HTML: one self-contained page (inline CSS, inline JS, figures as data URIs).

Every string that comes from the user or the run directory (run and file names, column and label
names, commands, failure reasons) goes through ``esc``; only markup written here is left raw.
"""

from __future__ import annotations

import math
import time
from typing import Any

from .. import __version__
from ..answer.recommendation import Recommendation
from ..evidence import importance_caveat
from ..records import COLUMNS, REPORT_COLUMNS, TrialStatus
from ..sweeps.planning.plan import Mode
from ..sweeps.records.resume import recorded_mode, reproduce
from . import figures
from .assets import CSS, JS
from .collect import Pictures, RunView
from .html import esc, fmt
from .html import figure as _figure
from .html import section as _section
from .sections import curves as _curves
from .sections import images as _images
from .sections import latent as _latent
from .sections import tabular as _tabular

TABLE_COLUMNS = [(COLUMNS[k].key, COLUMNS[k].long, COLUMNS[k].fmt) for k in REPORT_COLUMNS]  # (key, header, format)
SKIP_DETAIL = {"kl_per_unit", "unit_variance", "trial"}


def _rationale(rec: Recommendation) -> str:
    """The recommendation's evidence as a list, one note per item (its warnings are in the box above);
    a file written before notes existed shows its rationale as written."""
    items = [n.text for n in rec.notes if not n.is_warning] if not rec.legacy_rationale else [rec.legacy_rationale]
    if not items:
        return ""
    return '<ul class="rationale" id="rationale">' + "".join(f"<li>{esc(s)}</li>" for s in items) + "</ul>"


def _caution(rec: Recommendation) -> str:
    """The recommendation's warnings, above the answer: "Not a settled answer" when one of them unsettles
    it, "Caution" otherwise."""
    warnings = [n.sentence() for n in rec.notes if n.is_warning]
    if not warnings:
        return ""
    title = "Caution" if rec.settled else "Not a settled answer"
    items = "".join(f"<li>{esc(w)}</li>" for w in warnings)
    return (
        f'<div class="alert" id="rec-warnings" role="alert"><div class="alert-head">{title}</div><ul>{items}</ul></div>'
    )


def _certainty(rec: Recommendation) -> str:
    """How often the bootstrap over held-out samples and seeds chose each size (runs that made one), in the
    words of ``Recommendation.confidence``."""
    if not rec.shown_shares:
        return ""
    return f'<div class="rule" id="certainty">{esc(rec.confidence)}: bootstrap resamples of {esc(rec.resampled)}</div>'


def _sizes_table(rec: Recommendation) -> str:
    """The answer beside its table: per size the held-out NLL, the gap to the best and its standard error
    (``Recommendation.size_rows``)."""
    rows = rec.size_rows()
    if not rows:
        return ""
    head = "".join(f"<th>{esc(h)}</th>" for h in rows[0])
    chosen = ' class="chosen"'
    body = "".join(
        f"<tr{chosen if r[''].startswith('answer') else ''}>"
        + "".join(f"<td>{esc(v)}</td>" for v in r.values())
        + "</tr>"
        for r in rows
    )
    return (
        '<div class="scroll"><table class="sizes" id="sizes"><caption>held-out NLL per size (nats per sample)'
        f"</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def _gap_se(figures: dict[str, Any]) -> str:
    """The standard error of a size's gap in the intrinsic-dimension check: ``se`` (never below what the
    seeds show), or the ``paired_se`` of a run written before it."""
    if figures.get("se") is not None:
        return f" (SE {figures['se']:.2f})"
    return f" (paired SE {figures['paired_se']:.2f})" if figures.get("paired_se") else ""


def _summary(view: RunView) -> str:
    d, rec = view.data, view.recommendation
    if rec is not None:
        head = (
            _caution(rec) + f'<div class="answer"><div class="big" id="recommended-dim">{int(rec.dim)}</div>'
            f'<div><div class="label">recommended latent size</div>'
            f'<div class="rule">rule: <code>{esc(rec.rule)}</code></div>'
            + _certainty(rec)
            + "</div></div>"
            + _sizes_table(rec)
            + _rationale(rec)
        )
    else:
        head = '<div class="answer warn">No recommendation yet: no trial has finished.</div>'
    failed = [t for t in view.trials if t.status is TrialStatus.FAILED]
    if failed:
        items = "".join(f'<li><a href="#trial-{esc(t.trial)}">{esc(t.trial)}</a>: {esc(t.reason)}</li>' for t in failed)
        head += f'<div class="warn"><b>{len(failed)} trial(s) failed</b> (not used by the rule):<ul>{items}</ul></div>'
    shape = " × ".join(str(s) for s in d.get("sample_shape", []))
    rows = [
        ("data", esc(d.get("name", ""))),
        ("source", f"<code>{esc(d.get('source', ''))}</code>"),
        ("sample shape", esc(shape)),
        ("likelihood", esc(d.get("likelihood", ""))),
        (
            "splits (train / validation / test)",
            f"{d.get('n_train', '?')} / {d.get('n_val', '?')} / {d.get('n_test', '?')}",
        ),
        ("labels", "yes (evaluation only)" if d.get("has_labels") else "no"),
        ("trials", f"{len(view.complete)} complete of {len(view.trials)}"),
    ]
    notes = d.get("notes")
    if isinstance(notes, list) and notes:  # what reading the table did: columns dropped, yes/no, the separator
        rows.insert(4, ("columns", '<ul id="data-notes">' + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>"))
    cap = rec.capacity if rec is not None else None
    if cap:  # the intrinsic-dimension check: the sizes at the estimate against the answer
        sizes = "; ".join(
            f"size {d}: {f['gap']:+.2f} nats" + _gap_se(f)
            for d, f in sorted(cap["sizes"].items(), key=lambda kv: int(kv[0]))
        )
        rows.append(
            (
                "intrinsic-dimension check",
                esc(
                    f"estimate {cap['intrinsic']:.1f} (TwoNN {cap['twonn']:.1f}, MLE {cap['mle']:.1f}); against "
                    f"size {cap['answer']}: {sizes}"
                ),
            )
        )
    sweep = view.info.get("sweep", {})
    if sweep:
        tr = sweep.get("train", {})
        rows.append(
            (
                "grid",
                esc(
                    f"sizes {sweep.get('dims')} × {sweep.get('seeds')} seed(s); "
                    f"hidden {sweep.get('hidden')} ({sweep.get('arch')}); up to "
                    f"{tr.get('epochs')} epochs, batch {tr.get('batch_size')}, "
                    f"lr {tr.get('lr')}, beta {tr.get('beta')}; k = {sweep.get('k')}"
                ),
            )
        )
        if recorded_mode(sweep) is Mode.NESTED:
            rows.append(
                ("training", "nested: one VAE per seed at the largest size serves every size (its first k units)")
            )
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    cmd = reproduce(view.info) or view.info.get("command")
    cmd_html = (
        f'<p class="label">reproduce this run</p><pre class="cmd" id="reproduce"><code>{esc(cmd)}</code></pre>'
        if cmd
        else ""
    )
    made = [view.info.get("command")] + [
        r.get("command") for r in view.info.get("resumes") or [] if isinstance(r, dict)
    ]
    if cmd != made[0] and any(made):  # the commands typed: the one that made the run, then each resume
        typed = "".join(f"<li><code>{esc(c)}</code></li>" for c in made if c)
        cmd_html += f'<p class="label">commands that made it</p><ul class="small" id="commands">{typed}</ul>'

    return (
        f'<section id="summary" data-section="summary">{head}'
        f'<div class="two"><table class="kv">{table}</table><div>{cmd_html}</div></div></section>'
    )


def _sparkline(history: list[dict[str, float]], w: int = 280, h: int = 124) -> str:
    """Train/validation -ELBO per epoch as a small inline SVG with axes (no ids, so no clashes)."""
    pts = [
        (r["epoch"], r["train_loss"], r["val_neg_elbo"])
        for r in history
        if all(
            math.isfinite(v)
            for v in (r.get("epoch", math.nan), r.get("train_loss", math.nan), r.get("val_neg_elbo", math.nan))
        )
    ]
    if len(pts) < 2:
        return ""
    e0, e1 = pts[0][0], pts[-1][0]
    ys = [p[1] for p in pts] + [p[2] for p in pts]
    lo, hi = min(ys), max(ys)
    left, right, top, bottom = 52, 8, 7, 32  # plot area margins: tick labels and axis labels outside
    pw, ph = w - left - right, h - top - bottom

    def x(e: float) -> float:
        return left + (e - e0) / max(e1 - e0, 1) * pw

    def y(v: float) -> float:
        return top + (hi - v) / max(hi - lo, 1e-9) * ph

    def line(i: int) -> str:
        return " ".join(f"{x(p[0]):.1f},{y(p[i]):.1f}" for p in pts)

    ink = figures.MUTED
    xt = figures.nice_ticks(e0, e1, 4, integer=True)  # epochs: whole numbers
    yt = figures.nice_ticks(lo, hi, 3)
    ystep = yt[1] - yt[0] if len(yt) > 1 else abs(hi - lo)
    text = f'font-size="10" fill="{ink}" font-family="sans-serif"'
    axes = (
        f'<path fill="none" stroke="{ink}" stroke-width="0.8" d="M{left},{top}V{top + ph}H{left + pw}"/>'
        + "".join(
            f'<path stroke="{ink}" stroke-width="0.8" d="M{x(e):.1f},{top + ph}v3"/>'
            f'<text {text} x="{x(e):.1f}" y="{top + ph + 12}" text-anchor="middle">{e:.0f}</text>'
            for e in xt
        )
        + "".join(
            f'<path stroke="{ink}" stroke-width="0.8" d="M{left},{y(v):.1f}h-3"/>'
            f'<text {text} x="{left - 5}" y="{y(v) + 3:.1f}" text-anchor="end">{esc(figures.tick_label(v, ystep))}</text>'
            for v in yt
        )
        + f'<text {text} x="{left + pw / 2:.1f}" y="{h - 2}" text-anchor="middle">epoch</text>'
        + f'<text {text} transform="translate(11,{top + ph / 2:.1f}) rotate(-90)" text-anchor="middle">'
        "validation -ELBO</text>"
    )
    return (
        f'<svg class="spark" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
        f'aria-label="training curve: -ELBO per epoch">{axes}'
        f'<polyline fill="none" stroke="{figures.MUTED}" stroke-width="1.2" points="{line(1)}"/>'
        f'<polyline fill="none" stroke="{figures.ACCENT}" stroke-width="1.6" points="{line(2)}"/></svg>'
        '<div class="small">grey: train loss, blue: validation -ELBO (nats per sample)</div>'
    )


MMD_NOTE = (
    "gen_mmd is the squared maximum mean discrepancy between the latent means of held-out inputs and "
    "draws from the prior N(0, I) (lower: the code looks more like the prior). Its unbiased estimator "
    "can come out slightly negative when the two distributions match: read a small negative value as 0."
)


def _table(view: RunView) -> str:
    rows_of = [(t, t.flat()) for t in view.trials]  # the columns of results.csv, one dict per trial
    extra = sorted(
        {
            k
            for _, row in rows_of
            for k, v in row.items()
            if isinstance(v, (int, float))
            and not isinstance(v, bool)
            and k not in {c[0] for c in TABLE_COLUMNS}
            and k not in SKIP_DETAIL
            and k not in {"n", "k", "eval_seconds", "n_params", "best_val_neg_elbo", "mse"}
        }
    )
    cols = TABLE_COLUMNS + [(k, k, ".4g") for k in extra]
    table = _trial_rows(rows_of, cols, view.recommended_dim, "trials-table")
    if view.folds is not None:
        folds = len(view.folds.folds)
        table = (
            f'<p class="small" id="pooled-note">Each row pooled over the {folds} folds (every row of the data '
            "held out once): the numbers the answer read and results.csv holds. Each fold's own rows are in "
            "\"Each fold's trials\" below; the trial details and pictures are the first fold's models.</p>" + table
        )
    details = []
    for t, row in rows_of:
        kv = "".join(
            f"<tr><th>{esc(k)}</th><td>{esc(fmt(v))}</td></tr>" for k, v in row.items() if k not in SKIP_DETAIL
        )
        spark = _sparkline(view.histories.get(t.trial, []))
        details.append(
            f'<details id="trial-{esc(t.trial)}"><summary>{esc(t.trial)} '
            f'<span class="badge {esc(t.status.value)}">{esc(t.status.value)}</span></summary>'
            f'<div class="two"><table class="kv">{kv}</table><div>{spark}</div></div></details>'
        )
    has_mmd = any(t.metric("gen_mmd") is not None for t in view.trials)
    note = f'<p class="small" id="mmd-note">{esc(MMD_NOTE)}</p>' if has_mmd else ""
    return _section(
        "trials",
        "All trials",
        table + note + "<h3>Trial details</h3>" + "".join(details),
        "Click a column header to sort; click a trial for its details.",
    )


def _trial_rows(
    rows_of: list[tuple[Any, dict[str, Any]]], cols: list[tuple[str, str, str]], rec_dim: int | None, table_id: str
) -> str:
    """A sortable table of trials: one row per ``(record, its flat row)``, the columns ``cols``."""
    head = "".join(
        f'<th data-col="{i}" tabindex="0"{_column_title(k)}>{esc(h)}</th>' for i, (k, h, _) in enumerate(cols)
    )
    rows = []
    for t, row in rows_of:
        cells = []
        for key, _, spec in cols:
            v = row.get(key)
            text = f'<a href="#trial-{esc(v)}">{esc(v)}</a>' if key == "trial" else esc(fmt(v, spec))
            sort = v if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else ""
            cells.append(f'<td data-sort="{esc(sort)}">{text}</td>')
        cls = [t.status.value] + (["rec"] if t.dim == rec_dim else [])
        rows.append(f'<tr class="{esc(" ".join(cls))}">{"".join(cells)}</tr>')
    return (
        f'<div class="scroll"><table class="trials sortable" id="{esc(table_id)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _fold_table(view: RunView) -> str:
    """With k folds: each fold's own rows (its test split alone), fold by fold; "" without folds."""
    if view.folds is None:
        return ""
    rows_of = [
        (t, {"fold": j + 1, "folder": folder, **t.flat()})
        for j, (records, folder) in enumerate(zip(view.folds.folds, view.folds.folders, strict=True))
        for t in records
    ]
    cols = [("fold", "fold", "d"), ("folder", "folder", "s"), *(c for c in TABLE_COLUMNS if c[0] != "trial")]
    return _section(
        "fold-trials",
        "Each fold's trials",
        _trial_rows(rows_of, cols, view.recommended_dim, "fold-trials-table"),
        "Each fold's models on its own test split alone (folds.csv); the answer reads the rows pooled over "
        "every fold (All trials).",
    )


def _column_title(key: str) -> str:
    """A tooltip for columns that need one."""
    return f' title="{esc(MMD_NOTE)}"' if key == "gen_mmd" else ""


def _tuned_test(view: RunView) -> str:
    """``test NLL: sweep X -> tuned Y`` from ``tune/final/metrics.json``; "" when it is absent."""
    final = view.tuned_test or {}
    sweep_test = final.get("sweep_test")
    tuned = _number(final.get("nll"))
    sweep = _number(sweep_test.get("nll")) if isinstance(sweep_test, dict) else None
    if tuned is None:
        return ""
    if sweep is not None:
        text = (
            f"test NLL: sweep {sweep:.3f} → tuned {tuned:.3f} nats "
            f"({tuned - sweep:+.3f}; lower is better; the sweep's figure is its mean over seeds at this size)"
        )
    else:
        text = f"test NLL: tuned {tuned:.3f} nats (the sweep's figure at this size was not recorded)"
    return f'<p class="tuned-test" id="tuned-test">{esc(text)}</p>'


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or None (missing, text, NaN, a boolean)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _settle(view: RunView) -> str:
    settle = view.settle
    if not settle or not settle.get("trace"):
        return ""
    trace = settle["trace"]
    how = settle.get("how") or ""
    phases = len(settle.get("phases") or [])
    grew = (
        f" The grid grew {phases} time(s) during the sweep; the figure shows the last phase, whose new members "
        "trained from epoch 1 beside the finished ones."
        if phases
        else ""
    )
    return _section(
        "settle",
        "When the answer settled",
        _figure(
            figures.settle_history(settle),
            "recommended size per epoch",
            "fig-settle",
            f"Settle mode: after every epoch each member was scored on the same {esc(settle.get('eval_samples'))} "
            "validation samples and the rule applied; training stops once the answer has held for "
            f"{esc(settle.get('window'))} epochs and the members it rests on have converged.{esc(grew)}",
        ),
        f"The answer on the validation subset was {esc(trace[-1]['dim'])} at epoch {esc(trace[-1]['epoch'])}"
        + (f": {esc(how)}." if how else ".")
        + " That subset drives training; the recommendation above is decided on the test split, and where the "
        "two differ the sizes are within noise of each other on one of them (the table beside the answer).",
    )


def _tuning(view: RunView) -> str:
    tuning = view.tuning
    if not tuning or "best" not in tuning:
        return ""
    base, best = tuning.get("baseline") or {}, tuning.get("best") or {}
    keys = sorted(set(base.get("params", {})) | set(best.get("params", {})))
    imp = tuning.get("importances") or {}
    rows = "".join(
        f"<tr><th>{esc(k)}</th><td>{esc(fmt(base.get('params', {}).get(k)))}</td>"
        f"<td>{esc(fmt(best.get('params', {}).get(k)))}</td><td>{esc(fmt(imp.get(k), '.2f'))}</td></tr>"
        for k in keys
    )
    rows += (
        f'<tr class="rec"><th>validation {esc(tuning.get("objective", ""))}</th>'
        f"<td>{esc(fmt(base.get('value'), '.3f'))}</td>"
        f"<td>{esc(fmt(best.get('value'), '.3f'))}</td><td></td></tr>"
    )
    table = (
        f'<table class="trials"><thead><tr><th>parameter</th><th>baseline</th><th>best</th>'
        f"<th>importance</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    fig = _figure(
        figures.tuning_history(tuning),
        "tuning history",
        "fig-tuning",
        "Each tuning trial's validation objective; the step line is the best so far.",
    )
    caveat = importance_caveat(tuning)
    caveat_html = f'<p class="small" id="importance-caveat">Importances{esc(caveat)}.</p>' if caveat else ""
    kept = (
        f" (the sweep's: the tuned model, in <code>{esc(tuning.get('tuned_model', ''))}</code>, is worse on the "
        "test split)"
        if tuning.get("kept") == "sweep"
        else ""
    )
    return _section(
        "tuning",
        f"Tuning at latent size {esc(tuning.get('dim'))}",
        _tuned_test(view) + f'<div class="two"><div class="scroll">{table}{caveat_html}</div>{fig}</div>',
        f"{esc(tuning.get('n_trials'))} Optuna trials by <code>zdim tune</code>; the final model is in "
        f"<code>{esc(tuning.get('final_model', ''))}</code>{kept}.",
    )


def render(view: RunView, pics: Pictures) -> str:
    """The whole page as a string."""
    name = view.data.get("name") or view.run_dir.name
    body = [_summary(view), _settle(view), _curves(view)]
    body.append(
        _section(
            "rate-distortion",
            "Rate and distortion",
            _figure(
                figures.rate_distortion(view),
                "rate-distortion plane",
                "fig-rd",
                "Moving right buys reconstruction with information; the knee is where extra rate stops paying.",
            ),
        )
    )
    body.append(
        _section(
            "kl-units",
            "KL per latent unit",
            _figure(
                figures.kl_heatmap(view),
                "KL per latent unit heatmap",
                "fig-kl-units",
                "The colour scale starts at 0 nats (darkest: the unit carries nothing, collapsed to the "
                "prior); read a cell's KL off the colorbar. Blank cells: the size has fewer units.",
            ),
        )
    )
    if view.inputs_meta.get("is_image"):
        body.append(_images(view, pics))
    else:
        body.append(_tabular(view, pics))
    body.append(_latent(view, pics))
    cards = "".join(
        f'<div class="card"><a href="#trial-{esc(t.trial)}">{esc(t.trial)}</a>{spark}</div>'
        for t in view.trials
        if (spark := _sparkline(view.histories.get(t.trial, [])))
    )
    body.append(
        _section(
            "training",
            "Training curves",
            f'<div class="cards" id="fig-training">{cards}</div>' if cards else "",
            "Train (grey) and validation (blue) -ELBO per epoch, each trial on its own scale; "
            "early stopping restores the best validation epoch.",
        )
    )
    body.append(_tuning(view))
    body.append(_table(view))
    body.append(_fold_table(view))
    if pics.missing:
        body.append(
            f'<p class="warn">Models that could not be loaded (pictures skipped): {esc(", ".join(pics.missing))}</p>'
        )
    nav = "".join(
        f'<a href="#{i}">{t}</a>'
        for i, t in [
            ("summary", "Answer"),
            ("settle", "Settling"),
            ("curves", "Curves"),
            ("rate-distortion", "Rate–distortion"),
            ("kl-units", "KL per unit"),
            ("reconstructions", "Reconstructions"),
            ("samples", "Samples"),
            ("feature-error", "Per feature"),
            ("latent", "Latent space"),
            ("training", "Training"),
            ("tuning", "Tuning"),
            ("trials", "Trials"),
            ("fold-trials", "Folds"),
        ]
        if f'id="{i}"' in "".join(body)
    )
    stamp = time.strftime("%Y-%m-%d %H:%M %Z")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>zdim report: {esc(name)}</title>
<style>{CSS}</style></head>
<body><header><div class="wrap"><span class="brand">zdim</span> <span class="title">{esc(name)}</span>
<span class="muted">{esc(view.run_dir.name)}</span></div><nav class="wrap">{nav}</nav></header>
<main class="wrap">{"".join(body)}</main>
<footer class="wrap muted">zdim {esc(__version__)} · built {esc(stamp)} from the run directory alone
(<code>zdim report {esc(view.run_dir)}</code> rebuilds it).</footer>
<script>{JS}</script></body></html>
"""
