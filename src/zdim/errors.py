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


class UnsettledAnswerWarning(UserWarning):
    """``zdim.sweep`` or ``VAETransformer(latent_dim="auto")`` recommends a size whose answer is not settled
    (``Recommendation.settled`` is False): the message gives the size and the recommendation's warnings.
    Turn it into an error with ``warnings.simplefilter("error", zdim.UnsettledAnswerWarning)``."""


class DataNoteWarning(UserWarning):
    """``zdim.load_data`` (and ``zdim.sweep``) read a table and did something the caller should hear: a
    column holding one value dropped, a numeric column with two values modelled as yes/no, a separator
    other than the comma found. One warning per note; ``Data.extra["notes"]`` holds them too."""


class Interrupted(KeyboardInterrupt):
    """A sweep stopped by SIGINT (Ctrl-C) or SIGTERM after saving what it could; the message says what was
    saved and how to go on. A ``KeyboardInterrupt``, so code that stops on Ctrl-C stops on it too; the
    command line prints it on one line and exits with ``128 + signal``."""

    def __init__(self, message: str, signum: int = 2, epoch: int = 0):
        super().__init__(message)
        self.signum, self.epoch = signum, epoch
