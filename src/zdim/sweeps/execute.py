"""Sweeps over latent sizes: resolve the plan, prepare the run directory, execute, grow the grid, answer.

``execute`` is the orchestration only, the same in every mode: ``zdim.sweeps.planning.plan.resolve`` has validated
every option against the data before anything is written, ``zdim.sweeps.records.runs.RunDir`` owns the run directory
(``zdim.sweeps.records.resume`` decides whether an existing one may go on), the plan's executor (``EXECUTORS``) trains
and evaluates the grid's points and returns an ``Outcome`` (records, per-sample held-out NLL, notes),
and ``zdim.answer.decide.decide`` turns it into an answer with its evidence. The answer is
the same with or without a run directory: the per-sample values travel in memory.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..answer.decide import BOOTSTRAP_RESAMPLES, Evidence, decide
from ..answer.recommendation import Recommendation
from ..data.dataset import Data, load_data
from ..data.folds import fold_splits
from ..evaluation.metrics import evaluate
from ..evidence import Note, NoteKind
from ..messages import python_message
from ..options import route
from ..progress import Progress
from ..training.config import resolve_device
from . import backends
from .executors.folded import FoldedExecutor
from .executors.growth import grow
from .executors.nested import NestedExecutor
from .executors.per_size import TrialExecutor
from .executors.settle import SettleExecutor
from .planning.plan import Mode, Options, SweepPlan, options_from, resolve
from .records.ledger import Executor, Ledger, Outcome
from .records.result import SweepResult
from .records.resume import check_resume, make_run_info, own_architecture, resumed_info
from .records.runs import RunDir
from .records.studies import open_study

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

    ``source`` is a ``Data`` or anything ``zdim.load_data`` reads. The options are an ``Options``, or
    keywords: the option table's (``zdim.options``: ``mode``, ``rule``, ``workers``, ``batch_size``,
    ``max_samples``, ...) and ``Options``' own fields (``config``, ``train``); an unknown one is Python's
    ``TypeError``. Every option is validated before anything is written. Returns a ``SweepResult``.
    """
    if options is not None and (given or dims):
        raise TypeError("sweep() takes options= or option keywords, not both")
    routed = route({"dims": dims, **given})
    if other := [*routed["api"], *routed["cli"]]:  # zdim.sweep's report=, the command's --mlflow
        raise TypeError(f"sweep() got an unexpected keyword argument {other[0]!r}")
    loader = loader if loader is not None else routed.loader() or None
    data = source if isinstance(source, Data) else load_data(source, **routed.loader())
    if options is None:
        options = options_from(routed)
    plan = resolve(data, options, has_out=out is not None, resume=resume)
    for line in plan.said:  # workers capped, or more of them than cores: the caller hears it
        warnings.warn(python_message(line), UserWarning, stacklevel=3)
    return execute(data, plan, Output(out, overwrite, resume, progress, command, loader))


@dataclass(frozen=True)
class Output:
    """Where a sweep's results go and how it shows itself: the run directory (None: nothing is written),
    what to do when it exists (``overwrite``, ``resume``), the progress display, what ``run.json``
    records besides the plan (the command, the ``load_data`` keywords that reload the data), what to call
    once every check has passed, before anything is written (``ready``: the command's header), and ``say``,
    which hears what reading the data did and where the plan departs from what was asked, once every
    check has passed and before anything trains."""

    out: str | os.PathLike[str] | None = None
    overwrite: bool = False
    resume: bool = False
    progress: bool = False
    command: str | None = None
    loader: dict[str, Any] | None = None
    ready: Callable[[], None] | None = None
    say: Callable[[str], None] | None = None  # the command's lines before training (notes, workers capped)


