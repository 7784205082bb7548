"""The package-level ``zdim.sweep``: every option a typed keyword, the sweep, then its report.

``zdim.search.sweep`` is the orchestration (it takes a ``SweepConfig``); this module is the Python
user's door to it: it reads the data (``zdim.load_data``), builds the ``TrainConfig`` and ``SweepConfig``
from plain keywords, runs the sweep and writes the report (which sits above the search). zdim's
messages name command-line flags (``fix --batch-size``); here they are rewritten
(``zdim.messages.python_message``) to name the keyword (``fix batch_size=``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from numpy.typing import ArrayLike

from .config import SweepConfig
from .data import Data, load_data
from .errors import ZdimError
from .grid import DimSpec
from .messages import python_message, warn_unsettled
from .plan import CHECKPOINT_SECONDS, Options
from .report import build_report
from .result import SweepResult
from .resume import check_extend_grid
from .rules import DEFAULT_REL_TOL, DEFAULT_RULE
from .search import sweep as _sweep
from .train import TrainConfig

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
    hidden: Sequence[int] | None = None,
    arch: str | None = None,
    likelihood: str = "auto",
    k: int = 100,
    tolerance: float = DEFAULT_REL_TOL,
    rule: str = DEFAULT_RULE,
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
    dims : sequence of int or str, optional
        Latent sizes (``[2, 4, 8]``, ``range(1, 17)`` or ``"1-16,32"``); default powers of two up to a few
        times the intrinsic dimension of the data.
    seeds : int, optional
        Independent trainings per size (seeds ``seed, seed+1, ...``); default 3 in settle mode, else 1.
    epochs, batch_size, lr, beta, warmup, free_bits, patience : training recipe (``zdim.TrainConfig``)
        Maximum epochs (default 500 in settle mode, where it is a cap, else 100), minibatch size,
        Adam learning rate, KL weight, KL warm-up length in epochs,
        free bits per unit in nats, early-stopping patience in epochs (0: never stop early).
    sigma_init, sigma_warmup, sigma_after : float, int or str
        Gaussian decoder only: the noise scale a model is given (a number per standardized feature, or
        ``"pca"``), the epochs it is held there before it is learned, and the epoch after which that
        happens to a model still ignoring its latents then (0: from the start, to every model);
        ``"auto"`` (default): 0.3, held 5 epochs, after epoch 4, on Gaussian data
        (``zdim.train.WAKEUP_DEFAULTS``); ``sigma_init=1.0, sigma_warmup=0`` turns it off.
    hidden : sequence of int, optional
        Hidden widths of the encoder of zdim's VAE (the decoder mirrors them); default ``(512, 256)``.
    arch : {"mlp", "conv"}, optional
        Network family of zdim's VAE (``conv`` for images); default ``"mlp"``. Neither applies to
        ``model``: giving them with it is an error.
    likelihood : {"auto", "bernoulli", "gaussian", "poisson", "nb", "continuous-bernoulli"}
        Decoder likelihood (see ``zdim.load_data``).
    k : int
        Importance samples of the held-out NLL.
    tolerance : float
        Relative NLL tolerance of the recommendation rule.
    rule : str
        Recommendation rule (see ``zdim.rules.RULES`` and docs/recommendation.md).
    refine : bool, optional
        Bisect between the sizes tried down to an exact answer; default True (False with ``nested``).
    nested : bool
        Train one nested VAE per seed at the largest size and cut every size out of it.
    model : class or str, optional
        Your own model (see "Your own model" in docs/guide.md): a class, ``"path/file.py:ClassName"``
        or ``"package.module:ClassName"``; default zdim's VAE (``hidden``/``arch`` do not apply to yours).
    mode : {"settle", "per-size", "nested"}, optional
        ``settle`` trains every (size, seed) together and stops once the answer has settled (``epochs``
        is then a cap); ``per-size`` trains one Optuna trial per (size, seed) to its own end; ``nested``
        is ``nested=True``. Default: settle (with ``workers > 1`` too: its members are spread over the
        worker processes), per-size where ``storage`` or ``prune`` needs one Optuna trial per point, or
        nested with ``nested=True``.
    time_budget : float, optional
        Settle mode only: seconds of training after which every member stops.
    checkpoint_every : float
        Settle mode: seconds between checkpoints of every member in the run directory (default 300), so
        a killed process loses at most that much training; an interrupt (Ctrl-C, SIGTERM) checkpoints
        first and raises ``zdim.errors.Interrupted``.
    stack : bool, optional
        Settle mode: train the members of one shape as one batched model; default on CUDA only.
    eval_samples : int, optional
        Evaluate every trial on this many test samples (one fixed random subset, the same for every
        trial) and the recommended size on the whole test split too (``recommendation.full_test``).
    extend : bool
        When the largest size tried is chosen with every unit active, add larger sizes and go on.
    seed : int
        Base seed (split, initialization, sampling).
    device : str
        ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    out : path, optional
        Run directory (every trial saved as it finishes, with ``report.html`` at the end); without it
        nothing is written.
    overwrite, resume : bool
        When ``out`` exists: replace it (only a folder zdim made), or finish its missing trials (a
        ``resume`` of a folder that holds no run, or with other data, sizes, seeds or settings than the
        run was made with, raises ``zdim.errors.RunDirError``).
    extend_grid : bool
        With ``resume``: also train sizes (or more ``seeds``) the run did not have.
    folds : int, optional
        Train the grid once per fold so that every row is held out once (``zdim.folds``); None (the
        default): 5 folds when the test split has fewer than 150 rows, else none; 0 or 1: none.
    storage, study_name : str, optional
        Optuna storage URL and study name, to share a sweep between workers or machines.
    workers : int
        Processes on this machine: settle mode spreads its members over them (one answer, decided in
        this process); per-size mode trains that many trials at once.
    backend : {"local", "ray"}
        Where the workers run: ``"local"``, processes on this machine; ``"ray"``, settle mode's member
        groups as Ray actors and per-size mode's workers as Ray tasks on a Ray cluster (``pip install
        'zdim[ray]'``; ``out`` on a path every node sees). This process decides, so the answer is the
        one-process answer.
    address : str, optional
        With ``backend="ray"``: the cluster to join (``"HOST:PORT"``); default a local Ray instance (or
        the connection this process already has).
    prune : bool
        Stop a seed early when it trails the other seeds of the same size.
    progress : bool
        Progress bars on stderr.
    report : bool
        With ``out``, write ``out/report.html`` (``zdim.build_report(out)`` rebuilds it).
    config : SweepConfig, optional
        Full control over the grid, architecture and training; when given it replaces ``seeds`` to
        ``model`` and ``seed``/``device`` of training (``dims`` still overrides its sizes).
    label_column, max_samples, layer, label_key, val_fraction, test_fraction : data options
        As in ``zdim.load_data``.
    binarize : bool
        Data in [0, 1]: fixed binarized validation and test splits and a fresh binary sample of every
        training batch (dynamically binarized MNIST, comparable with the literature).
    y : array-like, optional
        Labels of the samples of ``source`` (evaluation only), one per sample.
    test : path, array, tensor or DataFrame, optional
        Your own test split: same features, scaled and standardized like the training split.
    array : str, optional
        The array of an ``.npz`` file to read (e.g. ``"X_train"``); by default a file holding
        ``X_train`` and ``X_test`` gives the training samples and the test split.

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
    loader: dict[str, Any] = {
        "seed": seed,
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
        "label_column": label_column,
        "likelihood": likelihood,
        "max_samples": max_samples,
        "layer": layer,
        "label_key": label_key,
        "array": array,
        "test": test,
        "y": y,
        "binarize": binarize or None,
    }
    loader = {key: value for key, value in loader.items() if value is not None}
    try:
        check_extend_grid(extend_grid, resume)
        data = source if isinstance(source, Data) else load_data(source, **loader)
        options = Options(
            dims=DimSpec.of(dims) if dims else None,
            seeds=seeds,
            epochs=epochs,
            train=TrainConfig(
                batch_size=batch_size,
                lr=lr,
                beta=beta,
                warmup_epochs=warmup,
                free_bits=free_bits,
                sigma_init=sigma_init,
                sigma_warmup_epochs=sigma_warmup,
                sigma_after=sigma_after,
                patience=patience,
                seed=seed,
                device=device,
                binarize=binarize,
            ),
            hidden=None if hidden is None else tuple(hidden),
            arch=arch,
            k=k,
            tolerance=tolerance,
            model=model,
            eval_samples=eval_samples,
            config=config,
            mode=mode,
            nested=nested,
            rule=rule,
            refine=refine,
            extend=extend,
            extend_grid=extend_grid,
            folds=folds,
            time_budget=time_budget,
            prune=prune,
            workers=workers,
            backend=backend,
            address=address,
            storage=storage,
            study_name=study_name,
            checkpoint_every=checkpoint_every,
            stack=stack,
        )
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


__all__ = ["sweep"]
