"""``python -m dlcore.cli``: the same as the ``dlcore`` command."""

import sys

from dlcore.cli.main import main

sys.exit(main())