def execute(data: Data, plan: SweepPlan, output: Output | None = None) -> SweepResult:
    """Run a resolved plan: check the backend and the run directory's place (and, with ``resume``, that it
    may go on), join a cluster and connect to a shared study, create the run directory, execute, grow
    the grid, answer. The run directory is the record of every trial; only per-size mode opens an
    Optuna study, where it is its engine (``zdim.sweeps.executors.per_size.uses_study``).

    With ``plan.folds`` = k > 1 (``zdim.data.folds``) the grid is trained once per fold, behind the same seam
    (``zdim.sweeps.executors.folded.FoldedExecutor``): the first fold is the run directory (its trials are the run's
    models), fold J lives in ``out/folds/fold-J``, and the growth of the grid and the answer read the
    folds' pooled evidence: every row held out once."""
    output = output or Output()
    out, overwrite, resume = output.out, output.overwrite, output.resume
    k = max(1, plan.folds or 1)
    parts = fold_splits(data, k, seed=plan.config.train.seed) if k > 1 else [data]
    loader = recordable_loader(output.loader or {})
    info = make_run_info(parts[0], plan, output.command, loader)
    run: RunDir | None = None
    if out is not None:
        RunDir.check_target(out, overwrite=overwrite, resume=resume, protect=data_paths(data))
        if resume and RunDir(out).run_json.is_file():
            plan = own_architecture(RunDir(out), plan)  # the run's own widths and linear path go on
            info = make_run_info(parts[0], plan, output.command, loader)
            info = resumed_info(check_resume(RunDir(out), info), info)
    backends.join(plan.backend, plan.address)  # checked (its one check), its cluster joined: before any file
    if plan.storage is not None:  # a shared database is connected to before any local file is made
        open_study(None, plan.storage, plan.study_name)  # (per-size mode's engine opens it again to run)
    if output.ready is not None:
        output.ready()
    if out is not None:
        run = _create(out, info, parts[0], overwrite=overwrite, resume=resume, protect=data_paths(data))
    total = len(plan.config.grid()) * k
    bar = Progress(output.progress, total=total, desc=f"zdim sweep ({plan.mode.value})", folds=k)
    ledgers = [Ledger(parts[0], run, bar, resumed=resume and run is not None)]
    for j in range(1, k):
        ledgers.append(_fold_ledger(parts[j], j, k, plan, output, loader, bar, data_paths(data)))
    if output.say is not None:  # every check has passed: what the user should hear before training
        for line in [*(f"{data.name}: {n}" for n in data.extra.get("notes", ())), *plan.said]:
            output.say(line)
    executors = [EXECUTORS[plan.mode](ledger) for ledger in ledgers]
    folded = FoldedExecutor(executors, ledgers, bar) if k > 1 else None
    before = run.read_folds() if folded is not None and run is not None and resume else None
    if folded is not None and before is not None and len(before.get("seconds") or []) == k:
        folded.seconds = [float(v) for v in before["seconds"]]  # a resume adds its training time to the run's
    executor: Executor = folded if folded is not None else executors[0]
    whole = Ledger(data, None, bar) if folded is not None else ledgers[0]
    try:
        dims, n = plan.config.dims, len(plan.config.grid())
        seeds = f"{n // len(dims)} seed(s)" if n % len(dims) == 0 else "seeds as the answer needs them"
        bar.phase(f"the grid given, sizes {', '.join(map(str, dims))} x {seeds}", n)
        outcome = executor.run(plan)
        plan, outcome, grown = grow(executor, plan, outcome, whole)
    finally:
        bar.close()
    notes = [*outcome.notes, *grown, *_settled_before(run, resume, outcome.notes)]
    alone = _fold_answers(plan, ledgers) if folded is not None else []
    if folded is not None:
        notes.append(folded.cost(alone))
    own = [ledger.outcome(plan.config).records for ledger in ledgers] if folded else [outcome.records]
    for ledger, records in zip(ledgers, own, strict=True):  # every fold's run directory: its own trials
        if ledger.run is not None and ledger.run is not run:
            ledger.run.write_results(records)
    if run is not None:  # the run's rows: pooled over the folds (the numbers printed), each fold's apart
        run.write_results(outcome.records)
        if folded is not None:
            run.write_fold_results(own)
    rec = answer(plan, outcome, whole, notes)
    if folded is not None and run is not None:
        run.write_folds(folded.record(alone))
    for ledger in ledgers:
        if ledger.run is not None:
            if ledger.run is run and rec is not None:
                run.write_recommendation(rec.to_dict())
            ledger.run.add_dims(plan.config.dims, plan.config.seeded)  # every size trained, the added ones too
            ledger.run.finish()
    return SweepResult(
        trials=outcome.records,
        recommendation=rec,
        data=data.summary() | ({"folds": k} if k > 1 else {}),
        config=plan.config.to_dict(),
        run_dir=run.path if run else None,
    )


