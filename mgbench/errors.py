"""Errors that mgbench raises for bad input or missing resources.

Every message names the problem and the fix; the CLI prints it as one line and exits 2.
"""


class MgbenchError(Exception):
    """Base class: a user-facing error with a message that says what to do."""


class UnknownNameError(MgbenchError, KeyError):
    """An unknown concept, model, site component or similar name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class MissingWeightsError(MgbenchError):
    """Model or classifier weights are not available locally (and cannot be downloaded)."""


class SiteError(MgbenchError, ValueError):
    """A site (layer, component) that does not exist in the loaded model."""


class ConfigError(MgbenchError, ValueError):
    """An invalid setting or data file."""


def unknown(kind: str, name: object, valid: "list[str] | tuple[str, ...]", hint: str = "") -> UnknownNameError:
    """Build the standard 'unknown X' error listing the valid choices."""
    msg = f"unknown {kind} {name!r}; valid: {', '.join(map(str, valid))}"
    return UnknownNameError(msg + (f". {hint}" if hint else ""))
