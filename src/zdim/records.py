"""The typed record of one trial: what one (latent size, seed) training produced.

A ``TrialRecord`` is what the sweep persists (``metrics.json`` of a trial folder, one row of
``results.csv``, the ``zdim_record`` attribute of an Optuna trial), what the recommendation rule reads
and what the report draws. Its JSON form is flat (``to_dict``/``from_dict``): held-out metrics, the
training record and the generation metrics (``gen_*``) side by side, so files written by earlier
versions read back unchanged. Keys this version does not know are kept in ``extra`` and written back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any

EMPTY_KL = 0.5  # nats per sample: a model whose KL is below this carries (almost) no latent code


class TrialStatus(str, Enum):
    """How a trial ended. ``COMPLETE`` trials carry metrics; the others carry a ``reason``."""

    COMPLETE = "complete"
    FAILED = "failed"
    PRUNED = "pruned"


def trial_name(dim: int, seed: int) -> str:
    """The folder name (and id) of the trial of size ``dim`` and seed ``seed``: ``dim-016-seed-0``."""
    return f"dim-{dim:03d}-seed-{seed}"


LIST_FIELDS = ("kl_per_unit", "unit_variance")
GEN_PREFIX = "gen_"
# ``zdim tune``'s objectives, the registry of its ``--objective`` choices: the validation figure it
# minimizes, by the name a user types, and the metric of a record (``zdim.evaluation.metrics.evaluate``)
OBJECTIVES = {"nll": "nll", "elbo": "neg_elbo", "mse": "mse"}


@dataclass
class TrialRecord:
    """One finished trial.

    Attributes
    ----------
    dim, seed : int
        Latent size and seed of the trial.
    status : TrialStatus
    reason : str
        Why a failed or pruned trial stopped ("" for complete ones).
    nll, neg_elbo, rec, kl, mse : float or None
        Held-out metrics (``zdim.evaluation.metrics.evaluate``): IWAE NLL bound, -ELBO and its reconstruction and
        KL terms (nats per sample), mean squared reconstruction error per element.
    kl_per_unit, unit_variance : list of float
        Per latent unit: held-out KL, variance over inputs of the posterior mean.
    active_units : int or None
        Units whose posterior mean varies over inputs.
    n, k : int or None
        Held-out samples evaluated and importance samples of the NLL bound.
    baseline_nll, baseline_se : float or None
        Held-out NLL of the same test samples under the model that ignores its latents and decodes the
        feature means (``zdim.evaluation.metrics.Reference``), and the paired standard error of its gap to ``nll``:
        what the latents buy, and how well the test split measures it.
    linear_nll, linear_se : float or None
        The same for probabilistic PCA of the trial's size (Gaussian data): the best linear model of it.
    full_nll : float or None
        Held-out NLL of the same test samples under the full-covariance Gaussian of the training split
        (Gaussian data): the best linear model of any size.
    best_epoch, epochs_run, stopped_early, best_val_neg_elbo : training record (``zdim.training.trainer.fit``)
    converged : bool or None
        Whether training converged: it early-stopped, or its validation -ELBO improved by less than
        ``CONVERGENCE_TOL`` (relative) over its last ``CONVERGENCE_WINDOW`` epochs.
    window_improvement : float or None
        Relative improvement of the best validation -ELBO over the last window of epochs.
    train_seconds, eval_seconds : float or None
    n_params : int or None
    nested : bool
        Cut out of a nested model (``zdim sweep --nested``) rather than trained alone.
    generation : dict
        Generation metrics (``gen_fd``, ``gen_precision``, ...; ``zdim.evaluation.generation``), or ``gen_error``.
    extra : dict
        Keys of a stored record this version does not know; written back unchanged.
    """

    dim: int
    seed: int
    status: TrialStatus
    reason: str = ""
    nll: float | None = None
    neg_elbo: float | None = None
    rec: float | None = None
    kl: float | None = None
    mse: float | None = None
    kl_per_unit: list[float] = field(default_factory=list)
    unit_variance: list[float] = field(default_factory=list)
    active_units: int | None = None
    n: int | None = None
    k: int | None = None
    best_epoch: int | None = None
    epochs_run: int | None = None
    stopped_early: bool | None = None
    best_val_neg_elbo: float | None = None
    baseline_nll: float | None = None
    baseline_se: float | None = None
    linear_nll: float | None = None
    linear_se: float | None = None
    full_nll: float | None = None
    converged: bool | None = None
    window_improvement: float | None = None
    train_seconds: float | None = None
    eval_seconds: float | None = None
    n_params: int | None = None
    nested: bool = False
    generation: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.status = TrialStatus(self.status)
        self.dim, self.seed = int(self.dim), int(self.seed)

    @property
    def trial(self) -> str:
        """The trial's name: ``dim-016-seed-0``."""
        return trial_name(self.dim, self.seed)

    @property
    def key(self) -> tuple[int, int]:
        """``(dim, seed)``: the grid point of the trial."""
        return self.dim, self.seed

    @property
    def complete(self) -> bool:
        return self.status is TrialStatus.COMPLETE

    def metric(self, name: str) -> float | None:
        """A scalar metric by name (``nll``, ``active_units``, ``gen_fd``...): a finite float or None."""
        if name.startswith(GEN_PREFIX):
            value = self.generation.get(name)
        elif name in _SCALARS:
            value = getattr(self, name)
        else:
            value = self.extra.get(name)
        if value is None or isinstance(value, (str, list, dict)):
            return None
        try:
            f = float(value)
        except (TypeError, ValueError):
            return None
        return f if math.isfinite(f) else None

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON form: ``trial``, the fields (None left out), then ``gen_*`` and extra keys."""
        out: dict[str, Any] = {"trial": self.trial}
        for f in fields(self):
            if f.name in ("generation", "extra"):
                continue
            v = getattr(self, f.name)
            if f.name == "status":
                v = self.status.value
            elif v is None or v == [] or (f.name == "reason" and v == "") or (f.name == "nested" and not v):
                continue
            out[f.name] = list(v) if isinstance(v, list) else v
        out.update(self.generation)
        out.update(self.extra)
        return out

    def flat(self) -> dict[str, Any]:
        """``to_dict`` without list- or dict-valued entries: one row of ``results.csv``."""
        return {k: v for k, v in self.to_dict().items() if not isinstance(v, (list, dict))}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrialRecord:
        """Read the flat form (``metrics.json``, a study attribute). Raises ``ValueError`` when it has no
        size, seed or a known status."""
        try:
            kw: dict[str, Any] = {"dim": int(d["dim"]), "seed": int(d["seed"]), "status": TrialStatus(d["status"])}
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a trial record ({e})") from e
        gen: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, v in d.items():
            if key in ("dim", "seed", "status", "trial"):
                continue
            if key in _FIELDS:
                kw[key] = v
            elif key.startswith(GEN_PREFIX):
                gen[key] = v
            else:
                extra[key] = v
        if kw.get("reason") is None:
            kw["reason"] = ""
        if kw.get("nested") is None:
            kw["nested"] = False
        for key in LIST_FIELDS:
            if kw.get(key) is None:
                kw[key] = []
        return cls(**kw, generation=gen, extra=extra)


_FIELDS = {f.name for f in fields(TrialRecord)} - {"generation", "extra"}
_SCALARS = _FIELDS - set(LIST_FIELDS) - {"status", "reason", "dim", "seed"} | {"dim", "seed"}


@dataclass(frozen=True)
class Column:
    """A column of the results table: the record key, its short header (terminal, ``zdim info``), its
    long header (the report) and its format spec (``format(value, fmt)``; ``d`` for counts)."""

    key: str
    short: str
    long: str
    fmt: str


COLUMNS = {
    c.key: c
    for c in (
        Column("trial", "trial", "trial", "s"),
        Column("dim", "dim", "size", "d"),
        Column("seed", "seed", "seed", "d"),
        Column("status", "status", "status", "s"),
        Column("nll", "NLL", "NLL (IWAE)", ".2f"),
        Column("neg_elbo", "-ELBO", "-ELBO", ".2f"),
        Column("rec", "rec", "reconstruction", ".2f"),
        Column("kl", "KL", "KL", ".2f"),
        Column("active_units", "active", "active units", "d"),
        Column("mse", "MSE", "MSE", ".4f"),
        Column("best_epoch", "best", "best epoch", "d"),
        Column("epochs_run", "epochs", "epochs", "d"),
        Column("gen_fd", "FD", "Frechet distance", ".2f"),
        Column("gen_precision", "prec", "precision", ".2f"),
        Column("gen_recall", "recall", "recall", ".2f"),
        Column("gen_mmd", "MMD", "MMD", ".3f"),
        Column("gen_probe_acc", "probe", "probe accuracy", ".2f"),
        Column("train_seconds", "train s", "train s", ".1f"),
    )
}
# the columns each table shows, in order
TERMINAL_COLUMNS = (
    "dim", "seed", "nll", "neg_elbo", "rec", "kl", "active_units", "mse", "epochs_run",
    "gen_fd", "gen_precision", "gen_recall", "gen_mmd", "gen_probe_acc", "train_seconds", "status",
)  # fmt: skip
REPORT_COLUMNS = (
    "trial", "dim", "seed", "status", "nll", "neg_elbo", "rec", "kl", "active_units", "best_epoch", "epochs_run",
    "train_seconds",
)  # fmt: skip


def format_value(value: Any, fmt: str) -> str:
    """A table cell: ``-`` for a missing value, a count without decimals, else ``format(value, fmt)``."""
    if value is None or value == "" or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if fmt == "d" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"
    try:
        return format(value, fmt) if fmt != "s" else str(value)
    except (ValueError, TypeError):
        return str(value)


def sort_records(records: list[TrialRecord]) -> list[TrialRecord]:
    """Records by size, then seed."""
    return sorted(records, key=lambda r: r.key)


__all__ = [
    "TrialRecord",
    "TrialStatus",
    "trial_name",
    "sort_records",
    "LIST_FIELDS",
    "OBJECTIVES",
    "Column",
    "COLUMNS",
    "TERMINAL_COLUMNS",
    "REPORT_COLUMNS",
    "format_value",
]
