"""Errors a user can fix (bad params, files, datasets) versus bugs.

A :class:`UserError` is reported as one line naming the problem and exits non-zero;
anything else is a bug and keeps its full traceback.
"""

import re
from collections.abc import Callable


class UserError(Exception):
    """A mistake in the user's input: params, files, datasets, checkpoints."""


class ConfigError(UserError):
    """A params.yaml key is unknown, missing, ill-typed or out of range."""


class SettingError(ConfigError):
    """A setting's value that the library cannot use, named by the library's own name for it
    (``precision``): the library does not know which params.yaml key the value came from. The
    application does, and reports the error under that key (:meth:`keyed`). ``problem`` may name
    other settings as ``{name}`` (``"... or set {download} to true"``): they are keyed alike."""

    def __init__(self, setting: str, problem: str):
        super().__init__(setting, problem)  # its args: it crosses process pools as it was raised
        self.setting, self.problem = setting, problem

    def __str__(self) -> str:
        return self.named(lambda name: name)

    def named(self, key: Callable[[str], str]) -> str:
        """The message with each setting's name given by ``key``."""
        return f"{key(self.setting)} " + re.sub(r"\{(\w+)\}", lambda m: key(m.group(1)), self.problem)

    def keyed(self, key: Callable[[str], str]) -> ConfigError:
        """The same error, each setting named by the params key its value came from
        (``key("precision") == "train.precision"``)."""
        return ConfigError(self.named(key))
