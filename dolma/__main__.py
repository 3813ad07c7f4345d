"""``python -m dolma``: the command line."""

import sys

from dolma.app.cli import main

sys.exit(main())
