"""Could settle mode stop sooner? Replays recorded settle trainings under other stopping rules.

Settle mode trains every (size, seed) member of the grid together and stops once the answer has held
for a window and the members it rests on have converged (``zdim.sweeps.executors.settle``). bench_stability.py found
that this costs about what a careful per-size sweep costs (ratio 0.97 against a target of 0.25). This
benchmark asks whether another stopping rule over the *same* trainings would reach the careful answer
for less.

``--record`` runs each (data set, seed) of bench_stability.py's quick sets (hidden (128, 64), one seed
per size) in settle mode with its stopping rule switched off, so that every member trains to its own
early stop (patience 10) or the cap. After every epoch it keeps each member's validation-subset NLL
(per sample), active units, best epoch so far and whether it has woken, and its per-sample test NLL
(IWAE, k = 10). It writes one ``<set>-<seed>.npz`` and ``.json`` per pair into ``--dir``. It takes about
45 minutes on 2 cores.

Without ``--record`` it replays the recordings. For each rule it finds the round where that rule stops,
and the answer a run stopped there would give: each member's best weights so far, evaluated on the
test split (the recorded per-sample test NLL), by the sweep's rule with paired standard errors. The
reference is the careful sweep (per size, 200-epoch cap, patience 10), whose members are these same
trainings cut at 200 epochs (a settle member is bit for bit the model trained alone). The cost is the
member-epochs trained, over the careful sweep's member-epochs. It prints, per rule, the agreement with
the careful answer and the cost ratio.

Usage: ``.venv/bin/python benchmarks/bench_settle_rules.py --record`` then
``.venv/bin/python benchmarks/bench_settle_rules.py`` (``--dir``, default ``benchmarks/.settle-rules``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import zdim  # noqa: E402  # first: it sets OMP_WAIT_POLICY before torch loads OpenMP

# isort: split
from bench_stability import SETS  # noqa: E402

from zdim.answer.rules import DEFAULT_RULE, recommend  # noqa: E402
from zdim.evaluation.metrics import evaluate  # noqa: E402
from zdim.records import TrialRecord, TrialStatus  # noqa: E402
from zdim.sweeps.execute import sweep  # noqa: E402
from zdim.sweeps.executors import member, settle  # noqa: E402
from zdim.sweeps.planning.config import SweepConfig  # noqa: E402
from zdim.sweeps.planning.plan import SETTLE_EPOCHS  # noqa: E402
from zdim.training.config import TrainConfig  # noqa: E402

QUICK = ("digits", "planted4", "planted6")
CAREFUL_CAP = 200
WINDOW = settle.DEFAULT_WINDOW
FIELDS = ("nll", "active", "asleep", "early", "best")


# ------------------------------------------------------------------------------------ recording


def record(names: tuple[str, ...], seeds: int, out: Path) -> None:
    """Settle runs with the settle stop off; every member's per-epoch scores into ``out``."""
    log: list[dict[str, Any]] = []
    test: list[Any] = [None]
    run_epoch = settle.SettleExecutor._epoch

    def _epoch(self: settle.SettleExecutor, m: member.Member, subset: Any) -> None:
        run_epoch(self, m, subset)
        if m.failed or m.val_nll is None:
            return
        ev = evaluate(m.model, test[0], k=10, seed=0, per_sample=True)
        log.append(
            {
                "dim": m.dim,
                "nll": m.val_nll,
                "active": m.active,
                "asleep": m.trainer.asleep,
                "early": bool(m.trainer.done and m.trainer.result.stopped_early),
                "best": m.trainer.result.best_epoch,
                "ps": m.per_sample.copy(),
                "tps": ev["nll_per_sample"].cpu().numpy(),
            }
        )

    settle.SettleExecutor._epoch = _epoch  # type: ignore[method-assign]
    settle.SettleExecutor._stop_settled = lambda *a, **k: None  # type: ignore[method-assign]
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        _, source, dims, opts = SETS[name]()
        for seed in range(seeds):
            log.clear()
            data = zdim.load_data(source, seed=seed, **opts)
            test[0] = data.test
            train = TrainConfig(seed=seed, epochs=SETTLE_EPOCHS, patience=10)
            cfg = SweepConfig(dims=dims, hidden=(128, 64), k=50, train=train)
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                sweep(data, config=cfg, mode="settle", extend=False, out=Path(tmp) / "run")
            meta = {"name": name, "seed": seed, "rel_tol": cfg.rel_tol, "likelihood": data.likelihood}
            save(out / f"{name}-{seed}", log, meta | {"seconds": time.perf_counter() - t0})
            print(f"recorded {name} seed {seed} in {time.perf_counter() - t0:.0f} s", flush=True)


