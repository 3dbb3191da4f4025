"""The arguments several commands share, declared once: the backend override (submit, rerun, extend)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ghostsweep.orchestrator.backends import BACKEND_MODULES

DEFAULT_RUNS_DIR = Path("runs")


def add_backend_arguments(parser: argparse.ArgumentParser, overridden: str) -> None:
    """--backend and --backend-option; `overridden` names whose backend they override (the spec's, the sweep's)."""
    parser.add_argument("--backend", choices=tuple(BACKEND_MODULES), help=f"override the {overridden}'s backend")
    parser.add_argument("--backend-option", action="append", default=[], metavar="KEY=VALUE",
                        help="override one backend option for this run (VALUE as JSON, else a string); "
                             "repeatable; e.g. address=ray://HOST:10001 for the ray backend")


def backend_option_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """--backend-option KEY=VALUE pairs as a mapping laid over the backend's options (checked by the backend)."""
    overrides = {}
    for pair in args.backend_option:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--backend-option: expected KEY=VALUE, got {pair!r}")
        try:
            overrides[key] = json.loads(text)
        except json.JSONDecodeError:
            overrides[key] = text
    return overrides
