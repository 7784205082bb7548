"""zdim: find and tune the bottleneck (latent dimension) of a Variational Autoencoder."""

from __future__ import annotations

__version__ = "0.1.0"

from .data import Data, load_data  # noqa: E402
from .errors import ZdimError  # noqa: E402
from .intrinsic import IntrinsicDim, estimate_intrinsic_dim  # noqa: E402
from .metrics import evaluate  # noqa: E402
from .models import VAE, VAEConfig  # noqa: E402
from .recommend import Recommendation, recommend  # noqa: E402
from .runs import load_model  # noqa: E402
from .search import SweepConfig, SweepResult, sweep  # noqa: E402
from .train import TrainConfig, fit  # noqa: E402
from .tune import TuneResult, tune  # noqa: E402

__all__ = [
    "Data", "load_data", "ZdimError", "evaluate", "VAE", "VAEConfig", "Recommendation", "recommend",
    "load_model", "SweepConfig", "SweepResult", "sweep", "TrainConfig", "fit", "__version__",
    "tune", "TuneResult", "estimate_intrinsic_dim", "IntrinsicDim",
]
