"""``python -m mgbench.cli``: the ``mgbench`` command."""

import sys

from . import main

sys.exit(main())
