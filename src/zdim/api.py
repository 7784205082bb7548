"""The package-level ``zdim.sweep``: every option a typed keyword, the sweep, then its report.

``zdim.sweeps.execute.sweep`` is the orchestration (it takes a ``SweepConfig``); this module is the Python
user's door to it: its signature is explicit and typed (for IDEs), and each keyword is a row of the option
table (``zdim.options``), which checks the values, sends them where they go (``load_data``, ``Options``)
and writes the docstring's parameters. It runs the sweep and writes the report (which sits above the
search). zdim's messages name command-line flags (``fix --batch-size``); here they are rewritten
(``zdim.messages.python_message``) to name the keyword (``fix batch_size=``).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from numpy.typing import ArrayLike

from .answer.rules import DEFAULT_REL_TOL, DEFAULT_RULE
from .data.dataset import Data, load_data
from .errors import ZdimError
from .messages import python_message, warn_unsettled
from .options import parameters_doc, route
from .report import build_report
from .sweeps.execute import sweep as _sweep
from .sweeps.planning.config import SweepConfig
from .sweeps.planning.plan import CHECKPOINT_SECONDS, options_from
from .sweeps.records.result import SweepResult

if TYPE_CHECKING:
    import pandas as pd


def sweep(
    source: str | os.PathLike[str] | np.ndarray | torch.Tensor | pd.DataFrame | Data,
    dims: Sequence[int] | str | None = None,
    *,
    seeds: int | None = None,
    epochs: int | None = None,
    batch_size: int = 128,
    lr: float = 1e-3,
    beta: float = 1.0,
    warmup: float = 0.0,
    free_bits: float = 0.0,
    sigma_init: float | str = "auto",
    sigma_warmup: float | str = "auto",
    sigma_after: int | str = "auto",
    patience: int = 10,
    lr_patience: int = 5,
    epoch_steps: int | None = None,
    noise: str = "calibrated",
    hidden: Sequence[int] | None = None,
    arch: str | None = None,
    likelihood: str = "auto",
    k: int = 100,
    tolerance: float = DEFAULT_REL_TOL,
    rule: str = DEFAULT_RULE,
    stopping: str | None = None,
    refine: bool | None = None,
    nested: bool = False,
    model: str | type | None = None,
    mode: str | None = None,
    eval_samples: int | None = None,
    time_budget: float | None = None,
    checkpoint_every: float = CHECKPOINT_SECONDS,
    stack: bool | None = None,
    extend: bool = True,
    seed: int = 0,
    device: str = "auto",
    out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    resume: bool = False,
    extend_grid: bool = False,
    folds: int | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    workers: int = 1,
    backend: str = "local",
    address: str | None = None,
    prune: bool = False,
    progress: bool = False,
    report: bool = True,
    config: SweepConfig | None = None,
    label_column: str | None = None,
    keep_columns: Sequence[str] | str | None = None,
    max_samples: int | None = None,
    y: ArrayLike | None = None,
    test: str | os.PathLike[str] | np.ndarray | torch.Tensor | pd.DataFrame | None = None,
    array: str | None = None,
    layer: str | None = None,
    label_key: str | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    binarize: bool = False,
) -> SweepResult:
    """Train and evaluate one VAE per (latent size, seed), recommend a size, and write the report.

    Every option and the data are validated before anything is written; an error names the keyword
    to fix (``batch_size=``), and an unknown keyword is Python's own ``TypeError``.

    Parameters
    ----------
    source : path, embedded name, numpy.ndarray, torch.Tensor, pandas.DataFrame or zdim.Data
        The data, read by ``zdim.load_data`` (a ``Data`` is used as it is: the data keywords below are
        then ignored). ``"digits"`` is an embedded data set.
    {options}

    Returns
    -------
    SweepResult
        ``.recommended_dim``, ``.recommendation``, ``.table`` (pandas), ``.trials``, ``.run_dir``.

    Raises
    ------
    zdim.ZdimError
        ``DataError``, ``ConfigError``, ``RunDirError``...: one line naming the keyword to fix.

    Warns
    -----
    zdim.UnsettledAnswerWarning
        When the recommended size is not a settled answer (``recommendation.settled`` is False); the
        message gives the recommendation's warnings.
    """
    values = dict(locals())  # every keyword, each a row of the option table (tests/test_options.py)
    del values["source"]
    try:
        routed = route(values)  # checked in the table's order, before the data is read
        options = options_from(routed)
        loader = routed.loader()
        data = source if isinstance(source, Data) else load_data(source, **loader)
        result = _sweep(
            data, out=out, overwrite=overwrite, resume=resume, progress=progress, loader=loader, options=options
        )
        if report and result.run_dir is not None:
            build_report(result.run_dir)
    except ZdimError as e:
        e.args = (python_message(str(e)), *e.args[1:])
        raise
    warn_unsettled(result.recommendation)
    return result


# the parameters section: one entry per keyword, in the signature's order, from the option table
sweep.__doc__ = (sweep.__doc__ or "").replace(
    "{options}",
    parameters_doc(
        {k: p.annotation for k, p in inspect.signature(sweep).parameters.items() if k != "source"}, python_message
    ).strip(),
)


__all__ = ["sweep"]