def _settled_before(run: RunDir | None, resume: bool, said: list[Note]) -> list[Note]:
    """A resume that trained nothing says nothing of how settle mode ended: the run's earlier answer did,
    so its notes of it are kept (``recommendation.json`` keeps every note)."""
    if not resume or run is None or any(n.kind is NoteKind.SETTLE for n in said):
        return []
    saved = run.read_recommendation()
    notes = saved.get("notes") if saved is not None else None
    return [Note.from_dict(n) for n in notes or [] if isinstance(n, dict) and n.get("kind") == NoteKind.SETTLE.value]


def _create(out: str | os.PathLike[str], info: dict[str, Any], data: Data, **kw: Any) -> RunDir:
    """The run directory, created (or gone on with), with the held-out samples the report draws."""
    run = RunDir.create(out, info, **kw)
    n = min(REPORT_INPUTS, data.test.shape[0])
    run.save_inputs(data.test[:n], data.y_test[:n] if data.y_test is not None else None, _inputs_meta(data))
    return run


def _fold_ledger(
    part: Data,
    j: int,
    k: int,
    plan: SweepPlan,
    output: Output,
    loader: dict[str, Any],
    bar: Progress,
    protect: list[Path],
) -> Ledger:
    """Fold ``j``'s ledger: its run directory ``out/folds/fold-J`` (gone on with when resuming and there)
    and the sweep's progress display."""
    run = None
    resumed = False
    if output.out is not None:
        where = RunDir(output.out).fold_path(j)
        resumed = output.resume and (where / "run.json").is_file()
        info = make_run_info(part, plan, output.command, loader) | {"fold": [j, k]}
        RunDir.check_target(where, overwrite=False, resume=resumed, protect=protect)
        if resumed:
            info = resumed_info(check_resume(RunDir(where), info), info)
        where.parent.mkdir(exist_ok=True)
        run = _create(where, info, part, overwrite=False, resume=resumed, protect=protect)
    return Ledger(part, run, bar, resumed=resumed)


def _fold_answers(plan: SweepPlan, ledgers: list[Ledger]) -> list[int | None]:
    """What each fold alone answers (its own test split, the same question), for the record."""
    out = []
    for ledger in ledgers:
        o = ledger.outcome(plan.config)
        rec = decide(Evidence(o.records, o.per_sample), plan.question(ledger.data))
        out.append(rec.dim if rec is not None else None)
    return out


def answer(plan: SweepPlan, outcome: Outcome, ledger: Ledger, notes: list[Note]) -> Recommendation | None:
    """The recommendation of an outcome with its evidence, decided once (``zdim.answer.decide.decide``): the
    rule, what the executor and the grid's growth said, the intrinsic-dimension check and the bootstrap (how
    sure); then, with ``--eval-samples``, the answer's size measured on the whole test split beside it."""
    evidence = Evidence(outcome.records, outcome.per_sample, plan.intrinsic, notes)
    rec = decide(evidence, plan.question(ledger.data), resamples=BOOTSTRAP_RESAMPLES, seed=plan.config.train.seed)
    if rec is None or (plan.folds or 1) > 1:
        return rec
    return _on_full_test(rec, outcome, ledger, plan)  # with --eval-samples: the answer's size on every test row


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
    values, paths (as text) and lists of names; an array or DataFrame given as ``y``/``test`` is left out (reloading
    then fails on the fingerprint and asks for the data)."""
    out: dict[str, Any] = {}
    for key, value in loader.items():
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            value = list(value)  # column names (keep_columns)
        if value is None or isinstance(value, (str, int, float, bool, list)):
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
