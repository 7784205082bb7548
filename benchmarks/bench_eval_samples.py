"""``--eval-samples``: every size evaluated on one paired subset of the test split (issue #13, part 2).

On MNIST (``max_samples=5000``: 4,500 training images, and 5,000 of the ``t10k`` images as the test split)
one per-size sweep over sizes 2, 5, 10, 20, 50 at a fixed 5 epochs (patience off, so the training is
the same in every run) is run with the whole test split and with ``--eval-samples N``, alternately,
``--rounds`` times. Printed per run: wall time, the summed evaluation time of its trials, the
recommended size and the held-out NLL of that size on the whole test split; then the median wall-time
ratio (subset / whole) and whether the answers agree.

Usage: ``.venv/bin/python benchmarks/bench_eval_samples.py [--n 2000] [--rounds 2]`` (one thread;
about 15 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import zdim  # noqa: E402  (sets OMP_WAIT_POLICY before torch)

# isort: split
import torch  # noqa: E402

MNIST = ROOT.parent / "shared" / "datasets" / "mnist"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="test samples per trial (default 2000)")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = zdim.load_data(str(MNIST), max_samples=5000, seed=0)
    print(f"MNIST: {data.train.shape[0]} train, {data.test.shape[0]} test; sizes 2,5,10,20,50; 5 epochs", flush=True)
    times: dict[str, list[float]] = {"whole": [], "subset": []}
    answers: dict[str, set[int]] = {"whole": set(), "subset": set()}
    order: list[tuple[str, int | None]] = [("whole", None), ("subset", args.n)]
    for rnd in range(args.rounds):
        for label, n in order if rnd % 2 == 0 else order[::-1]:
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                r = zdim.sweep(
                    data,
                    dims=[2, 5, 10, 20, 50],
                    seeds=1,
                    epochs=5,
                    patience=0,
                    mode="per-size",
                    eval_samples=n,
                    extend=False,
                    report=False,
                    out=Path(tmp) / "run",
                )
                secs = time.perf_counter() - t0
            rec = r.recommendation
            assert rec is not None
            full = rec.full_test["nll_mean"] if rec.full_test else next(t.nll for t in r.trials if t.dim == rec.dim)
            evals = sum(t.eval_seconds or 0.0 for t in r.trials)
            times[label].append(secs)
            answers[label].add(rec.dim)
            print(
                f"round {rnd} {label:<6} ({'all' if n is None else n} test samples per trial): {secs:6.1f} s, "
                f"evaluation {evals:6.1f} s, recommended {rec.confidence}, its NLL on the whole test split "
                f"{full:.2f}",
                flush=True,
            )
    ratio = statistics.median(times["subset"]) / statistics.median(times["whole"])
    print(
        f"\nwall time, median: whole {statistics.median(times['whole']):.1f} s, --eval-samples {args.n} "
        f"{statistics.median(times['subset']):.1f} s, ratio {ratio:.2f}; answers whole {sorted(answers['whole'])}, "
        f"subset {sorted(answers['subset'])}"
    )


if __name__ == "__main__":
    main()
