"""Optional experiment tracking: a finished sweep logged to MLflow (``zdim sweep ... --mlflow``).

One parent run per sweep (the grid, the recommendation, ``results.csv`` and ``recommendation.json``)
and one child run per trial: its parameters, its held-out metrics, its per-epoch training curve, its
KL per latent unit (step = unit index) and its trial folder (safetensors weights, ``model.json``,
``metrics.json``, ``history.csv``) as artifacts. Nothing is pickled: the logged model is the folder
``zdim.load_model`` reads.

The sweep is logged once it has finished, from the process that ran it, so workers and shared studies
need no MLflow access of their own. ``mlflow`` is an optional dependency (``pip install 'zdim[mlflow]'``),
imported only here and only when asked for.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .records import TrialRecord
from .sweeps.records.result import SweepResult
from .sweeps.records.runs import RunDir

if TYPE_CHECKING:
    from mlflow.entities import Metric

# Run status of each trial status (MLflow's names).
RUN_STATUS = {"complete": "FINISHED", "failed": "FAILED", "pruned": "KILLED"}


def require_mlflow() -> None:
    """Raise ``ConfigError`` with the install command when ``mlflow`` cannot be imported.

    Called before a sweep starts, so a missing package costs a second, not a finished sweep.
    """
    try:
        import mlflow  # noqa: F401
    except ImportError as e:
        raise ConfigError(
            f"--mlflow needs the mlflow package ({e}): install it with "
            "pip install 'zdim[mlflow]', or leave out --mlflow"
        ) from e


def check_tracking(tracking_uri: str | None) -> None:
    """Before a sweep trains anything: ``ConfigError`` (one line) when MLflow is missing or
    ``tracking_uri`` cannot be written to (a ``file:`` store in a place that cannot be written) or reached
    (a server: one request, no retries). None: the default store in the run directory, whose place the
    sweep checks itself."""
    require_mlflow()
    if tracking_uri is None:
        return
    if tracking_uri.startswith("file:") or "://" not in tracking_uri:
        from urllib.parse import unquote, urlparse

        path = Path(unquote(urlparse(tracking_uri).path)) if tracking_uri.startswith("file:") else Path(tracking_uri)
        base = next((p for p in (path, *path.parents) if p.exists()), Path("/"))
        try:
            if not base.is_dir():
                raise NotADirectoryError(f"{base} is not a folder")
            os.rmdir(tempfile.mkdtemp(prefix=".zdim-probe-", dir=base))
        except OSError as e:
            raise ConfigError(
                f"--mlflow-uri {tracking_uri} cannot be written ({e.strerror or e}): choose a writable place"
            ) from None
        return
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(tracking_uri=tracking_uri).search_experiments(max_results=1)
    except Exception as e:  # noqa: BLE001 - MLflow raises many types for a store it cannot use
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"--mlflow-uri {tracking_uri} cannot be used ({first[:200]}): fix --mlflow-uri") from None


def default_uri(run_dir: Path | None) -> str:
    """A local MLflow file store inside the run directory: ``file://RUN_DIR/mlruns`` (``./mlruns``
    without one)."""
    return (RunDir(run_dir).mlruns if run_dir is not None else Path("mlruns")).resolve().as_uri()


def log_sweep(result: SweepResult, tracking_uri: str | None = None, experiment: str | None = None) -> str:
    """Log a finished sweep to MLflow; return the tracking URI used.

    Parameters
    ----------
    result : SweepResult
        A sweep's result; with a run directory (``out``) its trial folders are logged as artifacts.
    tracking_uri : str, optional
        Where to log; default a file store in ``RUN_DIR/mlruns`` (or ``./mlruns`` without a run dir).
    experiment : str, optional
        MLflow experiment name; default ``zdim-NAME`` with the data's name.
    """
    require_mlflow()
    from mlflow.entities import Param, RunTag
    from mlflow.tracking import MlflowClient

    uri = tracking_uri or default_uri(result.run_dir)
    if uri.startswith("file:"):
        # MLflow 3 refuses its file store unless opted in; a local file store is what --mlflow promises.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=uri)
    name = experiment or f"zdim-{result.data.get('name', 'sweep')}"
    found = client.get_experiment_by_name(name)
    exp_id = found.experiment_id if found is not None else client.create_experiment(name)
    now = _now_ms()

    parent = client.create_run(exp_id, run_name=f"sweep {name}", tags={"zdim.kind": "sweep"}).info.run_id
    sweep_params = {
        "dims": ",".join(str(d) for d in result.config.get("dims", [])),
        "seeds": result.config.get("seeds"),
        "data_fingerprint": result.data.get("fingerprint"),
        "run_dir": str(result.run_dir) if result.run_dir is not None else None,
    }
    rec = result.recommendation
    metrics = (
        []
        if rec is None
        else [_metric("recommended_dim", rec.dim, now), _metric("largest_active_units", rec.largest_active_units, now)]
    )
    client.log_batch(
        parent,
        metrics=[m for m in metrics if m is not None],
        params=[Param(k, str(v)) for k, v in sweep_params.items()],
        tags=[RunTag("zdim.rationale", rec.rationale)] if rec is not None else [],
    )
    rundir = RunDir(result.run_dir) if result.run_dir is not None else None
    if rundir is not None:
        for f in rundir.summary_files():
            client.log_artifact(parent, str(f))

    for t in result.trials:
        run = client.create_run(
            exp_id,
            run_name=t.trial,
            tags={"mlflow.parentRunId": parent, "zdim.kind": "trial", "zdim.status": t.status.value},
        ).info.run_id
        folder = rundir.trial_folder(t.dim, t.seed) if rundir is not None else None
        history = rundir.read_history(t.dim, t.seed) if rundir is not None else []
        trial_metrics = [m for m in _trial_metrics(t, history, now) if m is not None]
        for i in range(0, len(trial_metrics), 900):  # MLflow takes at most 1000 metrics per batch
            client.log_batch(
                run,
                metrics=trial_metrics[i : i + 900],
                params=[Param(k, str(v)) for k, v in _trial_params(t, result.config).items()] if i == 0 else [],
                tags=[RunTag("zdim.reason", t.reason)] if i == 0 and t.reason else [],
            )
        if folder is not None and folder.is_dir():
            client.log_artifacts(run, str(folder), artifact_path="model")
        client.set_terminated(run, status=RUN_STATUS.get(t.status.value, "FAILED"))
    client.set_terminated(parent, status="FINISHED" if rec is not None else "FAILED")
    return uri


def _now_ms() -> int:
    return int(time.time() * 1000)


def _metric(key: str, value: Any, timestamp: int, step: int = 0) -> Metric | None:
    """An MLflow metric, or None for a value that is not a finite number (MLflow would reject it)."""
    from mlflow.entities import Metric

    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return Metric(key, float(value), timestamp, step)


def _trial_params(t: TrialRecord, config: Mapping[str, Any]) -> dict[str, Any]:
    """The trial's size and seed plus the sweep's architecture and training recipe."""
    train = {f"train.{k}": v for k, v in config.get("train", {}).items() if k != "seed"}
    hidden = ",".join(str(h) for h in config.get("hidden", []))
    return {
        "dim": t.dim,
        "seed": t.seed,
        "hidden": hidden,
        "arch": config.get("arch"),
        "k": config.get("k"),
        **train,
    }


def _trial_metrics(t: TrialRecord, history: list[dict[str, float]], now: int) -> Iterator[Metric | None]:
    """Scalar figures of the record, KL per unit (step = unit), and the training curve (step = epoch)."""
    for key, value in t.flat().items():
        if key not in ("dim", "seed"):
            yield _metric(key, value, now)
    for unit, kl in enumerate(t.kl_per_unit):
        yield _metric("kl_per_unit", kl, now, step=unit)
    for row in history:
        epoch = int(row.get("epoch", 0))
        for key in ("train_loss", "val_neg_elbo", "beta"):
            yield _metric(key, row.get(key), now, step=epoch)


__all__ = ["log_sweep", "require_mlflow", "check_tracking", "default_uri"]
