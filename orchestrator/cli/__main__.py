"""`python -m ghostsweep.orchestrator.cli`."""

import sys

from ghostsweep.orchestrator.cli import main

sys.exit(main())
