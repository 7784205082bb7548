"""A nested model as a warm start for the per-size models: does it save time? (issue #13, part 2)

For each data set and seed: (a) every size of the grid trains from scratch to early stopping (patience
10, cap 300), as a careful per-size sweep does; (b) one nested VAE of the largest size trains to early
stopping (``zdim.models.nested.NestedVAE``), then each size is cut out of it (``prefix_model``) and trained on as
an exact size-k VAE to early stopping. Printed: wall time of each, the held-out (test) NLL per size
(IWAE, k = 50) and the NLL-knee answer of each (``zdim.recommend``, rule nll-knee, with the paired
standard errors); then the median over (data set, seed) of warm-start time over scratch time. The lever
pays when that ratio is clearly below 1 and the answers agree.

Usage: ``.venv/bin/python benchmarks/bench_warmstart.py`` (one thread, hidden (128, 64); digits and a
planted manifold of dimension 4, seeds 0 and 1; about 10 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import zdim  # noqa: E402  (sets OMP_WAIT_POLICY before torch)

# isort: split
import torch  # noqa: E402

from zdim.answer.rules import recommend  # noqa: E402
from zdim.evaluation.metrics import evaluate  # noqa: E402
from zdim.models.nested import NestedVAE  # noqa: E402
from zdim.records import TrialRecord, TrialStatus  # noqa: E402
from zdim.sweeps.planning.config import SweepConfig, build_sweep_model, model_config  # noqa: E402
from zdim.testing import make_planted_data  # noqa: E402
from zdim.training.config import TrainConfig  # noqa: E402
from zdim.training.trainer import fit  # noqa: E402

HIDDEN = (128, 64)


def scored(model: torch.nn.Module, data: zdim.Data, dim: int, seed: int) -> tuple[TrialRecord, object]:
    ev = evaluate(model, data.test, k=50, seed=0, per_sample=True)  # type: ignore[arg-type]
    rec = TrialRecord(
        dim=dim, seed=seed, status=TrialStatus.COMPLETE, nll=float(ev["nll"]), active_units=int(ev["active_units"])
    )
    return rec, ev["nll_per_sample"].numpy()


def answer(recs: list[TrialRecord], per: dict[tuple[int, int], object], data: zdim.Data) -> int:
    return recommend(recs, rule="nll-knee", likelihood=data.likelihood, per_sample=per).dim  # type: ignore[arg-type]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)
    sets = [
        ("digits", "digits", (1, 2, 3, 4, 6, 8, 12, 16)),
        ("planted d=4", make_planted_data(4, 8, 4000, seed=0), (1, 2, 3, 4, 6, 8)),
    ]
    ratios = []
    print(f"hidden {HIDDEN}, patience 10, cap 300, one thread", flush=True)
    for name, source, dims in sets:
        for seed in range(args.seeds):
            data = zdim.load_data(source, seed=seed)
            train = TrainConfig(seed=seed, epochs=300, patience=10)
            cfg = SweepConfig(dims=dims, hidden=HIDDEN, train=train)
            scratch, warm, per_s, per_w = [], [], {}, {}
            t0 = time.perf_counter()
            for d in dims:
                torch.manual_seed(seed)
                m = build_sweep_model(data, d, cfg)
                fit(m, data.train, data.val, train)
                rec, per_s[(d, seed)] = scored(m, data, d, seed)
                scratch.append(rec)
            t_scratch = time.perf_counter() - t0
            t0 = time.perf_counter()
            torch.manual_seed(seed)
            nested = NestedVAE(model_config(data, max(dims), cfg), dims)
            nfit = fit(nested, data.train, data.val, train)
            t_nested = time.perf_counter() - t0
            epochs = []
            for d in dims:
                m = nested.prefix_model(d)
                res = fit(m, data.train, data.val, train)
                epochs.append(len(res.history))
                rec, per_w[(d, seed)] = scored(m, data, d, seed)
                warm.append(rec)
            t_warm = time.perf_counter() - t0
            ratios.append(t_warm / t_scratch)
            a_s, a_w = answer(scratch, per_s, data), answer(warm, per_w, data)
            print(
                f"{name:<12} seed {seed}: scratch {t_scratch:6.1f} s, answer {a_s}; warm start {t_warm:6.1f} s "
                f"(nested {t_nested:.1f} s, {len(nfit.history)} epochs; then {sum(epochs)} epochs over the sizes), "
                f"answer {a_w}; ratio {t_warm / t_scratch:.2f}",
                flush=True,
            )
            print(
                "    test NLL scratch / warm: "
                + ", ".join(f"{d}: {s.nll:.2f}/{w.nll:.2f}" for d, s, w in zip(dims, scratch, warm)),
                flush=True,
            )
    print(
        f"\nwarm start / scratch wall time: median {statistics.median(ratios):.2f} "
        f"(range {min(ratios):.2f}-{max(ratios):.2f}) over {len(ratios)} (data set, seed) pairs"
    )


if __name__ == "__main__":
    main()
