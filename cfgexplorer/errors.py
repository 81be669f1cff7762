"""One exception family per kind of user mistake.

Each message is one sentence that names the input and the fix. The CLI turns
a :class:`UserError` into one line on stderr and exit status 2; the dashboard
shows it as an alert.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in what the user asked for, as opposed to a bug."""


class UnknownModelError(UserError):
    """The model reference resolves to nothing: not local, not bundled, not on the Hub."""


class HubUnavailableError(UnknownModelError):
    """The Hub is offline, unreachable or too slow, and nothing about the model is cached."""


class GatedModelError(UserError):
    """The Hub refused access to the repository (gated or private)."""


class ModelConfigError(UserError):
    """A config file exists but cannot be read as a model architecture."""


class UnsupportedArchitectureError(UserError):
    """The config is readable but describes something the planner cannot model."""


class UnknownGPUError(UserError):
    """A GPU name that the catalog does not know."""


class InvalidDeploymentError(UserError):
    """Parallelism, lengths, dtypes or limits that vLLM would reject."""


class ReportFileError(UserError):
    """A benchmark result file that cannot be imported."""


class FleetFileError(UserError):
    """A fleet description with a mistake in it."""
