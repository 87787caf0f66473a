"""Errors a user can fix (bad params, files, datasets) versus bugs.

A :class:`UserError` is reported as one line naming the problem and exits non-zero;
anything else is a bug and keeps its full traceback.
"""


class UserError(Exception):
    """A mistake in the user's input: params, files, datasets, checkpoints."""


class ConfigError(UserError):
    """A params.yaml key is unknown, missing, ill-typed or out of range."""
