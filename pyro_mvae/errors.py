"""Every exception pyro_mvae raises on purpose, in one place.

The command line maps them to exit codes: the :class:`UserError` family (a bad setting, data,
run directory or pairing) to 2 with the message alone, :class:`Interrupted` to 128 + signal,
:class:`Diverged` and :class:`JobsFailed` to 1, :class:`TimeLimitReached` to 3.
"""


class UserError(ValueError):
    """Something the user gave that cannot be used; the message names it and the fix."""


class ConfigError(UserError):
    """A configuration value of the wrong type or out of range, or a key the chosen component
    does not have; the message names the setting and the valid values or keys."""


class UnknownNameError(ConfigError):
    """A configuration named a component that is not registered."""


class PluginError(ConfigError):
    """A component of an installed package that cannot be used: its entry point failed to load
    or to register. Raised when the component is named or its kind is listed (never on import);
    the message names the entry point, the package, the error and the fix."""


class PairingError(UserError):
    """Components that make no valid bound together (a prior and a guide, or an objective and
    the model); the message names the capability that is missing."""


class DataError(UserError):
    """Input data that the model cannot score."""


class DataNotFoundError(DataError):
    """Dataset files that are absent and could not be downloaded."""


class RunError(UserError):
    """A run directory that cannot be used: missing, corrupted or from an incompatible version."""


class NonFiniteStep(FloatingPointError):
    """A step whose loss or gradient is not finite; raised before the optimiser moves anything."""

    def __init__(self, loss: float, grad_sum: float):
        super().__init__(f"non-finite step: loss {loss}, sum of the gradients {grad_sum}")
        self.loss, self.grad_sum = loss, grad_sum


class Diverged(FloatingPointError):
    """Training stopped at a step whose loss or gradient was not finite."""


class JobsFailed(Exception):
    """A sweep whose launcher returned with jobs failed or not run; its record names them."""


class Interrupted(Exception):
    """Training stopped by a signal after writing ``last.pt``; ``signum`` is the signal."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum


class TimeLimitReached(Exception):
    """Training stopped at ``trainer.max_time`` after writing ``last.pt``: not finished, and the
    message says the command that continues it."""
