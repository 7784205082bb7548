"""The zdim exception hierarchy.

Every error a user can cause is a ``ZdimError``. Leaves also subclass the builtin a Python user would
catch (``DataError`` is a ``ValueError``), and each message names the bad value, what was expected and
the flag or call that fixes it. The CLI prints ``str(err)`` on one line and exits with code 2.
"""

from __future__ import annotations


class ZdimError(Exception):
    """Base class of every error zdim raises on purpose."""


class DataError(ZdimError, ValueError):
    """The data source is missing, unreadable, malformed or unsuitable."""


class ConfigError(ZdimError, ValueError):
    """A configuration value (latent size, epochs, beta, ...) is out of its allowed range."""


class RunDirError(ZdimError, FileExistsError):
    """The run directory exists, is incomplete, or does not match the request."""


class ModelFileError(ZdimError, ValueError):
    """A saved model is missing, truncated or inconsistent with its config."""


class TrainingDiverged(ZdimError, ArithmeticError):
    """Training produced a NaN or infinite loss; the message says at which epoch and step."""


class WorkerError(ZdimError, RuntimeError):
    """A worker process died outside a trial (killed, out of memory); finished trials are saved."""


class ResultFileError(ZdimError, ValueError):
    """A saved sweep result (JSON) is missing, unreadable or not a zdim sweep result."""
