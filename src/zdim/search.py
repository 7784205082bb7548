"""Sweeps over latent sizes: validate the plan, prepare the run directory, execute, recommend.

``sweep`` is the orchestration only: ``zdim.plan`` validates every option against the data before
anything is written, ``zdim.runs.RunDir`` owns the run directory, an executor (``zdim.executors``)
trains and evaluates the grid's points, and ``zdim.recommend`` turns the records into an answer.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

from .data import Data, load_data
from .executors import executor_for
from .intrinsic import IntrinsicDim, dims_from_estimate, estimate_intrinsic_dim
from .metrics import evaluate
from .plan import (
    SweepConfig,
    SweepPlan,
    check_same_model,
    default_dims,
    default_epochs,
    default_seeds,
    make_plan,
    make_run_info,
    resolve_mode,
)
from .progress import Progress
from .recommend import DEFAULT_RULE, Recommendation, recommend
from .records import TrialRecord
from .result import SweepResult
from .runs import RunDir
from .scheduler import open_study
from .train import TrainConfig, resolve_device
from .uncertainty import bootstrap, with_uncertainty

REPORT_INPUTS = 500  # held-out samples kept in the run directory for the report's pictures


def data_paths(data: Data) -> list[Path]:
    """The files or folders the data came from (protected from ``--out``/``--overwrite``)."""
    src = data.source
    return [Path(src)] if isinstance(src, str) and src and Path(src).exists() else []


def sweep(
    source: Any,
    dims: Sequence[int] | None = None,
    *,
    seeds: int | None = None,
    epochs: int | None = None,
    out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    resume: bool = False,
    config: SweepConfig | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    progress: bool = False,
    command: str | None = None,
    workers: int = 1,
    prune: bool = False,
    loader: dict[str, Any] | None = None,
    rule: str = DEFAULT_RULE,
    refine: bool = False,
    intrinsic: IntrinsicDim | None = None,
    extend: bool = True,
    mode: str | None = None,
    time_budget: float | None = None,
    **data_kwargs: Any,
) -> SweepResult:
    """Train and evaluate one VAE per (latent size, seed) and recommend a size.

    Every option and the data are validated before anything is written; with ``overwrite`` an existing
    run directory (only one zdim made) is replaced once the new run is complete.

    Parameters
    ----------
    source : path, array, tensor, ``Data`` or embedded name (``"digits"``)
        The data (see ``zdim.load_data``; extra keyword arguments go to it).
    dims : sequence of int, optional
        Latent sizes; default from the intrinsic dimension of the data (see ``intrinsic``).
    seeds, epochs : int
        Seeds per size (default 3 in settle mode, else 1) and maximum epochs (default 500 in settle mode,
        where it is a cap, else 100); both ignored when ``config`` is given.
    out : path, optional
        Run directory. Each trial is persisted as it finishes; without ``out`` nothing is written.
    overwrite, resume : bool
        What to do when ``out`` exists: replace it (a zdim run directory only), or finish only the
        missing trials.
    config : SweepConfig, optional
        Full control over the grid, architecture and training.
    storage, study_name : str, optional
        Optuna storage URL (e.g. ``postgresql://host/db``) and study name, to share a sweep between
        workers; default a journal file in ``out`` (in memory without ``out``).
    progress : bool
        Show progress on stderr: an overall bar with ETA, each training's epochs, the evaluation
        phase, and one line per finished trial.
    workers : int
        Trials trained at once, each in its own process with ``cores // workers`` threads.
    prune : bool
        Stop a seed early when its validation -ELBO is above the median of the other seeds of the
        *same* size at that epoch (sizes are never compared with each other).
    rule : str
        Recommendation rule (see ``zdim.recommend.RULES`` and docs/recommendation.md).
    refine : bool
        After the grid, bisect between the recommended size and the next smaller size tried, down to
        an exact integer (extra trials in the same study).
    intrinsic : IntrinsicDim, optional
        An intrinsic-dimension estimate already made; without ``dims`` or ``config`` one is made here
        and the grid is built from it (powers of two up to a few times the estimate).
    mode : {"settle", "per-size", "nested"}, optional
        ``settle``: every (size, seed) trains together, epoch by epoch, and training stops once the
        answer has settled (``zdim.settle``); ``per-size``: one Optuna trial per (size, seed), each
        trained to its own end; ``nested``: as ``config.nested``. Default (``zdim.plan.resolve_mode``):
        settle, or per-size where ``workers > 1``, ``storage`` or ``prune`` need Optuna trials, or nested
        for ``config.nested``.
    time_budget : float, optional
        Settle mode only: seconds of training after which every member stops (the answer then says
        whether its members had converged).
    extend : bool
        When the recommendation is the largest size tried and every unit of it is active, add larger
        sizes (doubling, up to the feature count) and go on; the rationale says so. Not with ``nested``.

    Returns
    -------
    SweepResult
        ``.recommended_dim``, ``.recommendation``, ``.table`` (pandas), ``.trials``.
    """
    data = source if isinstance(source, Data) else load_data(source, **data_kwargs)
    mode = resolve_mode(
        mode,
        workers=workers,
        storage=storage,
        prune=prune,
        nested=config is not None and config.nested,
        time_budget=time_budget,
    )
    if config is None and not dims:
        intrinsic = intrinsic or estimate_intrinsic_dim(data)
        dims = dims_from_estimate(intrinsic.dim, data.n_features)
    if config is None:
        config = SweepConfig(
            dims=tuple(dims) if dims else default_dims(data.n_features),
            seeds=default_seeds(mode) if seeds is None else seeds,
            train=TrainConfig(epochs=default_epochs(mode) if epochs is None else epochs),
            nested=mode == "nested",
        )
    elif dims:
        config = replace(config, dims=tuple(dims))
    if mode == "nested" and not config.nested:
        config = replace(config, nested=True)
    plan = make_plan(
        data,
        config,
        rule=rule,
        refine=refine,
        extend=extend,
        settle=mode == "settle",
        time_budget=time_budget,
        prune=prune,
        workers=workers,
        storage=storage,
        study_name=study_name,
        has_out=out is not None,
    )
    info = make_run_info(data, config, command, recordable_loader(loader if loader is not None else data_kwargs))
    if intrinsic is not None:
        info["intrinsic_dim"] = intrinsic.to_dict()
    run: RunDir | None = None
    study = None
    if out is not None:
        RunDir.check_target(out, overwrite=overwrite, resume=resume, protect=data_paths(data))
        if resume and RunDir(out).run_json.is_file():
            check_same_model(RunDir(out).check_resume(info), info, out)
    if storage is not None:  # a shared database is checked (connected to) before any local file is made
        study = open_study(None, storage, plan.study_name, prune=prune, epochs=config.train.epochs)
    if out is not None:
        run = RunDir.create(out, info, overwrite=overwrite, resume=resume, protect=data_paths(data))
        n = min(REPORT_INPUTS, data.test.shape[0])
        run.save_inputs(data.test[:n], data.y_test[:n] if data.y_test is not None else None, _inputs_meta(data))
    if study is None:
        study = open_study(run, None, plan.study_name, prune=prune, epochs=config.train.epochs)
    executor = executor_for(plan, data, run, study)
    bar = Progress(progress, total=len(config.grid()), desc=f"zdim sweep ({workers} worker(s), {executor.name})")
    try:
        records = executor.run(config, bar)
        added: list[int] = []
        if plan.extend:
            config, records, added = _extend(executor.run, plan, config, run, bar, records, intrinsic, data)
        if refine:
            config, records = _refine(executor.run, plan, config, run, bar, records, intrinsic, data.likelihood)
    finally:
        bar.close()
    if run is not None:
        run.write_results(records)
    per_sample = _per_sample(run, records)
    rec = _recommend(plan, config, records, intrinsic, data.likelihood, per_sample)
    if rec is not None and run is not None:
        rec = _on_full_test(rec, records, run, data, config)  # a no-op without --eval-samples
    said = executor.summary()
    if rec is not None and said:
        rec = replace(rec, rationale=f"{rec.rationale} {said}")
    if rec is not None and added:
        rec = replace(
            rec,
            rationale=f"{rec.rationale} The grid was extended with size(s) {', '.join(map(str, added))}: the "
            "largest size tried had been chosen with every unit active.",
        )
    if rec is not None and run is not None:  # how sure: resample the held-out samples and seeds
        rec = with_uncertainty(
            rec,
            bootstrap(
                records,
                per_sample,
                seed=config.train.seed,
                rel_tol=config.rel_tol,
                rule=plan.rule,
                intrinsic_dim=intrinsic.dim if intrinsic else None,
                likelihood=data.likelihood,
            ),
        )
    if run is not None:
        if rec is not None:
            run.write_recommendation(rec.to_dict())
        run.finish()
    return SweepResult(
        trials=records,
        recommendation=rec,
        data=data.summary(),
        config=config.to_dict(),
        run_dir=run.path if run else None,
    )


def _on_full_test(
    rec: Recommendation, records: list[TrialRecord], run: RunDir, data: Data, config: SweepConfig
) -> Recommendation:
    """With ``--eval-samples``, the recommended size's trials evaluated on the whole test split too: kept
    in ``rec.full_test`` and said in the rationale (the table and the rule use the subset)."""
    n = int(data.test.shape[0])
    if config.eval_samples is None or config.eval_samples >= n:
        return rec
    device = resolve_device(config.train.device)
    vals = {}
    for r in records:
        if r.complete and r.dim == rec.dim:
            model = run.load_trial_model(r.dim, r.seed).to(device)
            vals[r.seed] = float(evaluate(model, data.test, k=config.k, seed=r.seed)["nll"])
    if not vals:
        return rec
    mean = sum(vals.values()) / len(vals)
    full = {"n": n, "nll_mean": mean, "nll_per_seed": {str(s): v for s, v in sorted(vals.items())}}
    sentence = (
        f"On the whole test split ({n} samples) size {rec.dim} has a held-out NLL of {mean:.2f} nats; the "
        f"table and the rule use {config.eval_samples} of them (--eval-samples)."
    )
    return replace(rec, full_test=full, rationale=f"{rec.rationale} {sentence}")


def _per_sample(run: RunDir | None, records: list[TrialRecord]) -> dict[tuple[int, int], Any]:
    """The per-sample held-out NLL of each complete trial, where the run directory keeps it."""
    if run is None:
        return {}
    return {r.key: v for r in records if r.complete and (v := run.read_per_sample(r.dim, r.seed)) is not None}


def _recommend(
    plan: SweepPlan,
    config: SweepConfig,
    records: list[TrialRecord],
    intrinsic: IntrinsicDim | None,
    likelihood: str,
    per_sample: dict[tuple[int, int], Any] | None = None,
) -> Recommendation | None:
    if not any(r.complete for r in records):
        return None
    return recommend(
        records,
        rel_tol=config.rel_tol,
        rule=plan.rule,
        intrinsic_dim=intrinsic.dim if intrinsic else None,
        likelihood=likelihood,
        per_sample=per_sample or None,
    )


def _extend(
    execute: Any,
    plan: SweepPlan,
    config: SweepConfig,
    run: RunDir | None,
    bar: Progress,
    records: list[TrialRecord],
    intrinsic: IntrinsicDim | None,
    data: Data,
) -> tuple[SweepConfig, list[TrialRecord], list[int]]:
    """Grow the grid at its edge: while the answer is the largest size tried and every unit of each of
    its models is active (the data may use more), train twice that size (at most the feature count)."""
    added: list[int] = []
    while True:
        rec = _recommend(plan, config, records, intrinsic, data.likelihood, _per_sample(run, records))
        top = max(config.dims)
        at_top = [r for r in records if r.complete and r.dim == top]
        if rec is None or rec.dim != top or not at_top or top >= data.n_features:
            break
        if any((r.active_units or 0) < top for r in at_top):
            break  # a unit collapsed: the largest model measures what the data need
        new = min(2 * top, data.n_features)
        added.append(new)
        config = replace(config, dims=(*config.dims, new))
        bar.note(f"extend: size {top} was chosen with all {top} units active; trying size {new}")
        records = execute(config, bar)
    if run is not None and added:
        run.add_dims(config.dims)
    return config, records, added


def _refine(
    execute: Any,
    plan: SweepPlan,
    config: SweepConfig,
    run: RunDir | None,
    bar: Progress,
    records: list[TrialRecord],
    intrinsic: IntrinsicDim | None,
    likelihood: str,
) -> tuple[SweepConfig, list[TrialRecord]]:
    """Bisect between the recommended size and the next smaller size tried until they are adjacent.

    Whatever the rule, the smaller neighbour was judged not good enough and the recommended size good
    enough, so the exact answer lies between them: each step trains the midpoint (all seeds) and
    recommends again. Returns the widened config and all records.
    """
    for _ in range(16):  # halves the gap each time: 16 steps cover any latent size
        rec = _recommend(plan, config, records, intrinsic, likelihood, _per_sample(run, records))
        if rec is None:
            break
        tried = {r.dim for r in records if r.complete}
        lower = max((d for d in tried if d < rec.dim), default=None)
        if lower is None or rec.dim - lower <= 1:
            break
        mid = (lower + rec.dim) // 2
        config = replace(config, dims=(*tuple(config.dims), mid))
        bar.note(f"refine: trying size {mid} between {lower} and {rec.dim}")
        records = execute(config, bar)
    if run is not None:
        run.add_dims(config.dims)  # run.json lists every size trained, the refined ones included
    return config, records


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


__all__ = ["SweepConfig", "SweepResult", "sweep", "default_dims"]
