"""Typed errors raised by the library.

Every error a user can cause is a subclass of :class:`UmsnError`. Its message is a
single line that says what went wrong *and what to do about it*; the CLI prints it
as is and exits with :attr:`UmsnError.exit_code`, showing a traceback only with
``--debug``. Library callers can catch the specific subclasses, or the builtin each
also is (as huggingface_hub's errors are): a :class:`UsageError` is a ``ValueError``,
an :class:`ImageError` an ``OSError``, :class:`DownloadError` and
:class:`OfflineError` are ``ConnectionError``, and so on.
"""

from __future__ import annotations


def one_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's text squeezed onto one line (and shortened), for our messages.

    Messages must be one line; errors from torch, Pillow or the OS often span several.
    """
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class UmsnError(Exception):
    """Base class: a one-line, actionable message and a process exit code."""

    exit_code: int = 1


class UsageError(UmsnError, ValueError):
    """The command line or API call asked for something impossible (exit 2)."""

    exit_code = 2


class DatasetMissingError(UsageError):
    """A named test set is not on this machine (they cannot be downloaded; exit 2)."""


class ImageError(UmsnError, OSError):
    """An input image cannot be read, or an output cannot be written."""


class UnknownWeightsError(UsageError):
    """``--model`` names no weights id, config, imported id or file (exit 2)."""


class ManifestError(UmsnError):
    """The weights manifest is malformed, or names an entry that does not exist."""


class WeightsError(UmsnError):
    """Weights cannot be found, fetched, verified or loaded."""


class HashMismatchError(WeightsError, ValueError):
    """A weights file does not have the size or sha256 its manifest entry records."""


class DownloadError(WeightsError, ConnectionError):
    """A download failed after its retries (network error, HTTP error, stall)."""


class OfflineError(WeightsError, ConnectionError):
    """Weights are needed from the network but offline mode forbids opening a socket."""


class BackendUnavailableError(UmsnError, RuntimeError):
    """An inference backend or device was asked for but cannot run on this machine.

    A usage error (exit 2): the command asked for something this machine cannot do,
    and another ``--backend`` or ``--device`` is the fix.
    """

    exit_code = 2


class MissingExtraError(UmsnError, ImportError):
    """An optional feature needs packages from an extra (``umsn[...]``) that are not installed."""


class TrainingDiverged(UmsnError):
    """The loss kept going NaN or spiking after every roll-back to the last checkpoint."""


class Terminated(BaseException):
    """SIGTERM arrived: unwinds like Ctrl-C, so every temporary file is removed."""
