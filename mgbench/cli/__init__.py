"""The ``mgbench`` command line (for now all in ``commands``). Imports every layer below; nothing imports it."""

from .commands import *  # noqa: F403
