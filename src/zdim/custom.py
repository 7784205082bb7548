"""Models zdim builds from what a run directory saved: zdim's own ``VAE`` today.

``build_from_meta`` and ``model_meta`` are the seam through which a saved model names the class that
made it, and through which loading rebuilds it (only with ``trust_code=True`` when that means importing
the user's code).
"""

from __future__ import annotations

from typing import Any

from .models import VAE, VAEConfig


def model_meta(model: VAE) -> dict[str, Any]:
    """What ``model.json`` records beyond the config to rebuild ``model`` (nothing for zdim's ``VAE``)."""
    return {}


def build_from_meta(meta: dict[str, Any], *, trust_code: bool = False) -> VAE:
    """An untrained model of the architecture ``meta`` (a ``model.json``) describes."""
    return VAE(VAEConfig.from_dict(meta["config"]))


__all__ = ["model_meta", "build_from_meta"]
