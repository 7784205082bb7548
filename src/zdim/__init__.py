"""zdim: find and tune the bottleneck (latent dimension) of a Variational Autoencoder.

The public API is what ``__all__`` lists. Names are imported on first use (PEP 562), so ``import zdim``
and ``zdim --help`` do not import torch, Optuna or scikit-learn.
"""

from __future__ import annotations

import os as _os
from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._version import __version__

# OpenMP threads that wait by spinning collapse when the cores are shared with other busy processes
# (benchmarks/bench_train.py --levers: fit trained 25x slower with OMP_WAIT_POLICY=ACTIVE than PASSIVE
# beside other busy jobs on 2 cores; docs/performance.md, "Levers"). Passive waiting keeps them fast
# there. It takes effect only when torch is first imported after this line (the `zdim` command, spawned
# workers); a value already set wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# public name -> module that defines it (the layering test reads this table)
LAZY = {
    "Data": "data.dataset",
    "load_data": "data.dataset",
    "ZdimError": "errors",
    "UnsettledAnswerWarning": "errors",
    "DataNoteWarning": "errors",
    "evaluate": "evaluation.metrics",
    "VAE": "models.vae",
    "VAEConfig": "models.vae",
    "Recommendation": "answer.recommendation",
    "recommend": "answer.rules",
    "load_model": "saved",
    "SavedModel": "saved",
    "Preprocessing": "data.preprocessing",
    "SweepConfig": "sweeps.planning.config",
    "SweepResult": "sweeps.records.result",
    "sweep": "api",
    "TrainConfig": "training.config",
    "fit": "training.trainer",
    "tune": "tuning",
    "TuneResult": "tuning",
    "build_report": "report",
    "estimate_intrinsic_dim": "evaluation.intrinsic",
    "IntrinsicDim": "evaluation.intrinsic",
    "VAETransformer": "estimator",
    "TrialRecord": "records",
    "TrialStatus": "records",
    "RunDir": "sweeps.records.runs",
}

if TYPE_CHECKING:
    from .answer.recommendation import Recommendation
    from .answer.rules import recommend
    from .api import sweep
    from .data.dataset import Data, load_data
    from .data.preprocessing import Preprocessing
    from .errors import DataNoteWarning, UnsettledAnswerWarning, ZdimError
    from .estimator import VAETransformer
    from .evaluation.intrinsic import IntrinsicDim, estimate_intrinsic_dim
    from .evaluation.metrics import evaluate
    from .models.vae import VAE, VAEConfig
    from .records import TrialRecord, TrialStatus
    from .report import build_report
    from .saved import SavedModel, load_model
    from .sweeps.planning.config import SweepConfig
    from .sweeps.records.result import SweepResult
    from .sweeps.records.runs import RunDir
    from .training.config import TrainConfig
    from .training.trainer import fit
    from .tuning import TuneResult, tune


def __getattr__(name: str) -> Any:
    module = LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zdim' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *LAZY])


__all__ = [
    "Data",
    "load_data",
    "ZdimError",
    "UnsettledAnswerWarning",
    "DataNoteWarning",
    "evaluate",
    "VAE",
    "VAEConfig",
    "Recommendation",
    "recommend",
    "load_model",
    "SavedModel",
    "Preprocessing",
    "SweepConfig",
    "SweepResult",
    "sweep",
    "TrainConfig",
    "fit",
    "tune",
    "TuneResult",
    "build_report",
    "estimate_intrinsic_dim",
    "IntrinsicDim",
    "VAETransformer",
    "TrialRecord",
    "TrialStatus",
    "RunDir",
    "__version__",
]
