"""Sweeps over latent sizes: resolve the plan, prepare the run directory, execute, grow the grid, answer.

``execute`` is the orchestration only, the same in every mode: ``zdim.plan.resolve`` has validated
every option against the data before anything is written, ``zdim.runs.RunDir`` owns the run directory
(``zdim.resume`` decides whether an existing one may go on), the plan's executor (``EXECUTORS``) trains
and evaluates the grid's points and returns an ``Outcome`` (records, per-sample held-out NLL, notes),
and ``zdim.answer.decide`` turns it into an answer with its evidence. The answer is
the same with or without a run directory: the per-sample values travel in memory.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .answer import BOOTSTRAP_RESAMPLES, Evidence, decide, pool
from .data import Data, load_data
from .evidence import Note, NoteKind
from .folds import fold_splits
from .grid import DimSpec
from .growth import grow
from .metrics import evaluate
from .nested import NestedExecutor
from .plan import Mode, Options, SweepPlan, resolve
from .progress import Progress
from .result import SweepResult
from .resume import check_resume, make_run_info, resumed_info
from .rules import Recommendation
from .runs import RunDir
from .scheduler import TrialExecutor, open_study
from .settle import SettleExecutor
from .train import resolve_device
from .trial import Executor, Ledger, Outcome

FOLDS_DIR = "folds"  # where the folds after the first live in a run directory
REPORT_INPUTS = 500  # held-out samples kept in the run directory for the report's pictures
EXECUTORS: dict[Mode, Callable[[Ledger], Executor]] = {
    Mode.SETTLE: SettleExecutor,
    Mode.PER_SIZE: TrialExecutor,
    Mode.NESTED: NestedExecutor,
}


def data_paths(data: Data) -> list[Path]:
    """The files or folders the data came from (protected from ``--out``/``--overwrite``)."""
    src = data.source
    return [Path(src)] if isinstance(src, str) and src and Path(src).exists() else []


def sweep(
    source: Any,
    dims: Sequence[int] | str | None = None,
    *,
    out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = False,
    command: str | None = None,
    loader: dict[str, Any] | None = None,
    options: Options | None = None,
    **given: Any,
) -> SweepResult:
    """Train and evaluate a VAE per (latent size, seed) and recommend a size: ``resolve`` the options
    against the data, then ``execute`` the plan. The orchestration layer's door, for a ``SweepConfig``
    (the package-level ``zdim.sweep`` takes plain keywords and passes them here as ``options``).

    ``source`` is a ``Data`` or anything ``zdim.load_data`` reads with its defaults. The options are an
    ``Options``, or its fields as keywords (``config``, ``mode``, ``rule``, ``refine``, ``extend``,
    ``workers``, ``storage``, ``time_budget``, ...; an unknown one is Python's ``TypeError``). Every
    option is validated before anything is written. Returns a ``SweepResult``.
    """
    data = source if isinstance(source, Data) else load_data(source)
    if options is None:
        options = Options(dims=DimSpec.of(dims) if dims else None, **given)
    elif given or dims:
        raise TypeError("sweep() takes options= or option keywords, not both")
    plan = resolve(data, options, has_out=out is not None)
    return execute(data, plan, Output(out, overwrite, resume, progress, command, loader))


@dataclass(frozen=True)
class Output:
    """Where a sweep's results go and how it shows itself: the run directory (None: nothing is written),
    what to do when it exists (``overwrite``, ``resume``), the progress display, and what ``run.json``
    records besides the plan (the command, the ``load_data`` keywords that reload the data)."""

    out: str | os.PathLike[str] | None = None
    overwrite: bool = False
    resume: bool = False
    progress: bool = False
    command: str | None = None
    loader: dict[str, Any] | None = None


def execute(data: Data, plan: SweepPlan, output: Output | None = None) -> SweepResult:
    """Run a resolved plan: check the run directory's place (and, with ``resume``, that it may go on),
    connect to a shared study, create the run directory, execute, grow the grid, answer; with
    ``plan.folds`` > 1, once per fold and the answer from the folds' pooled evidence (``execute_folds``)."""
    output = output or Output()
    if plan.folds is not None and plan.folds > 1:
        return execute_folds(data, plan, output)
    return _execute_one(data, plan, output)[0]


def execute_folds(data: Data, plan: SweepPlan, output: Output) -> SweepResult:
    """The plan once per fold (``zdim.folds.fold_splits``), so that every row is held out once. The first
    fold is an ordinary sweep in ``out`` (its grid grows and is refined as usual; its trials are the run's
    models); every other fold trains the first fold's final grid in ``out/folds/fold-J``. The answer is
    decided on the pooled evidence (``zdim.answer.pool``: every row's held-out NLL, paired across sizes)
    and written over the first fold's; a note says what the folds cost."""
    k = int(plan.folds or 1)
    parts = fold_splits(data, k, seed=plan.config.train.seed)
    seconds: list[float] = []
    outcomes: list[Outcome] = []
    results: list[SweepResult] = []
    grid = plan
    for j, part in enumerate(parts):
        if output.progress:
            print(f"zdim: fold {j + 1} of {k} ({part.test.shape[0]} test rows)", file=sys.stderr, flush=True)
        sub = output
        if j:
            where = None if output.out is None else Path(output.out) / FOLDS_DIR / f"fold-{j}"
            resume = output.resume and where is not None and where.exists()
            sub = replace(output, out=where, overwrite=False, resume=resume)
        t0 = time.perf_counter()
        result, outcome, grown = _execute_one(part, grid if j else plan, sub)
        seconds.append(time.perf_counter() - t0)
        if not j:  # every other fold trains the first fold's final grid, as it is
            grid = replace(grown, extend=False, refine=False, folds=1)
        outcomes.append(outcome)
        results.append(result)
    pooled = pool([Evidence(o.records, o.per_sample) for o in outcomes])
    answers = [r.recommended_dim for r in results]
    cost = (
        f"The evidence pools {k} folds: every one of the {sum(int(p.test.shape[0]) for p in parts)} rows was held "
        f"out once (test splits of {min(p.test.shape[0] for p in parts)} to {max(p.test.shape[0] for p in parts)} "
        f"rows), at the cost of {k} sweeps: {sum(seconds):.0f} s against {seconds[0]:.0f} s for the first fold "
        f"alone. Per fold the answer was {', '.join(str(a) for a in answers)}."
    )
    first = results[0].recommendation
    carried = [
        Note(n.kind, f"In the first fold: {n.text}")
        for n in (first.notes if first else [])
        if n.kind in (NoteKind.SETTLE, NoteKind.GRID)
    ]
    evidence = Evidence(pooled.records, pooled.per_sample, grid.intrinsic, [*carried, Note(NoteKind.TEST, cost)])
    rec = decide(evidence, grid.question(data), resamples=BOOTSTRAP_RESAMPLES, seed=plan.config.train.seed)
    run = None if output.out is None else RunDir(output.out)
    if run is not None:
        if rec is not None:
            run.write_recommendation(rec.to_dict())
        run.write_folds({"folds": k, "answers": answers, "seconds": seconds, "rows": [len(p.test) for p in parts]})
    return SweepResult(
        trials=list(pooled.records),
        recommendation=rec,
        data=data.summary() | {"folds": k},
        config=grid.config.to_dict(),
        run_dir=run.path if run else None,
    )


def _execute_one(data: Data, plan: SweepPlan, output: Output) -> tuple[SweepResult, Outcome, SweepPlan]:
    """One sweep of ``data`` (see ``execute``); with its outcome and the plan its grid grew to."""
    out, overwrite, resume = output.out, output.overwrite, output.resume
    info = make_run_info(data, plan, output.command, recordable_loader(output.loader or {}))
    run: RunDir | None = None
    study = None
    if out is not None:
        RunDir.check_target(out, overwrite=overwrite, resume=resume, protect=data_paths(data))
        if resume and RunDir(out).run_json.is_file():
            info = resumed_info(check_resume(RunDir(out), info), info)
    if plan.storage is not None:  # a shared database is connected to before any local file is made
        study = open_study(None, plan.storage, plan.study_name, prune=plan.prune, epochs=plan.config.train.epochs)
    if out is not None:
        run = RunDir.create(out, info, overwrite=overwrite, resume=resume, protect=data_paths(data))
        n = min(REPORT_INPUTS, data.test.shape[0])
        run.save_inputs(data.test[:n], data.y_test[:n] if data.y_test is not None else None, _inputs_meta(data))
    if study is None:
        study = open_study(run, None, plan.study_name, prune=plan.prune, epochs=plan.config.train.epochs)
    bar = Progress(output.progress, total=len(plan.config.grid()), desc=f"zdim sweep ({plan.mode.value})")
    ledger = Ledger(data, run, study, bar, resumed=resume and run is not None)
    executor = EXECUTORS[plan.mode](ledger)
    try:
        outcome = executor.run(plan)
        plan, outcome, grown = grow(executor, plan, outcome, ledger)
    finally:
        bar.close()
    if run is not None:
        run.write_results(outcome.records)
    rec = answer(plan, outcome, ledger, [*outcome.notes, *grown])
    if run is not None:
        if rec is not None:
            run.write_recommendation(rec.to_dict())
        run.add_dims(plan.config.dims)  # run.json lists every size trained, the added ones included
        run.finish()
    result = SweepResult(
        trials=outcome.records,
        recommendation=rec,
        data=data.summary(),
        config=plan.config.to_dict(),
        run_dir=run.path if run else None,
    )
    return result, outcome, plan


def answer(plan: SweepPlan, outcome: Outcome, ledger: Ledger, notes: list[Note]) -> Recommendation | None:
    """The recommendation of an outcome with its evidence (``zdim.answer.decide``): the rule, what the
    executor and the grid's growth said, the whole test split (``--eval-samples``), the intrinsic-dimension
    check and the bootstrap (how sure)."""
    data = ledger.data
    question = plan.question(data)
    rec = decide(Evidence(outcome.records, outcome.per_sample, None, notes), question)
    if rec is None:
        return None
    full = _on_full_test(rec, outcome, ledger, plan)  # a no-op without --eval-samples
    extra = [n for n in full.notes if n not in rec.notes]
    evidence = Evidence(outcome.records, outcome.per_sample, plan.intrinsic, [*notes, *extra])
    final = decide(evidence, question, resamples=BOOTSTRAP_RESAMPLES, seed=plan.config.train.seed)
    assert final is not None
    return replace(final, full_test=full.full_test)


def _on_full_test(rec: Recommendation, outcome: Outcome, ledger: Ledger, plan: SweepPlan) -> Recommendation:
    """With ``--eval-samples``, the recommended size's trials evaluated on the whole test split too: kept
    in ``rec.full_test`` and said in a note (the table and the rule use the subset)."""
    data, config = ledger.data, plan.config
    n = int(data.test.shape[0])
    if config.eval_samples is None or config.eval_samples >= n:
        return rec
    device = resolve_device(config.train.device)
    vals = {}
    for r in outcome.records:
        if r.complete and r.dim == rec.dim:
            model = ledger.model(r.dim, r.seed).to(device)
            vals[r.seed] = float(evaluate(model, data.test, k=config.k, seed=r.seed)["nll"])
    if not vals:
        return rec
    mean = sum(vals.values()) / len(vals)
    full = {"n": n, "nll_mean": mean, "nll_per_seed": {str(s): v for s, v in sorted(vals.items())}}
    sentence = (
        f"On the whole test split ({n} samples) size {rec.dim} has a held-out NLL of {mean:.2f} nats; the "
        f"table and the rule use {config.eval_samples} of them (--eval-samples)."
    )
    return replace(rec, full_test=full).with_notes(Note(NoteKind.TEST, sentence))


def recordable_loader(loader: dict[str, Any]) -> dict[str, Any]:
    """The ``load_data`` keywords that ``run.json`` can record to reload the data (``zdim tune``): JSON
    values and paths (as text); an array or DataFrame given as ``y``/``test`` is left out (reloading
    then fails on the fingerprint and asks for the data)."""
    out: dict[str, Any] = {}
    for key, value in loader.items():
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if value is None or isinstance(value, (str, int, float, bool)):
            out[key] = value
    return out


def _inputs_meta(data: Data) -> dict[str, Any]:
    return {
        "likelihood": data.likelihood,
        "is_image": data.is_image,
        "sample_shape": list(data.sample_shape),
        "feature_names": data.feature_names,
        "label_names": data.extra.get("label_names"),
    }


__all__ = ["sweep", "execute", "Output", "answer", "EXECUTORS", "data_paths", "REPORT_INPUTS"]
