"""zdim: find and tune the bottleneck (latent dimension) of a Variational Autoencoder."""

from __future__ import annotations

__version__ = "0.1.0"

import os as _os

# OpenMP threads that wait by spinning collapse when the cores are shared with other busy processes
# (benchmarks/bench_train.py --levers: fit trained 25x slower with OMP_WAIT_POLICY=ACTIVE than PASSIVE
# beside other busy jobs on 2 cores; README, "Levers"). Passive waiting keeps them fast there. It
# takes effect only when torch is first imported after this line (the `zdim` command, spawned
# workers); a value already set wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .data import Data, load_data  # noqa: E402
from .errors import ZdimError  # noqa: E402
from .intrinsic import IntrinsicDim, estimate_intrinsic_dim  # noqa: E402
from .metrics import evaluate  # noqa: E402
from .models import VAE, VAEConfig  # noqa: E402
from .recommend import Recommendation, recommend  # noqa: E402
from .runs import load_model  # noqa: E402
from .report import build_report  # noqa: E402
from .search import SweepConfig, SweepResult  # noqa: E402
from .search import sweep as _sweep  # noqa: E402
from .train import TrainConfig, fit  # noqa: E402
from .tune import TuneResult, tune  # noqa: E402


def sweep(*args: object, report: bool = True, **kwargs: object) -> SweepResult:
    result = _sweep(*args, **kwargs)  # type: ignore[arg-type]
    if report and result.run_dir is not None:
        build_report(result.run_dir)
    return result


sweep.__doc__ = (
    (_sweep.__doc__ or "")
    + """
    With a run directory (``out``), ``report=True`` (default) also writes ``out/report.html``
    (``zdim.build_report(out)`` rebuilds it).
    """
)

from typing import TYPE_CHECKING, Any  # noqa: E402

if TYPE_CHECKING:
    from .estimator import VAETransformer


def __getattr__(name: str) -> Any:
    # VAETransformer loads scikit-learn's estimator machinery: only when asked for, not on `import zdim`.
    if name == "VAETransformer":
        from .estimator import VAETransformer

        return VAETransformer
    raise AttributeError(f"module 'zdim' has no attribute {name!r}")


__all__ = [
    "Data",
    "load_data",
    "ZdimError",
    "evaluate",
    "VAE",
    "VAEConfig",
    "Recommendation",
    "recommend",
    "load_model",
    "SweepConfig",
    "SweepResult",
    "sweep",
    "TrainConfig",
    "fit",
    "__version__",
    "tune",
    "TuneResult",
    "build_report",
    "estimate_intrinsic_dim",
    "IntrinsicDim",
    "VAETransformer",
]
