"""`python -m ghostsweep ...` is `ghostsweep ...`."""

import sys

from ghostsweep.orchestrator.cli import main

sys.exit(main())
