"""Tuning at the chosen latent size: beta, KL warm-up, free bits, learning rate and width, with Optuna.

Parameters are chosen on the **validation** split (the objective: IWAE NLL by default, -ELBO or MSE on
request); the test split is touched once, by the final model retrained with the best parameters, so its
test figures can be set honestly beside the sweep's test figures at the same size. The sweep's own
configuration is enqueued as trial 0, which is also the baseline. Trials are pruned with Optuna's
HyperbandPruner on the per-epoch validation -ELBO: unlike in the sweep, every trial here has the same
latent size, so a trial that trails the others is genuinely worse.

``tuning.json`` (read by the HTML report) has the keys ``dim, objective, n_trials, baseline, best,
importances, importance_trials, trials, final_model, tuned_model, kept``; the tuned model lives in
``tune/final`` (``RunDir``), and it is the final model unless it is worse on the test split than the
sweep's models at that size: then ``final_model`` is the sweep's trial folder (``kept``: ``sweep``).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
import torch

from .answer.recommendation import Recommendation
from .data.dataset import Data, read_data
from .errors import ConfigError, RunDirError
from .evaluation.metrics import evaluate
from .evidence import importance_caveat
from .grid import DimSpec
from .messages import speaks_python
from .models.custom import needs_trust
from .models.vae import VAE
from .records import OBJECTIVES
from .sweeps import backends
from .sweeps.planning.config import SweepConfig, model_config
from .sweeps.planning.plan import Mode, SweepPlan, capped_workers
from .sweeps.records import studies
from .sweeps.records.ledger import saved_extra
from .sweeps.records.resume import make_run_info
from .sweeps.records.runs import RunDir
from .training.config import TrainConfig
from .training.trainer import FitResult
from .training.trial import train

PARAMS = ("beta", "warmup", "free_bits", "lr", "width")
State = optuna.trial.TrialState


@dataclass
class TuneResult:
    """Outcome of ``tune``: the tuning.json content plus the test-split comparison with the sweep."""

    tuning: dict[str, Any]
    final_test: dict[str, Any]
    sweep_test: dict[str, float] | None
    run_dir: Path
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        t, obj = self.tuning, self.tuning["objective"]
        b, best = t["baseline"], t["best"]
        lines = [
            f"Tuned latent size {t['dim']} over {t['n_trials']} trial(s), objective validation {obj}.",
            f"  baseline (sweep configuration): {b['value']:.4f}  {_params(b['params'])}",
            f"  best (trial #{best['number']}):            {best['value']:.4f}  {_params(best['params'])}",
            f"  importances{importance_caveat(t)}: "
            + (", ".join(f"{k} {v:.2f}" for k, v in t["importances"].items()) or "(too few complete trials)"),
        ]
        key = OBJECTIVES[obj]
        if self.sweep_test is not None:
            lines.append(
                f"Test split, {obj}: sweep at size {t['dim']} (mean over seeds) "
                f"{self.sweep_test[key]:.4f}; tuned final model {self.final_test[key]:.4f}"
            )
        else:
            lines.append(f"Test split, {obj}: tuned final model {self.final_test[key]:.4f}")
        final = Path(self.run_dir) / t["final_model"]
        if t.get("kept") == "sweep":
            lines.append(
                f"Final model: {final}, the sweep's: the tuned model ({RunDir(self.run_dir).final_folder}) is worse "
                f"on the test split ({obj} {self.final_test[key]:.4f} against the sweep's {self.sweep_test[key]:.4f}"  # type: ignore[index]
                "), so the sweep's model is kept"
            )
        else:
            lines.append(f"Final model: {final}")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _params(params: dict[str, Any]) -> str:
    """``beta 0.52, warmup 240.9, ...``: each number to 4 significant digits (``tuning.json`` keeps all)."""
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in params.items())


def baseline_params(train: TrainConfig) -> dict[str, float]:
    return {
        "beta": train.beta,
        "warmup": train.warmup_epochs,
        "free_bits": train.free_bits,
        "lr": train.lr,
        "width": 1.0,
    }


def suggest(trial: optuna.Trial, epochs: int) -> dict[str, float]:
    """The search space (ranges include the sweep's defaults so the baseline is a point of it)."""
    return {
        "beta": trial.suggest_float("beta", 0.1, 2.0, log=True),
        "warmup": trial.suggest_float("warmup", 0.0, max(1.0, epochs / 2)),
        "free_bits": trial.suggest_float("free_bits", 0.0, 1.0),
        "lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True),
        "width": trial.suggest_categorical("width", [0.5, 1.0, 2.0]),
    }


def train_eval(
    data: Data,
    dim: int,
    cfg: SweepConfig,
    params: dict[str, float],
    epochs: int,
    split: torch.Tensor,
    callback: Any = None,
) -> tuple[VAE, dict[str, Any], FitResult]:
    """Train at size ``dim`` with ``params`` (validation split for early stopping), evaluate on ``split``."""
    hidden = tuple(max(1, int(round(h * params["width"]))) for h in cfg.hidden)
    tcfg = replace(
        cfg.train,
        epochs=epochs,
        beta=params["beta"],
        warmup_epochs=params["warmup"],
        free_bits=params["free_bits"],
        lr=params["lr"],
    )
    model, fitted = train(
        data, model_config(data, dim, cfg, hidden=hidden), tcfg, callback=callback, model_spec=cfg.model
    )
    return model, evaluate(model, split, k=cfg.k, seed=tcfg.seed), fitted


class _Objective:
    """Picklable Optuna objective (spawned workers receive it whole)."""

    def __init__(self, data: Data, dim: int, cfg: SweepConfig, epochs: int, objective: str):
        self.data, self.dim, self.cfg, self.epochs, self.key = data, dim, cfg, epochs, OBJECTIVES[objective]

    def __call__(self, trial: optuna.Trial) -> float:
        params = suggest(trial, self.epochs)
        info = studies.worker_info(None)

        def report(epoch: int, r: dict[str, Any]) -> None:
            trial.report(r["val_neg_elbo"], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        with studies.Heartbeat(trial, info):
            _, ev, _ = train_eval(self.data, self.dim, self.cfg, params, self.epochs, self.data.val, report)
        value = float(ev[self.key])
        if not math.isfinite(value):
            raise ValueError(f"validation {self.key} is {value}")
        return value


def _open(run: RunDir, storage: str | None, name: str, prune: bool, seed: int) -> optuna.Study:
    pruner = optuna.pruners.HyperbandPruner(min_resource=1) if prune else optuna.pruners.NopPruner()
    return studies.open_study(
        run.tune_study_file if storage is None else None,
        storage,
        name,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=pruner,
    )


def load_run(
    run: RunDir, data: Data | None = None, device: str | None = None
) -> tuple[Data, SweepConfig, dict[str, Any]]:
    """The data, sweep configuration and run.json of a sweep's run directory (``device`` overrides the
    sweep's)."""
    info = run.read_info()
    try:
        cfg = SweepConfig.from_dict(info["sweep"])
    except (KeyError, TypeError, ValueError) as e:
        raise RunDirError(f"{run.run_json} has no readable sweep settings ({e}): rerun the sweep") from e
    if device is not None:
        cfg = replace(cfg, train=replace(cfg.train, device=device))
    if data is None:
        source = str(info["data"].get("source", ""))
        if source.startswith("<") and source.endswith(">"):  # <array>, <dataframe>, <tensor>: nothing to reload
            raise RunDirError(
                f"{run.path} was made from data given in memory ({source}): tune it from Python with that data, "
                f"zdim.tune({str(run.path)!r}, data=zdim.load_data(X, ...)) with the sweep's data options"
            )
        loader = info.get("loader") or {}
        data = read_data(source, **loader)
    if data.fingerprint != info["data"].get("fingerprint"):
        raise RunDirError(
            f"the data of {run.path} cannot be reloaded identically (fingerprint differs): "
            "pass the same data to zdim.tune(..., data=...)"
        )
    return data, cfg, info


def init_tune_run(
    data: Data,
    dim: int,
    out: str | Path,
    config: SweepConfig | None = None,
    *,
    overwrite: bool = False,
    resume: bool = False,
    command: str | None = None,
    loader: dict[str, Any] | None = None,
) -> Path:
    """Make a run directory for tuning one size of ``data`` directly, without a sweep first.

    ``run.json`` records the data and the starting recipe (``config``, default ``SweepConfig``), so
    ``tune(out, dim)`` and ``zdim report`` work on it as on a sweep's directory.
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ConfigError(f"--dim {dim!r} is not a latent size: pass an integer >= 1")
    config = (config or SweepConfig(dims=(dim,))).with_dims((dim,))
    DimSpec.of((dim,)).sizes(data.n_features, data.name)
    from .sweeps.execute import data_paths

    plan = SweepPlan(config=config, mode=Mode.PER_SIZE)
    run = RunDir.create(
        out, make_run_info(data, plan, command, loader), overwrite=overwrite, resume=resume, protect=data_paths(data)
    )
    run.finish()
    return run.path


def run_tune(
    run_dir: str | Path,
    dim: int | None = None,
    *,
    n_trials: int = 20,
    objective: str = "nll",
    epochs: int | None = None,
    workers: int = 1,
    backend: str = "local",
    address: str | None = None,
    prune: bool = True,
    storage: str | None = None,
    study_name: str | None = None,
    data: Data | None = None,
    progress: bool = False,
    device: str | None = None,
    trust_code: bool = False,
    resume: bool = False,
) -> TuneResult:
    """Tune beta, KL warm-up, free bits, learning rate and width at one latent size of a sweep.

    Parameters
    ----------
    run_dir : path
        A sweep's run directory; its data, architecture and training recipe are the starting point.
    dim : int, optional
        Latent size to tune; default the run's recommended size.
    n_trials : int
        Optuna trials in total (a resumed study counts the trials it already has). With several workers,
        each stops once the study holds that many, so up to ``workers - 1`` trials started at the same
        moment may finish beyond it.
    objective : {"nll", "elbo", "mse"}
        Validation figure to minimize.
    epochs : int, optional
        Maximum epochs per trial; default the sweep's.
    workers, backend, address, storage, study_name :
        As for ``sweep``: how many trials at once and where they run (``local``: processes on this machine;
        ``ray``: tasks on the Ray cluster at ``address``), an Optuna storage URL shared between machines.
    prune : bool
        Stop hopeless trials early (HyperbandPruner over epochs).
    data : Data, optional
        The sweep's data, when it cannot be reloaded from its source (e.g. an in-memory array).
    progress : bool
        A header line and a bar over trials on stderr.
    device : str, optional
        ``auto``, ``cpu`` or ``cuda``; default the sweep's.
    trust_code : bool
        A sweep of the user's own model (``--model``) is tuned by importing that code: only with
        ``trust_code=True`` (unless this process holds the class already).
    resume : bool
        Go on with the tuning this run has at ``dim``: ``RunDirError`` (one line, nothing written) when it
        has none (without it, a study that exists is gone on with too).

    Returns
    -------
    TuneResult
        ``.tuning`` (the content of ``tuning.json``), ``.final_test``, ``.sweep_test``, ``.summary()``.
    """
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective {objective!r} is not one of {', '.join(OBJECTIVES)}: fix --objective")
    if n_trials < 1:
        raise ConfigError(f"trials must be >= 1, got {n_trials}: fix --trials")
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}: fix --workers")
    if epochs is not None and epochs < 1:
        raise ConfigError(f"epochs must be >= 1, got {epochs}: fix --epochs")
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
        raise ConfigError(f"--dim {dim!r} is not a latent size: pass an integer >= 1")
    backends.join(backend, address)  # its library there, its cluster joined, before anything is written
    run = RunDir.open(run_dir)
    run.check_writable("zdim tune writes tuning.json and tune/")
    data, cfg, _ = load_run(run, data, device)
    spec = cfg.model if isinstance(cfg.model, str) else None
    if spec is not None and needs_trust(spec) and not trust_code:
        raise ConfigError(
            f"{run.path} was swept with the user's model {spec}: tuning imports and runs that code; pass "
            "--trust-code (trust_code=True) if you trust it"
        )
    if dim is None:
        saved = run.read_recommendation()
        if saved is None:
            raise RunDirError(f"{run.path} has no recommendation: finish the sweep, or pass --dim")
        dim = Recommendation.from_dict(saved).dim
    if not 1 <= dim <= data.n_features:
        raise ConfigError(f"--dim {dim} is outside 1..{data.n_features}: pick a size of the data")
    notes = _epoch_warnings(run, dim, epochs)
    epochs = epochs or cfg.train.epochs
    name = tune_study(dim, study_name)
    if resume:
        check_resumable(run, dim, storage, name)
    seed = cfg.train.seed
    workers, said = capped_workers(workers, n_trials, backend)
    notes += list(said)
    where = backends.choose(backend, workers, address)
    if progress:
        print(
            f"zdim tune: size {dim} of {data.name}, {n_trials} trial(s) of up to {epochs} epochs, objective "
            f"validation {objective}, {where.describe()} -> {run.path}",
            file=sys.stderr,
        )
    for w in notes:
        print(f"zdim: warning: {w}", file=sys.stderr)
    study = _open(run, storage, name, prune, seed)
    stale = {t.number for t in studies.fail_stale(study)}  # trials of dead workers: redone
    base = baseline_params(cfg.train)
    if not study.trials:
        study.enqueue_trial(base)  # trial 0 is the sweep's own configuration: the baseline
    finals = (State.COMPLETE, State.PRUNED, State.FAIL)
    done = len([t for t in study.trials if t.state in finals and t.number not in stale])
    remaining = n_trials - done
    obj = _Objective(data, dim, cfg, epochs, objective)
    if remaining > 0:
        target = len([t for t in study.trials if t.state != State.WAITING]) + remaining
        share = -(-remaining // where.workers)
        worker = TuneWorker(run.path, storage, name, prune, seed, obj, share, target, where.workers, progress, study)
        where.run_workers(worker, ())
    study = _open(run, storage, name, prune, seed)
    result = _finish(run, study, data, cfg, dim, objective, epochs, base)
    result.warnings = notes
    return result


tune = speaks_python(run_tune)  # zdim.tune: its messages name keywords (resume=True), the command's flags


def tune_study(dim: int, study_name: str | None = None) -> str:
    """The name of the tuning study of size ``dim`` (``--study``, else ``zdim-tune-dim-K``)."""
    return study_name or f"zdim-tune-dim-{dim}"


def check_resumable(run: RunDir, dim: int, storage: str | None, name: str) -> None:
    """``RunDirError`` for ``--resume`` of a tuning that never began: no study ``name`` in the run's
    tuning journal (or in ``storage``)."""
    names: list[str] = []
    store: Any = None
    if storage is not None and not studies.is_journal(storage):
        store = studies.storage_url(storage)
    elif storage is not None and Path(storage).expanduser().is_file():
        store = studies.journal_storage(Path(storage).expanduser())
    elif storage is None and run.tune_study_file.is_file():
        store = studies.journal_storage(run.tune_study_file)
    if store is not None:
        try:
            names = optuna.study.get_all_study_names(store)
        except Exception:  # noqa: BLE001 - a storage that cannot be read is refused where it is opened
            return
    if name not in names:
        raise RunDirError(
            f"{run.path} was never tuned at size {dim} (no study {name!r}): there is no tuning to resume; drop "
            "--resume to start one"
        )


def _epoch_warnings(run: RunDir, dim: int, epochs: int | None) -> list[str]:
    """A warning when ``--epochs`` stops tuning trials before the sweep's own models at this size reached
    their best epoch: the tuned model would then be worse than the sweep's for want of training."""
    if epochs is None:
        return []
    best = sorted(r.best_epoch for r in run.records(verify=False) if r.complete and r.dim == dim and r.best_epoch)
    if not best or epochs >= best[len(best) // 2]:
        return []
    return [
        f"--epochs {epochs} stops every tuning trial before the sweep's size-{dim} models reached their best "
        f"epoch (median {best[len(best) // 2]}): the tuned model may come out worse than the sweep's for want "
        "of training; raise --epochs or leave it out (the sweep's)"
    ]


@dataclass
class TuneWorker:
    """What each worker of a backend runs (``zdim.sweeps.backends``): up to ``share`` trials of the tuning study,
    stopping (with several workers) once the study holds ``target``. Where it runs in this process it goes
    on with ``study`` (a progress bar with one worker); a copy sent elsewhere (pickled: the study stays
    here) opens the study itself."""

    run_dir: Path
    storage: str | None
    name: str
    prune: bool
    seed: int
    obj: _Objective
    share: int
    target: int
    workers: int
    progress: bool = False
    study: optuna.Study | None = None

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__ | {"study": None}

    def __call__(self) -> None:
        study = self.study
        if study is None:  # a copy in another process or machine
            study = _open(RunDir(self.run_dir), self.storage, self.name, self.prune, self.seed)
        cap = [optuna.study.MaxTrialsCallback(self.target, states=None)] if self.workers > 1 else []
        bar = self.progress and self.workers == 1
        study.optimize(self.obj, n_trials=self.share, catch=(Exception,), callbacks=cap, show_progress_bar=bar)


def _value(t: optuna.trial.FrozenTrial) -> float:
    """The objective value of a COMPLETE trial (Optuna types it optional: other states have none)."""
    assert t.value is not None
    return float(t.value)


def _finish(
    run: RunDir,
    study: optuna.Study,
    data: Data,
    cfg: SweepConfig,
    dim: int,
    objective: str,
    epochs: int,
    base: dict[str, float],
) -> TuneResult:
    trials = [t for t in study.trials if t.state in (State.COMPLETE, State.PRUNED, State.FAIL)]
    complete = [t for t in trials if t.state == State.COMPLETE and t.value is not None]
    if not complete:
        raise RunDirError(
            f"no tuning trial completed at size {dim} (see {run.tune_study_file}): try more --trials or --no-prune"
        )
    best = min(complete, key=_value)
    base_t = [t for t in complete if all(t.params.get(k) == v for k, v in base.items())]
    if base_t:
        base_value = _value(base_t[0])
    else:  # the baseline trial was pruned or lost: measure it outright
        _, ev, _ = train_eval(data, dim, cfg, base, epochs, data.val)
        base_value = float(ev[OBJECTIVES[objective]])
    try:
        imp = optuna.importance.get_param_importances(study, params=list(PARAMS))
        importances = {k: float(v) for k, v in imp.items()}
    except (RuntimeError, ValueError, ZeroDivisionError):  # too few complete trials
        importances = {}
    t0 = time.perf_counter()
    model, test_ev, fitted = train_eval(data, dim, cfg, dict(best.params), epochs, data.test)
    recs = [r for r in run.records() if r.dim == dim and r.complete]
    sweep_test = None  # the sweep's test figures at this size, mean over seeds: the honest comparison
    if recs:
        sweep_test = {k: sum(r.metric(k) or 0.0 for r in recs) / len(recs) for k in ("nll", "neg_elbo", "mse")}
    key = OBJECTIVES[objective]
    worse = sweep_test is not None and float(test_ev[key]) > sweep_test[key]
    # the tuned model worse on the test split than the sweep's: the sweep's model (its seed best on the
    # validation split, chosen without the test split) stays the final model
    kept = min(recs, key=lambda r: r.metric("best_val_neg_elbo") or math.inf) if worse else None
    final_rec = {k: v for k, v in test_ev.items()}
    final_rec.update(
        status="complete",
        dim=dim,
        split="test",
        params=dict(best.params),
        train_seconds=time.perf_counter() - t0,
        sweep_test=sweep_test,
        kept="sweep" if kept is not None else "tuned",
    )
    run.save_final(
        model,
        fitted.history,
        final_rec,
        extra={"trial": f"tune-dim-{dim}", **saved_extra(data), "params": dict(best.params)},
    )
    tuning = {
        "dim": int(dim),
        "objective": objective,
        "n_trials": len(trials),
        "baseline": {"value": base_value, "params": dict(base)},
        "best": {"value": _value(best), "params": dict(best.params), "number": int(best.number)},
        "importances": importances,
        "importance_trials": len(complete),
        "trials": [
            {
                "number": int(t.number),
                "state": t.state.name,
                "value": float(t.value) if t.value is not None else None,
                "params": dict(t.params),
            }
            for t in trials
        ],
        "final_model": str(
            (run.trial_folder(kept.dim, kept.seed) if kept is not None else run.final_folder).relative_to(run.path)
        ),
        "tuned_model": str(run.final_folder.relative_to(run.path)),
        "kept": final_rec["kept"],
    }
    run.write_tuning(tuning)
    return TuneResult(tuning=tuning, final_test=final_rec, sweep_test=sweep_test, run_dir=run.path)


__all__ = ["tune", "run_tune", "TuneResult", "init_tune_run", "check_resumable", "tune_study"]