def save(stem: Path, log: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    """One recording: per size, arrays over epochs (``npz``) and the run's facts (``json``)."""
    arrays: dict[str, Any] = {}
    for dim in sorted({x["dim"] for x in log}):
        xs = [x for x in log if x["dim"] == dim]
        for f in FIELDS:
            arrays[f"{dim}.{f}"] = np.array([x[f] for x in xs], dtype=float)
        arrays[f"{dim}.ps"] = np.stack([x["ps"] for x in xs])
        arrays[f"{dim}.tps"] = np.stack([x["tps"] for x in xs])
    np.savez_compressed(stem.with_suffix(".npz"), **arrays)
    stem.with_suffix(".json").write_text(json.dumps(meta))


# ------------------------------------------------------------------------------------ replay


class Recording:
    """One (data set, seed): each member's state after each of its epochs."""

    def __init__(self, stem: Path) -> None:
        self.meta = json.loads(stem.with_suffix(".json").read_text())
        with np.load(stem.with_suffix(".npz"), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        self.dims = sorted({int(k.split(".")[0]) for k in arrays})
        self.a = {d: {f: arrays[f"{d}.{f}"] for f in (*FIELDS, "ps", "tps")} for d in self.dims}
        self.end = {d: len(self.a[d]["nll"]) for d in self.dims}  # the epoch it stopped by itself

    def _rec(self, stop: dict[int, int], test: bool) -> tuple[int, float]:
        """The answer with member ``d`` stopped after ``stop[d]`` epochs: on the validation subset with
        its latest weights, or (``test``) on the test split with its best weights so far."""
        recs, per = [], {}
        for d in self.dims:
            a, e = self.a[d], min(stop[d], self.end[d])
            i = max(min(int(a["best"][e - 1]), e), 1) - 1 if test else e - 1
            ps = a["tps"][i] if test else a["ps"][i]
            recs.append(
                TrialRecord(
                    dim=d, seed=0, status=TrialStatus.COMPLETE, nll=float(ps.mean()), active_units=int(a["active"][i])
                )
            )
            per[(d, 0)] = ps
        rec = recommend(
            recs, rel_tol=self.meta["rel_tol"], rule=DEFAULT_RULE, likelihood=self.meta["likelihood"], per_sample=per
        )
        return rec.dim, float(rec.tolerance)

    def answer(self, stop: dict[int, int]) -> tuple[int, float]:
        """Settle mode's answer of this round and the rule's tolerance (validation subset)."""
        return self._rec(stop, test=False)

    def final(self, stop: dict[int, int]) -> int:
        """The answer a run stopped here reports (test split, best weights)."""
        return self._rec(stop, test=True)[0]

    def projected(self, d: int, e: int, horizon: float | None) -> float | None:
        """Member ``d``'s gain in best subset NLL over the last ``WINDOW`` of its first ``e`` epochs, kept
        up for ``horizon`` more epochs (default: as many as it has trained). None while asleep or young;
        0 once it early-stopped."""
        a, e = self.a[d], min(e, self.end[d])
        if a["early"][e - 1]:
            return 0.0
        if a["asleep"][e - 1] or e <= WINDOW:
            return None
        s = a["nll"][:e]
        gain = float(s[:-WINDOW].min() - s.min())
        h = e if horizon is None else (-horizon * e if horizon < 0 else horizon)  # < 0: that many times e
        return gain * h / WINDOW


Rule = Callable[[Recording, int, list[int], float, dict[int, int]], bool]


def settle_rule(horizon: float | None = None, largest: bool = True, prune: bool = False) -> Rule:
    """zdim's rule (defaults): the answer held for ``WINDOW`` rounds and the chosen size, the next smaller
    and (``largest``) the largest have converged (projected gain below half the tolerance). ``prune``
    also stops, each round, a member whose projected gain cannot change its part in the answer: a size
    below the answer that cannot come within the tolerance, or one above it that cannot become the best."""

    def rule(r: Recording, e: int, trace: list[int], tol: float, stop: dict[int, int]) -> bool:
        a = trace[-1]
        if prune and e >= 2 * WINDOW:
            nll = {d: float(r.a[d]["nll"][min(e, stop[d], r.end[d]) - 1]) for d in r.dims}
            best = min(nll, key=lambda d: nll[d])
            for d in r.dims:
                if d in (a, best) or stop[d] < e or r.end[d] < e:
                    continue
                p = r.projected(d, e, horizon)
                gap = nll[d] - nll[best]
                if p is not None and ((d < a and p < gap - tol) or (d > a and p < gap)):
                    stop[d] = e
        if len(trace) < WINDOW or any(t != a for t in trace[-WINDOW:]):
            return False
        smaller = max((d for d in r.dims if d < a), default=None)
        need = {a, r.dims[-1]} if largest else {a}
        need |= {smaller} if smaller is not None else set()
        for d in need:
            if stop[d] < e or r.end[d] < e:
                continue  # stopped already: flat as far as the answer goes
            p = r.projected(d, e, horizon)
            if p is None or p >= 0.5 * tol:
                return False
        return True

    return rule


def margin_rule(horizon: float | None = None) -> Rule:
    """The answer held for ``WINDOW`` rounds and, with every member's projected gain, it cannot move: no
    smaller size can come within the tolerance of the best, and the best cannot pull away from the chosen
    size by more than the tolerance (worst case: the chosen size gains nothing)."""

    def rule(r: Recording, e: int, trace: list[int], tol: float, stop: dict[int, int]) -> bool:
        a = trace[-1]
        if len(trace) < WINDOW or any(t != a for t in trace[-WINDOW:]):
            return False
        nll, p = {}, {}
        for d in r.dims:
            n = min(e, stop[d], r.end[d])
            nll[d] = float(r.a[d]["nll"][n - 1])
            p[d] = 0.0 if n < e else r.projected(d, e, horizon)
        if any(v is None for v in p.values()):
            return False
        best = min(nll.values())
        if any(nll[d] - p[d] - best <= tol for d in r.dims if d < a):  # type: ignore[operator]
            return False
        return nll[a] - min(nll[d] - p[d] for d in r.dims if d != a) <= tol  # type: ignore[operator]

    return rule


def replay(r: Recording, rule: Rule) -> tuple[int, int, int]:
    """(round it stops, its answer, member-epochs trained)."""
    stop = {d: 10**9 for d in r.dims}
    trace: list[int] = []
    last = max(r.end.values())
    e = last
    for e in range(1, last + 1):
        if all(min(stop[d], r.end[d]) < e for d in r.dims):
            e -= 1
            break
        cur = {d: min(stop[d], e) for d in r.dims}
        answer, tol = r.answer(cur)
        trace.append(answer)
        if rule(r, e, trace, tol, stop):
            break
    cut = {d: min(stop[d], e) for d in r.dims}
    return e, r.final(cut), sum(min(cut[d], r.end[d]) for d in r.dims)


def oracle(r: Recording) -> tuple[int, int, int]:
    """A stop no rule can beat by waiting for the answer: the first round from which the validation answer
    of the unstopped trainings never changes again (it knows the future)."""
    last = max(r.end.values())
    trace = [r.answer({d: e for d in r.dims})[0] for e in range(1, last + 1)]
    e = last
    while e > 1 and trace[e - 2] == trace[-1]:
        e -= 1
    cut = {d: e for d in r.dims}
    return e, r.final(cut), sum(min(e, n) for n in r.end.values())


RULES: dict[str, Rule] = {
    "zdim's rule (horizon: epochs so far)": settle_rule(),
    "horizon 50 epochs": settle_rule(horizon=50),
    "horizon 25 epochs": settle_rule(horizon=25),
    "horizon 10 epochs": settle_rule(horizon=10),
    "without the largest size": settle_rule(largest=False),
    "margin: the answer cannot move": margin_rule(),
    "margin, horizon 2x epochs": margin_rule(horizon=-2),
    "zdim's rule + pruning": settle_rule(prune=True),
    "horizon 25 + pruning": settle_rule(horizon=25, prune=True),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--record", action="store_true", help="record the trainings first (about 45 minutes on 2 cores)")
    ap.add_argument("--dir", type=Path, default=ROOT / "benchmarks" / ".settle-rules")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    if args.record:
        record(QUICK, args.seeds, args.dir)
    stems = sorted(p.with_suffix("") for p in args.dir.glob("*.npz"))
    if not stems:
        print(f"no recordings in {args.dir}: run with --record first")
        raise SystemExit(2)
    recs = [Recording(s) for s in stems]
    careful = {id(r): r.final({d: CAREFUL_CAP for d in r.dims}) for r in recs}
    cost_careful = sum(sum(min(CAREFUL_CAP, n) for n in r.end.values()) for r in recs)
    print(
        f"{len(recs)} recordings; careful answers "
        + " ".join(f"{r.meta['name']}/{r.meta['seed']}:{careful[id(r)]}" for r in recs)
    )
    contestants: dict[str, Callable[[Recording], tuple[int, int, int]]] = {
        name: (lambda r, rule=rule: replay(r, rule)) for name, rule in RULES.items()
    }
    contestants["oracle: the answer's last change"] = oracle
    for name, run in contestants.items():
        cells, agree, cost = [], 0, 0
        for r in recs:
            e, answer, spent = run(r)
            ok = answer == careful[id(r)]
            agree += ok
            cost += spent
            cells.append(f"{answer}@{e}{'' if ok else '!'}")
        print(
            f"{name:<38} agrees on {agree}/{len(recs)}, member-epochs / careful {cost / cost_careful:.2f}: "
            + " ".join(cells),
            flush=True,
        )


if __name__ == "__main__":
    main()
