"""`python -m orchestrator ...` is `ghostsweep ...`, for a checkout that is not pip-installed."""

import sys

from orchestrator.cli import main

sys.exit(main())
