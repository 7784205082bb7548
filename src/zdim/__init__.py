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
    "Data": "data",
    "load_data": "data",
    "ZdimError": "errors",
    "UnsettledAnswerWarning": "errors",
    "evaluate": "metrics",
    "VAE": "models",
    "VAEConfig": "models",
    "Recommendation": "recommendation",
    "recommend": "rules",
    "load_model": "saved",
    "SavedModel": "saved",
    "Preprocessing": "preprocessing",
    "SweepConfig": "config",
    "SweepResult": "result",
    "sweep": "api",
    "TrainConfig": "train",
    "fit": "train",
    "tune": "tuning",
    "TuneResult": "tuning",
    "build_report": "report",
    "estimate_intrinsic_dim": "intrinsic",
    "IntrinsicDim": "intrinsic",
    "VAETransformer": "estimator",
    "TrialRecord": "records",
    "TrialStatus": "records",
    "RunDir": "runs",
}

if TYPE_CHECKING:
    from .api import sweep
    from .config import SweepConfig
    from .data import Data, load_data
    from .errors import UnsettledAnswerWarning, ZdimError
    from .estimator import VAETransformer
    from .intrinsic import IntrinsicDim, estimate_intrinsic_dim
    from .metrics import evaluate
    from .models import VAE, VAEConfig
    from .preprocessing import Preprocessing
    from .recommendation import Recommendation
    from .records import TrialRecord, TrialStatus
    from .report import build_report
    from .result import SweepResult
    from .rules import recommend
    from .runs import RunDir
    from .saved import SavedModel, load_model
    from .train import TrainConfig, fit
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
