"""Real tables and the classic manifolds, read against their own table (issue 29).

For each set, one sweep as a user runs it (``zdim.sweep`` with every default but ``--seeds`` when given),
then the answer read against its own per-size table: the answer and how sure (the bootstrap's shares only
where they are shown), whether it is flagged and why (the warning codes), the sizes tried, and the check
of the lower envelope: the sizes smaller than the answer whose held-out NLL is better beyond the standard
error of the gap (``none`` is the target). For the sets of known dimension (scikit-learn's Swiss roll and
S-curve, 4,000 points), d beside the answer. Tables under 300 test rows are answered from k folds (every
row held out once, ``zdim.data.folds``) unless ``--folds 1``; the line under such a set says what they cost.

Sets: ``breast_cancer`` (569 x 30), ``wine`` (178 x 13), ``diabetes`` (442 x 10) from scikit-learn, and
``swiss_roll``/``s_curve`` (d = 2 in 3 features, noise 0.05 and 0.01).

Usage: ``PYTHONPATH=src .venv/bin/python benchmarks/validate/tables.py [--sets a,b] [--seeds 1]``
(minutes per set on 2 busy cores).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402

import zdim  # noqa: E402

SETS = ("breast_cancer", "wine", "diabetes", "swiss_roll_0.05", "swiss_roll_0.01", "s_curve_0.05", "s_curve_0.01")


def generate(name: str) -> tuple[np.ndarray, int | None]:
    """The set's rows (n, D) float32 and its dimension where it is known."""
    from sklearn import datasets

    if name in ("breast_cancer", "wine", "diabetes"):
        return getattr(datasets, f"load_{name}")().data.astype(np.float32), None
    kind, noise = name.rsplit("_", 1)
    x, _ = getattr(datasets, f"make_{kind}")(4000, noise=float(noise), random_state=0)
    return x.astype(np.float32), 2


def envelope_misses(rec: zdim.Recommendation) -> list[str]:
    """The smaller sizes the answer's own held-out NLL is worse than, beyond the standard error of the gap
    (over seeds, and paired over the held-out samples: ``zdim.answer.rules.envelope`` on the answer's rows)."""
    rows = {r["dim"]: r for r in rec.per_dim}
    a = rows[rec.dim]
    return (
        []
        if a.get("worse_than") is None
        else [f"{a['worse_than']} ({a['nll_mean'] - rows[a['worse_than']]['nll_mean']:+.2f})"]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default=",".join(SETS), help="comma-separated: " + ", ".join(SETS))
    ap.add_argument("--seeds", type=int, default=None, help="seeds per size (default: settle mode's 3)")
    ap.add_argument("--folds", type=int, default=None, help="folds (default: zdim's, 5 under 300 test rows)")
    args = ap.parse_args()
    print("set | rows x features | d | answer | flagged (codes) | sizes tried | smaller and better beyond SE | seconds")
    with tempfile.TemporaryDirectory() as tmp:
        for name in [s for s in args.sets.split(",") if s]:
            x, d = generate(name)
            path = Path(tmp) / f"{name}.npy"
            np.save(path, x)
            kw = {"seeds": args.seeds} if args.seeds else {}
            if args.folds is not None:
                kw["folds"] = args.folds
            t0 = time.perf_counter()
            r = zdim.sweep(str(path), out=Path(tmp) / name, report=False, **kw)
            secs = time.perf_counter() - t0
            rec = r.recommendation
            assert rec is not None, f"{name}: no trial completed"
            codes = sorted({n.code for n in rec.notes if n.is_warning and n.code})
            flag = ("not settled" if not rec.settled else "caution") + f" ({', '.join(codes)})" if codes else "no"
            tried = sorted({t.dim for t in r.trials if t.complete})
            misses = envelope_misses(rec)
            print(
                f"{name} | {x.shape[0]} x {x.shape[1]} | {d if d is not None else '-'} | {rec.confidence} | {flag} | "
                f"{tried} | {', '.join(misses) or 'none'} | {secs:.0f}",
                flush=True,
            )
            for note in rec.notes:  # the folds' cost and each fold's own answer (small tables)
                if note.text.startswith("The evidence pools"):
                    print("    " + note.text, flush=True)
            for row in rec.size_rows():
                print("    " + "  ".join(f"{k or 'note'} {v}" for k, v in row.items() if v), flush=True)


if __name__ == "__main__":
    main()
