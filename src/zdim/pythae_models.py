"""The name `--model zdim.pythae_models:PythaeVAE` users type (and saved models record): the Pythae
networks live in :mod:`zdim.models.pythae`."""

from .models.pythae import *  # noqa: F403
from .models.pythae import __all__  # noqa: F401
