"""``python -m fcnn ...`` runs the ``fcnn`` command line."""

import sys

from fcnn.cli import main

sys.exit(main())
