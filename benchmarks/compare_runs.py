"""The held-out NLL per size of two run directories side by side, each difference beside its standard error.

Issue 39's "no worse than without the levers (beyond the seed SE)": run the same data before and after (for
example ``bench_small_tables.py --keep DIR``, or two ``zdim sweep`` runs), then

    PYTHONPATH=src .venv/bin/python benchmarks/compare_runs.py BEFORE_RUN AFTER_RUN [BEFORE AFTER ...]

prints, for every size both runs trained, the mean NLL of each (over its trainings: seeds, and folds where the
run has them), ``after - before`` (positive: after is worse) and the standard error of that difference:

- **one split** (no folds, or folds in one run only): the two means are independent, so the SE is
  ``s * sqrt(1/n_before + 1/n_after)``, with ``s`` the standard deviation between seeds pooled over the runs'
  seeds of the size (a size trained on one seed in one run takes its spread from the other's seeds; a size
  trained once in both has no SE);
- **folds in both** (the same folds, zdim draws them from the data and ``--seed``): the difference is paired
  by fold, ``d_f = mean_after(f) - mean_before(f)``, and the SE is the standard deviation of ``d_f`` over the
  folds over ``sqrt(F)``: the folds' own difficulty cancels.

A size whose difference exceeds its SE is ``worse beyond its SE`` (or ``better beyond its SE``); the last
line counts them. The ``same`` column sets the trainings both runs made (the same fold and seed) side by
side: ``5/5 equal`` says each of the 5 gave the same NLL in both (within 1e-3 nats), so the runs differ only
by the trainings one of them left out (seeds, where a lever trains fewer), not by any training's result;
otherwise it gives the largest difference of one training. Trials are read from ``results.csv`` (one split)
or ``folds.csv`` (a folded run: one row per trial of every fold), complete and with a finite NLL: every
such trial, also one that zdim's per-size table leaves out as having learned nothing (its rationale names
it), so a mean here can differ from the table's.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

Trials = dict[int, dict[int, dict[int, float]]]  # size -> fold (0: one split) -> seed -> its training's NLL
SAME = 1e-3  # nats: one training's NLL in two runs within this is the same training


def read_trials(run: Path) -> Trials:
    """The held-out NLL of every complete trial of ``run``, by size and fold."""
    folded = run / "folds.csv"
    path = folded if folded.is_file() else run / "results.csv"
    if not path.is_file():
        raise SystemExit(f"{run} is not a zdim run directory (no results.csv): fix the path")
    out: Trials = {}
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            try:
                nll = float(row.get("nll") or "nan")
            except ValueError:
                continue
            if row.get("status") != "complete" or not math.isfinite(nll):
                continue
            fold = int(row["fold"]) if folded.is_file() else 0
            out.setdefault(int(row["dim"]), {}).setdefault(fold, {})[int(row["seed"])] = nll
    return out


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _sd(values: list[float]) -> float:
    m = _mean(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def compare_size(
    before: dict[int, dict[int, float]], after: dict[int, dict[int, float]]
) -> tuple[float, float | None, str]:
    """``(after - before, its SE or None, how the SE was taken)`` for one size (see the module docstring)."""
    shared = sorted(set(before) & set(after))
    if len(shared) >= 2:
        diffs = [_mean(list(after[f].values())) - _mean(list(before[f].values())) for f in shared]
        return _mean(diffs), _sd(diffs) / math.sqrt(len(diffs)), f"paired over {len(diffs)} folds"
    b = [v for vs in before.values() for v in vs.values()]
    a = [v for vs in after.values() for v in vs.values()]
    groups = [g for g in (b, a) if len(g) >= 2]
    diff = _mean(a) - _mean(b)
    if not groups:
        return diff, None, "one training each: no SE"
    dof = sum(len(g) - 1 for g in groups)
    pooled = math.sqrt(sum((len(g) - 1) * _sd(g) ** 2 for g in groups) / dof)
    return diff, pooled * math.sqrt(1 / len(a) + 1 / len(b)), f"seed SD {pooled:.2f} over {dof + len(groups)} trainings"


def same_trainings(before: dict[int, dict[int, float]], after: dict[int, dict[int, float]]) -> str:
    """The trainings (fold, seed) both runs made of one size: ``k/n equal``, or the largest difference."""
    pairs = [
        (after[f][s], before[f][s]) for f in before.keys() & after.keys() for s in before[f].keys() & after[f].keys()
    ]
    if not pairs:
        return "none shared"
    gaps = [abs(a - b) for a, b in pairs]
    equal = sum(g <= SAME for g in gaps)
    return f"{equal}/{len(pairs)} equal" if equal == len(pairs) else f"{equal}/{len(pairs)} equal, max {max(gaps):.2f}"


def compare(before: Trials, after: Trials) -> tuple[list[str], list[int], list[int]]:
    """The printed lines, the sizes worse beyond their SE and the sizes better beyond it."""
    head = f"{'size':>4} {'before':>14} {'after':>14} {'after-before':>12} {'SE':>6}  {'same':<18} verdict (how)"
    lines = [head]
    worse, better = [], []
    for dim in sorted(set(before) & set(after)):
        diff, se, how = compare_size(before[dim], after[dim])
        nb, na = (sum(len(v) for v in t[dim].values()) for t in (before, after))
        mb, ma = (_mean([v for vs in t[dim].values() for v in vs.values()]) for t in (before, after))
        if se is None:
            verdict = "-"
        elif diff > se:
            verdict, _ = "worse beyond its SE", worse.append(dim)
        elif diff < -se:
            verdict, _ = "better beyond its SE", better.append(dim)
        else:
            verdict = "within its SE"
        se_text = "-" if se is None else f"{se:.2f}"
        same = same_trainings(before[dim], after[dim])
        lines.append(
            f"{dim:4d} {mb:9.2f} ({nb:2d}) {ma:9.2f} ({na:2d}) {diff:+12.2f} {se_text:>6}  {same:<18} {verdict} ({how})"
        )
    only = sorted(set(before) ^ set(after))
    if only:
        lines.append(f"in one run only: {', '.join(map(str, only))}")
    return lines, worse, better


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="BEFORE AFTER run directories, in pairs")
    args = ap.parse_args(argv)
    if len(args.runs) % 2:
        print("give the run directories in pairs, BEFORE AFTER: one is missing its pair", file=sys.stderr)
        return 2
    for before_dir, after_dir in zip(args.runs[::2], args.runs[1::2], strict=True):
        before, after = read_trials(before_dir), read_trials(after_dir)
        lines, worse, better = compare(before, after)
        print(f"{before_dir} -> {after_dir} (held-out NLL, nats per sample; the mean over n trainings)")
        print("\n".join(lines))
        shared = len(set(before) & set(after))
        print(
            f"{shared} sizes in both: {len(worse)} worse beyond its SE ({', '.join(map(str, worse)) or 'none'}), "
            f"{len(better)} better beyond it ({', '.join(map(str, better)) or 'none'})\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
