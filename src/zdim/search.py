"""Sweeps over latent sizes, run as an Optuna study.

Every (latent size, seed) point of the grid is enqueued as a fixed-parameter trial of one Optuna study;
workers take waiting trials with ``study.ask()`` (storage-level, so several processes or machines on
one study each take trials nobody has taken), train and evaluate a VAE, persist the trial folder at
once, and ``tell`` the study the held-out NLL. The run directory is the record of what finished: a
trial whose folder holds a complete, loadable result is never retrained.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import torch

if TYPE_CHECKING:
    import pandas as pd

from . import __version__
from .data import Data, load_data
from .errors import ConfigError, RunDirError, TrainingDiverged
from .generation import generation_metrics
from .intrinsic import IntrinsicDim, dims_from_estimate, estimate_intrinsic_dim
from .errors import ResultFileError
from .metrics import evaluate
from .models import VAE, VAEConfig, count_parameters
from .nested import nested_fit
from .recommend import DEFAULT_REL_TOL, DEFAULT_RULE, Recommendation, recommend
from .runs import (
    RECOMMENDATION_JSON,
    RESULTS_CSV,
    RUN_JSON,
    read_json,
    read_trial,
    save_history,
    save_model,
    save_inputs,
    trial_done,
    trial_name,
    write_csv,
    write_json,
)
from .runs import atomic_write, dumps_json
from .train import TrainConfig, fit
from . import studies

STUDY_FILE = "study.journal"
DEFAULT_STUDY = "zdim-sweep"
LIST_FIELDS = ("kl_per_unit", "unit_variance")
State = optuna.trial.TrialState
RESULT_FORMAT = "zdim-sweep-result"
RESULT_FORMAT_VERSION = 1


@dataclass(frozen=True)
class SweepConfig:
    """What a sweep trains: the grid, the architecture template and the training recipe.

    Attributes
    ----------
    dims : tuple of int
        Latent sizes to try.
    seeds : int
        Independent trainings per size (seeds ``seed, seed+1, ...``).
    hidden, arch : see ``VAEConfig``.
    train : TrainConfig
        Training recipe shared by every trial (its ``seed`` is the base seed).
    k : int
        Importance samples for the held-out NLL bound.
    rel_tol : float
        Relative NLL tolerance of the recommendation rule.
    nested : bool
        Train one nested VAE per seed with the largest size and cut every size's model out of it
        (see ``zdim.nested``), instead of one VAE per (size, seed).
    """

    dims: tuple[int, ...]
    seeds: int = 1
    hidden: tuple[int, ...] = (512, 256)
    arch: str = "mlp"
    train: TrainConfig = field(default_factory=TrainConfig)
    k: int = 100
    rel_tol: float = DEFAULT_REL_TOL
    nested: bool = False

    def __post_init__(self) -> None:
        if not self.dims:
            raise ConfigError("no latent sizes given: pass e.g. --dims 2,4,8 or --dims 1-16")
        bad = [d for d in self.dims if int(d) != d or d < 1]
        if bad:
            raise ConfigError(f"latent size {bad[0]!r} is not a positive integer: fix --dims")
        object.__setattr__(self, "dims", tuple(sorted(set(int(d) for d in self.dims))))
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if self.seeds < 1:
            raise ConfigError(f"seeds must be >= 1, got {self.seeds}: fix --seeds")
        if self.k < 1:
            raise ConfigError(f"k (importance samples) must be >= 1, got {self.k}: fix --k")

    def grid(self) -> list[tuple[int, int]]:
        base = self.train.seed
        return [(d, base + s) for d in self.dims for s in range(self.seeds)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dims": list(self.dims),
            "seeds": self.seeds,
            "hidden": list(self.hidden),
            "arch": self.arch,
            "train": self.train.to_dict(),
            "k": self.k,
            "rel_tol": self.rel_tol,
            "nested": self.nested,
        }


@dataclass
class SweepResult:
    """The outcome of a sweep: one record per trial and the recommendation."""

    trials: list[dict[str, Any]]
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

        rows = [flat_record(t) for t in self.trials]
        df: pd.DataFrame = pd.DataFrame(rows)
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
                "trials": self.trials,
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
                trials=list(d["trials"]),
                recommendation=Recommendation.from_dict(rec) if rec is not None else None,
                data=dict(d["data"]),
                config=dict(d["config"]),
                run_dir=Path(d["run_dir"]) if d.get("run_dir") is not None else None,
            )
        except (ValueError, KeyError, TypeError) as e:
            raise ResultFileError(
                f"not a zdim sweep result ({e}): pass text or a file written by SweepResult.to_json"
            ) from e


def flat_record(t: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in t.items() if k not in LIST_FIELDS and not isinstance(v, (list, dict))}


def check_dims(dims: Sequence[int], data: Data) -> None:
    too_big = [d for d in dims if d > data.n_features]
    if too_big:
        raise ConfigError(
            f"latent size {too_big[0]} exceeds the {data.n_features} features of {data.name!r}: "
            f"choose sizes <= {data.n_features} in --dims"
        )


def default_dims(n_features: int, cap: int = 64) -> tuple[int, ...]:
    """Powers of two up to ``min(n_features, cap)``, plus that bound itself."""
    top = min(n_features, cap)
    dims = [2**i for i in range(0, int(math.log2(top)) + 1)]
    return tuple(sorted(set(dims + [top])))


def model_config(data: Data, dim: int, cfg: SweepConfig) -> VAEConfig:
    return VAEConfig(
        input_dim=data.n_features,
        latent_dim=dim,
        likelihood=data.likelihood,
        hidden=cfg.hidden,
        arch=cfg.arch,
        image_shape=data.sample_shape if data.is_image else None,
    )


def run_trial(
    data: Data, dim: int, seed: int, cfg: SweepConfig, folder: Path | None, progress: bool = False, callback: Any = None
) -> dict[str, Any]:
    """Train and evaluate one VAE; persist it into ``folder``; return its record.

    A diverged or failing trial returns a record with ``status="failed"`` and the reason; a trial
    stopped by ``callback(epoch, record)`` raising ``optuna.TrialPruned`` has ``status="pruned"``.
    """
    rec: dict[str, Any] = {"trial": trial_name(dim, seed), "dim": dim, "seed": seed}
    tcfg = replace(cfg.train, seed=seed)
    if cfg.nested:  # configs are checked here, outside the try: a bad architecture stops the sweep
        big_cfg = model_config(data, max(cfg.dims), cfg)
    else:
        torch.manual_seed(seed)
        model = VAE(model_config(data, dim, cfg))
    bar = None

    def open_bar(name: str) -> None:  # when a training starts (a nested model may need none)
        nonlocal bar
        bar = _epoch_bar(tcfg.epochs, name) if progress else None

    def on_epoch(epoch: int, r: dict[str, Any]) -> None:
        if bar is not None:
            bar.update(1)
            bar.set_postfix(val=f"{r['val_neg_elbo']:.2f}")
        if callback is not None:
            callback(epoch, r)

    try:
        if cfg.nested:
            big, fitted = nested_fit(
                data,
                big_cfg,
                cfg.dims,
                tcfg,
                folder.parents[1] if folder is not None else None,
                callback=on_epoch,
                on_train=lambda: open_bar(f"nested sizes {list(cfg.dims)}, seed {seed}"),
            )
            model = big.prefix_model(dim)
            rec["nested"] = True
        else:
            open_bar(rec["trial"])
            fitted = fit(model, data.train, data.val, tcfg, callback=on_epoch)
        t0 = time.perf_counter()
        ev = evaluate(model, data.test, k=cfg.k, seed=seed)
        rec.update(
            status="complete",
            **ev,
            best_epoch=fitted.best_epoch,
            epochs_run=len(fitted.history),
            stopped_early=fitted.stopped_early,
            best_val_neg_elbo=fitted.best_val,
            train_seconds=fitted.seconds,
            eval_seconds=time.perf_counter() - t0,
            n_params=count_parameters(model),
        )
        try:  # prior samples vs held-out data; a metric that cannot be computed never fails the trial
            rec.update(generation_metrics(model, data, seed=seed))
        except Exception as e:  # noqa: BLE001
            rec["gen_error"] = f"{type(e).__name__}: {e}"
        history = fitted.history
    except TrainingDiverged as e:
        rec.update(status="failed", reason=str(e))
        history = []
    except optuna.TrialPruned as e:
        rec.update(status="pruned", reason=str(e) or "pruned")
        history = []
    except Exception as e:  # any error in one trial is recorded; the sweep goes on
        rec.update(status="failed", reason=f"{type(e).__name__}: {e}")
        history = []
    finally:
        if bar is not None:
            bar.close()
    if folder is not None:
        if rec["status"] == "complete":
            save_model(model, folder, extra={"trial": rec["trial"], "data": data.summary()})
            save_history(folder, history)
        write_json(folder / "metrics.json", rec)  # last: its presence marks the trial finished
    return rec


def _epoch_bar(total: int, name: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"  {name}", unit="ep", leave=False, file=sys.stderr)


def open_study(
    run_dir: Path | None, storage: str | None, study_name: str | None, prune: bool = False, epochs: int = 3
) -> optuna.Study:
    """Create or load the sweep's study: ``storage`` URL, else a journal file in ``run_dir``.

    With ``prune``, seeds are compared from a third of ``epochs`` on (earlier epochs are too noisy).
    """
    pruner = studies.SameSizeMedianPruner(n_warmup_steps=max(1, epochs // 3)) if prune else None
    return studies.open_study(run_dir, storage, study_name or DEFAULT_STUDY, pruner=pruner)


def _key(t: optuna.trial.FrozenTrial) -> tuple[int, int] | None:
    fp = t.system_attrs.get("fixed_params") or t.params
    if "dim" not in fp or "seed" not in fp:
        return None
    return int(fp["dim"]), int(fp["seed"])


def make_run_info(
    data: Data, config: SweepConfig, command: str | None, loader: dict[str, Any] | None
) -> dict[str, Any]:
    """The content of ``run.json``: what was asked, and how to reload the data (for ``zdim tune``)."""
    info = {
        "zdim_version": __version__,
        "torch_version": torch.__version__,
        "command": command,
        "data": data.summary(),
        "sweep": config.to_dict(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if loader:
        info["loader"] = dict(loader)
    return info


def prepare_run_dir(out: Path, run_info: dict[str, Any], overwrite: bool, resume: bool) -> None:
    """Create ``out`` for a new run, or check that it belongs to the run being resumed."""
    if out.exists() and not out.is_dir():
        raise RunDirError(f"run directory {out} is a file: choose another --out")
    exists = out.is_dir() and any(out.iterdir())
    if exists and resume:
        try:
            old = read_json(out / RUN_JSON)
        except (OSError, ValueError) as e:
            raise RunDirError(
                f"{out} has no readable {RUN_JSON} ({e}): it is not a zdim run; use --overwrite to replace it"
            ) from e
        for key in ("fingerprint",):
            if old.get("data", {}).get(key) != run_info["data"].get(key):
                raise RunDirError(
                    f"{out} was made from other data (its {key} differs): resume with the same data, or use --overwrite"
                )
        if (
            old.get("sweep", {}).get("train") != run_info["sweep"]["train"]
            or old.get("sweep", {}).get("hidden") != run_info["sweep"]["hidden"]
            or bool(old.get("sweep", {}).get("nested")) != bool(run_info["sweep"].get("nested"))
        ):
            raise RunDirError(
                f"{out} was made with other training settings: resume with the same flags, or use --overwrite"
            )
        old_sweep, new_sweep = old.get("sweep", {}), run_info["sweep"]
        if new_sweep.get("nested") and sorted(old_sweep.get("dims", [])) != sorted(new_sweep["dims"]):
            raise RunDirError(
                f"{out} is a nested run over sizes {sorted(old_sweep.get('dims', []))}, trained for exactly "
                f"those: resume with --dims {','.join(map(str, sorted(old_sweep.get('dims', []))))}, "
                "or use --overwrite"
            )
    elif exists and not overwrite:
        raise RunDirError(
            f"run directory {out} already exists: pass --resume to finish it, "
            "--overwrite to replace it, or choose another --out"
        )
    elif exists and overwrite:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    merged = run_info
    if exists and resume:
        old = read_json(out / RUN_JSON)
        merged = dict(
            run_info,
            sweep=dict(run_info["sweep"], dims=sorted(set(old["sweep"]["dims"]) | set(run_info["sweep"]["dims"]))),
        )
    write_json(out / RUN_JSON, merged)


def collect_trials(run_dir: Path) -> list[dict[str, Any]]:
    """Every finished trial record in a run directory, sorted by size and seed."""
    recs = [r for f in sorted((run_dir / "trials").glob("dim-*")) if (r := read_trial(f))]
    return sorted(recs, key=lambda r: (r["dim"], r["seed"]))


def write_results(run_dir: Path, trials: list[dict[str, Any]]) -> None:
    write_csv(run_dir / RESULTS_CSV, [flat_record(t) for t in trials])


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
        What to do when ``out`` exists: replace it, or finish only the missing trials.
    config : SweepConfig, optional
        Full control over the grid, architecture and training.
    storage, study_name : str, optional
        Optuna storage URL (e.g. ``postgresql://host/db``) and study name, to share a sweep between
        workers; default a journal file in ``out`` (in memory without ``out``).
    progress : bool
        Show progress bars on stderr.
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
    check_dims(config.dims, data)
    if config.nested:
        for on, flag, why in (
            (refine, "--refine", "its sizes are fixed when the nested model is trained"),
            (prune, "--prune", "one training serves every size"),
            (workers > 1, "--workers > 1", "one training serves every size; use --seeds to spread seeds"),
        ):
            if on:
                raise ConfigError(f"{flag} does not combine with --nested ({why}): drop {flag} or --nested")
    run_dir = Path(out) if out is not None else None
    run_info = make_run_info(data, config, command, loader if loader is not None else data_kwargs)
    if intrinsic is not None:
        run_info["intrinsic_dim"] = intrinsic.to_dict()
    if run_dir is not None:
        prepare_run_dir(run_dir, run_info, overwrite, resume)
        save_report_inputs(run_dir, data)
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}: fix --workers")
    if workers > 1 and run_dir is None and storage is None:
        raise ConfigError("--workers > 1 needs a run directory (--out) or --storage to share the study")
    study = open_study(run_dir, storage, study_name, prune=prune, epochs=config.train.epochs)
    records = _run_grid(
        study,
        data,
        config,
        run_dir,
        progress,
        resume,
        workers=workers,
        prune=prune,
        storage=storage,
        study_name=study_name,
    )
    if refine:
        config, records = _refine(
            study,
            data,
            config,
            run_dir,
            progress,
            records,
            rule,
            intrinsic,
            workers=workers,
            prune=prune,
            storage=storage,
            study_name=study_name,
        )
    if run_dir is not None:
        write_results(run_dir, records)
    rec = (
        recommend(records, rel_tol=config.rel_tol, rule=rule, intrinsic_dim=intrinsic.dim if intrinsic else None)
        if any(r["status"] == "complete" for r in records)
        else None
    )
    if run_dir is not None and rec is not None:
        write_json(run_dir / RECOMMENDATION_JSON, rec.to_dict())
    return SweepResult(
        trials=records, recommendation=rec, data=data.summary(), config=config.to_dict(), run_dir=run_dir
    )


def _refine(
    study: optuna.Study,
    data: Data,
    config: SweepConfig,
    run_dir: Path | None,
    progress: bool,
    records: list[dict[str, Any]],
    rule: str,
    intrinsic: IntrinsicDim | None,
    **grid_kw: Any,
) -> tuple[SweepConfig, list[dict[str, Any]]]:
    """Bisect between the recommended size and the next smaller size tried until they are adjacent.

    Whatever the rule, the smaller neighbour was judged not good enough and the recommended size good
    enough, so the exact answer lies between them: each step trains the midpoint (all seeds) and
    recommends again. Returns the widened config and all records.
    """
    for _ in range(16):  # halves the gap each time: 16 steps cover any latent size
        if not any(r["status"] == "complete" for r in records):
            break
        rec = recommend(records, rel_tol=config.rel_tol, rule=rule, intrinsic_dim=intrinsic.dim if intrinsic else None)
        tried = {int(r["dim"]) for r in records if r["status"] == "complete"}
        lower = max((d for d in tried if d < rec.dim), default=None)
        if lower is None or rec.dim - lower <= 1:
            break
        mid = (lower + rec.dim) // 2
        config = replace(config, dims=tuple(config.dims) + (mid,))
        records = _run_grid(study, data, config, run_dir, progress, **grid_kw)
    if run_dir is not None:  # run.json lists every size trained, the refined ones included
        info = read_json(run_dir / RUN_JSON)
        info["sweep"]["dims"] = sorted(set(info["sweep"]["dims"]) | set(config.dims))
        write_json(run_dir / RUN_JSON, info)
    return config, records


REPORT_INPUTS = 500  # held-out samples kept in the run directory for the report's pictures


def save_report_inputs(run_dir: Path, data: Data) -> None:
    """Keep the first held-out samples (and labels) so ``zdim report`` can draw reconstructions and
    the latent space from the run directory alone."""
    n = min(REPORT_INPUTS, data.test.shape[0])
    y = data.y_test[:n] if data.y_test is not None else None
    meta = {
        "likelihood": data.likelihood,
        "is_image": data.is_image,
        "sample_shape": list(data.sample_shape),
        "feature_names": data.feature_names,
        "label_names": data.extra.get("label_names"),
    }
    save_inputs(run_dir, data.test[:n], y, meta)


def _here(run_dir: Path | None) -> tuple[str, str | None]:
    info = studies.worker_info(run_dir)
    return info["host"], info["run_dir"]


def _final_records(
    study: optuna.Study, run_dir: Path | None, local: bool = True, verify: bool = True
) -> dict[tuple[int, int], dict[str, Any]]:
    """Finished grid points: local trial folders first, then records other run directories put in the
    study (another machine sharing the study). Records this run directory wrote to the study count
    only while its folder is intact, so a corrupt folder is redone rather than silently reused.
    """
    out: dict[tuple[int, int], dict[str, Any]] = {}
    here = _here(run_dir)
    finals = (State.COMPLETE, State.PRUNED, State.FAIL)
    for t in study.get_trials(deepcopy=False, states=finals):
        rec, key = t.user_attrs.get(studies.RECORD_ATTR), _key(t)
        if rec is None or key is None:
            continue  # stale or duplicate trial: nothing was finished by it
        w = t.user_attrs.get(studies.WORKER_ATTR, {})
        if run_dir is not None and (w.get("host"), w.get("run_dir")) == here:
            continue
        if key not in out or out[key]["status"] != "complete":
            out[key] = rec
    if run_dir is not None and local:
        for f in sorted((run_dir / "trials").glob("dim-*")):
            rec = read_trial(f)
            if rec is not None and (not verify or trial_done(f)):
                out[(int(rec["dim"]), int(rec["seed"]))] = rec
    return out


def _enqueue_missing(study: optuna.Study, cfg: SweepConfig, run_dir: Path | None) -> int:
    """Enqueue grid points neither finished nor waiting/running; return how many."""
    studies.fail_stale(study)  # RUNNING trials of dead workers -> FAIL, so their points count as missing
    finished = _final_records(study, run_dir)
    pending = {k for t in study.get_trials(deepcopy=False, states=(State.WAITING, State.RUNNING)) if (k := _key(t))}
    n = 0
    for key in cfg.grid():
        if key not in finished and key not in pending:
            study.enqueue_trial({"dim": key[0], "seed": key[1]})
            n += 1
    return n


def _duplicate(
    study: optuna.Study, trial: optuna.Trial, key: tuple[int, int], run_dir: Path | None, local: bool = False
) -> bool:
    """Whether another trial already covers ``key``: two starting workers may enqueue the same point.
    The lowest-numbered unfinished trial of a point is the one that trains it, whichever worker holds
    it: every worker sees the numbers the same way. (Comparing with RUNNING trials only is not enough:
    a lower duplicate may still be WAITING when we look, and be taken and trained a moment later.)
    """
    if key in _final_records(study, run_dir, local=False):
        return True
    if local and any(
        _key(t) == key and studies.RECORD_ATTR in t.user_attrs
        for t in study.get_trials(deepcopy=False, states=(State.COMPLETE, State.PRUNED, State.FAIL))
    ):
        return True  # our intact folder was already told to the study: telling it again counts it twice
    return any(
        _key(t) == key and t.number < trial.number
        for t in study.get_trials(deepcopy=False, states=(State.WAITING, State.RUNNING))
    )


def _worker_loop(
    study: optuna.Study, data: Data, cfg: SweepConfig, run_dir: Path | None, progress: bool, prune: bool
) -> None:
    """Take enqueued trials until none is left (retrying those of dead workers), train, tell."""
    info = studies.worker_info(run_dir)
    while True:
        trial = studies.take_waiting(study)
        if trial is None:
            if _enqueue_missing(study, cfg, run_dir):
                continue
            grid = set(cfg.grid())
            if any(_key(t) in grid for t in study.get_trials(deepcopy=False, states=(State.RUNNING,))):
                time.sleep(1.0)  # others are still training grid points: wait, and retry theirs if they die
                continue
            return
        try:
            key = _key(study._storage.get_trial(trial._trial_id))
            if key is None:  # a foreign trial in our study: leave it failed, never train junk
                study.tell(trial, state=State.FAIL)
                continue
            dim, seed = key
            folder = run_dir / "trials" / trial_name(dim, seed) if run_dir is not None else None
            local = folder is not None and trial_done(folder)
            if _duplicate(study, trial, key, run_dir, local):
                trial.set_user_attr(studies.DUPLICATE_ATTR, True)
                study.tell(trial, state=State.FAIL)
                continue
            trial.suggest_int("dim", 1, max(dim, data.n_features))
            trial.suggest_int("seed", 0, max(seed, 2**31 - 1))

            def report(epoch: int, r: dict[str, Any], trial: optuna.Trial = trial, dim: int = dim) -> None:
                if prune:
                    try:
                        trial.report(r["val_neg_elbo"], epoch)
                    except optuna.exceptions.UpdateFinishedTrialError:
                        return  # another worker finished this trial (see below): finish ours unpruned
                    if trial.should_prune():
                        raise optuna.TrialPruned(
                            f"pruned at epoch {epoch}: validation -ELBO "
                            f"{r['val_neg_elbo']:.2f} above the median of other seeds "
                            f"of size {dim}"
                        )

            with studies.Heartbeat(trial, info):
                if local:
                    rec = read_trial(folder)  # type: ignore[arg-type]
                    assert rec is not None
                else:
                    rec = run_trial(data, dim, seed, cfg, folder, progress=progress, callback=report)
            trial.set_user_attr(studies.RECORD_ATTR, studies.jsonable(rec))
            if rec["status"] == "complete":
                study.tell(trial, rec["nll"])
            else:
                trial.set_user_attr("reason", rec.get("reason", ""))
                study.tell(trial, state=State.PRUNED if rec["status"] == "pruned" else State.FAIL)
            if run_dir is not None:
                write_results(
                    run_dir,
                    sorted(_final_records(study, run_dir, verify=False).values(), key=lambda r: (r["dim"], r["seed"])),
                )
        except optuna.exceptions.UpdateFinishedTrialError:
            # Another worker finished this trial while we held it: SQLite has no row locks, so two
            # workers can take the same enqueued trial, or ours was judged stale. Results are the same
            # (seeded), our folder is kept, and the study keeps the first record told.
            continue


def _worker_main(
    data: Data,
    cfg: SweepConfig,
    run_dir: Path | None,
    storage: str | None,
    study_name: str | None,
    prune: bool,
    threads: int,
) -> None:
    """Entry point of a spawned worker process."""
    torch.set_num_threads(threads)
    study = open_study(run_dir, storage, study_name, prune=prune, epochs=cfg.train.epochs)
    _worker_loop(study, data, cfg, run_dir, False, prune)


def _run_grid(
    study: optuna.Study,
    data: Data,
    cfg: SweepConfig,
    run_dir: Path | None,
    progress: bool,
    resume: bool = False,
    *,
    workers: int = 1,
    prune: bool = False,
    storage: str | None = None,
    study_name: str | None = None,
) -> list[dict[str, Any]]:
    """Enqueue missing grid points, run ``workers`` loops over the study, return the grid's records."""
    _enqueue_missing(study, cfg, run_dir)
    grid = set(cfg.grid())

    def finished() -> dict[tuple[int, int], dict[str, Any]]:
        return {k: r for k, r in _final_records(study, run_dir, verify=False).items() if k in grid}

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=len(grid),
            initial=len(finished()),
            desc=f"zdim sweep ({workers} worker(s))",
            unit="trial",
            file=sys.stderr,
        )
    if workers == 1:
        _worker_loop(study, data, cfg, run_dir, progress, prune)
    else:
        last = [0.0]

        def poll() -> None:
            if bar is not None and time.monotonic() - last[0] > 2:
                last[0] = time.monotonic()
                bar.n = len(finished())
                bar.refresh()

        studies.spawn_workers(
            _worker_main,
            (data, cfg, run_dir, storage, study_name, prune, studies.threads_per_worker(workers)),
            workers,
            poll,
        )
    records = _final_records(study, run_dir)
    if bar is not None:
        bar.n = len([k for k in records if k in grid])
        bar.close()
    if run_dir is None:
        records = {k: r for k, r in records.items() if k in grid}
    return sorted(records.values(), key=lambda r: (r["dim"], r["seed"]))


__all__ = ["SweepConfig", "SweepResult", "sweep", "run_trial", "default_dims"]
