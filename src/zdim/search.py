"""Sweeps over latent sizes: validate the plan, prepare the run directory, execute, recommend.

``sweep`` is the orchestration only: ``zdim.plan`` validates every option against the data before
anything is written, ``zdim.runs.RunDir`` owns the run directory, an executor (``zdim.executors``)
trains and evaluates the grid's points, and ``zdim.recommend`` turns the records into an answer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

from .data import Data, load_data
from .errors import ResultFileError
from .executors import executor_for
from .files import atomic_write, dumps_json
from .intrinsic import IntrinsicDim, dims_from_estimate, estimate_intrinsic_dim
from .plan import SweepConfig, SweepPlan, default_dims, make_plan, make_run_info
from .progress import Progress
from .recommend import DEFAULT_RULE, Recommendation, recommend
from .records import TrialRecord
from .runs import RunDir
from .scheduler import open_study
from .train import TrainConfig

RESULT_FORMAT = "zdim-sweep-result"
RESULT_FORMAT_VERSION = 1
REPORT_INPUTS = 500  # held-out samples kept in the run directory for the report's pictures


@dataclass
class SweepResult:
    """The outcome of a sweep: one record per trial and the recommendation."""

    trials: list[TrialRecord]
    recommendation: Recommendation | None
    data: dict[str, Any]
    config: dict[str, Any]
    run_dir: Path | None = None

    @property
    def recommended_dim(self) -> int | None:
        return self.recommendation.dim if self.recommendation else None

    @property
    def table(self) -> pd.DataFrame:
        """A pandas DataFrame, one row per trial (list-valued metrics left out), sorted by size."""
        import pandas as pd

        df: pd.DataFrame = pd.DataFrame([t.flat() for t in self.trials])
        if len(df):
            df = df.sort_values(["dim", "seed"]).reset_index(drop=True)
        return df

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """The whole result (trials with their list-valued metrics, recommendation, data summary,
        config, run directory) as JSON text; written atomically to ``path`` too when given.

        NaN and infinite floats become ``null`` (strict JSON). ``SweepResult.from_json`` reads it back.
        """
        text = dumps_json(
            {
                "format": RESULT_FORMAT,
                "format_version": RESULT_FORMAT_VERSION,
                "trials": [t.to_dict() for t in self.trials],
                "recommendation": self.recommendation.to_dict() if self.recommendation else None,
                "data": self.data,
                "config": self.config,
                "run_dir": str(self.run_dir) if self.run_dir is not None else None,
            }
        )
        if path is not None:
            atomic_write(path, text)
        return text

    @classmethod
    def from_json(cls, text_or_path: str | os.PathLike[str]) -> SweepResult:
        """Read a result written by ``to_json``: JSON text, or the path of a file holding it.

        Raises ``ResultFileError`` when the file is missing or the text is not a zdim sweep result.
        """
        if isinstance(text_or_path, os.PathLike) or not str(text_or_path).lstrip().startswith("{"):
            try:
                text = Path(text_or_path).read_text(encoding="utf-8")
            except OSError as e:
                raise ResultFileError(
                    f"cannot read sweep result {os.fspath(text_or_path)!r} ({e}): pass "
                    "the path of a file written by SweepResult.to_json"
                ) from e
        else:
            text = str(text_or_path)
        try:
            d = json.loads(text)
            if not isinstance(d, dict) or d.get("format") != RESULT_FORMAT:
                raise ValueError(f"its 'format' is not {RESULT_FORMAT!r}")
            rec = d["recommendation"]
            return cls(
                trials=[TrialRecord.from_dict(t) for t in d["trials"]],
                recommendation=Recommendation.from_dict(rec) if rec is not None else None,
                data=dict(d["data"]),
                config=dict(d["config"]),
                run_dir=Path(d["run_dir"]) if d.get("run_dir") is not None else None,
            )
        except (ValueError, KeyError, TypeError) as e:
            raise ResultFileError(
                f"not a zdim sweep result ({e}): pass text or a file written by SweepResult.to_json"
            ) from e


def data_paths(data: Data) -> list[Path]:
    """The files or folders the data came from (protected from ``--out``/``--overwrite``)."""
    src = data.source
    return [Path(src)] if isinstance(src, str) and src and Path(src).exists() else []


def sweep(
    source: Any,
    dims: Sequence[int] | None = None,
    *,
    seeds: int = 1,
    epochs: int = 100,
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
        Seeds per size and maximum epochs (ignored when ``config`` is given).
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

    Returns
    -------
    SweepResult
        ``.recommended_dim``, ``.recommendation``, ``.table`` (pandas), ``.trials``.
    """
    data = source if isinstance(source, Data) else load_data(source, **data_kwargs)
    if config is None and not dims:
        intrinsic = intrinsic or estimate_intrinsic_dim(data)
        dims = dims_from_estimate(intrinsic.dim, data.n_features)
    if config is None:
        config = SweepConfig(
            dims=tuple(dims) if dims else default_dims(data.n_features), seeds=seeds, train=TrainConfig(epochs=epochs)
        )
    elif dims:
        config = replace(config, dims=tuple(dims))
    plan = make_plan(
        data,
        config,
        rule=rule,
        refine=refine,
        prune=prune,
        workers=workers,
        storage=storage,
        study_name=study_name,
        has_out=out is not None,
    )
    info = make_run_info(data, config, command, loader if loader is not None else data_kwargs)
    if intrinsic is not None:
        info["intrinsic_dim"] = intrinsic.to_dict()
    run: RunDir | None = None
    study = None
    if out is not None:
        RunDir.check_target(out, overwrite=overwrite, resume=resume, protect=data_paths(data))
        if resume and RunDir(out).run_json.is_file():
            RunDir(out).check_resume(info)
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
        if refine:
            config, records = _refine(executor.run, plan, config, run, bar, records, intrinsic, data.likelihood)
    finally:
        bar.close()
    if run is not None:
        run.write_results(records)
    rec = _recommend(plan, config, records, intrinsic, data.likelihood)
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


def _recommend(
    plan: SweepPlan, config: SweepConfig, records: list[TrialRecord], intrinsic: IntrinsicDim | None, likelihood: str
) -> Recommendation | None:
    if not any(r.complete for r in records):
        return None
    return recommend(
        records,
        rel_tol=config.rel_tol,
        rule=plan.rule,
        intrinsic_dim=intrinsic.dim if intrinsic else None,
        likelihood=likelihood,
    )


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
        rec = _recommend(plan, config, records, intrinsic, likelihood)
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
    if run is not None:  # run.json lists every size trained, the refined ones included
        info = run.read_info()
        info["sweep"]["dims"] = sorted(set(info["sweep"]["dims"]) | set(config.dims))
        run.write_info(info)
    return config, records


def _inputs_meta(data: Data) -> dict[str, Any]:
    return {
        "likelihood": data.likelihood,
        "is_image": data.is_image,
        "sample_shape": list(data.sample_shape),
        "feature_names": data.feature_names,
        "label_names": data.extra.get("label_names"),
    }


__all__ = ["SweepConfig", "SweepResult", "sweep", "default_dims"]
