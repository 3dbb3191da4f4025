"""`ghostsweep status`: counts per state, per-trial progress, ETA and failure reasons of a sweep."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ghostsweep.orchestrator.sweepdir.directory import SweepDir


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    status = subparsers.add_parser("status", help="counts per state, per-trial progress, ETA, failure reasons")
    status.add_argument("sweep_dir", type=Path, metavar="SWEEP_DIR", help="the sweep directory submit wrote")
    status.add_argument("--watch", action="store_true", help="refresh until no trial is queued or running")
    status.add_argument("--interval", type=float, default=10.0, help="seconds between refreshes (--watch)")
    status.add_argument("--all", action="store_true", help="list every trial, not only the interesting ones")
    status.add_argument("--json", action="store_true", help="machine-readable")
    status.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.live import Live

    from ghostsweep.orchestrator.monitor.status import render, summarize
    from ghostsweep.orchestrator.submission.sweep import UNFINISHED, collect_states

    if not args.interval > 0:
        raise ValueError(f"--interval: must be > 0 seconds, got {args.interval:g}")
    sweep = SweepDir(args.sweep_dir)
    index = sweep.index()
    states, warnings = collect_states(sweep, remember=True)
    if args.json:
        # strict JSON: a non-finite number was refused when read (its trial is unreadable, and says why)
        print(json.dumps(summarize(states, index) | {"warnings": warnings}, indent=2, allow_nan=False))
        return 0
    console = Console()
    console.width = max(console.width, 160)  # trial ids must not wrap, even when piped
    if not args.watch:
        console.print(render(states, index, warnings, args.all))
        return 0
    with Live(render(states, index, warnings, args.all), console=console, auto_refresh=False) as live:
        while any(s.state in UNFINISHED for s in states):
            time.sleep(args.interval)
            states, warnings = collect_states(sweep, remember=True)
            live.update(render(states, index, warnings, args.all), refresh=True)
    return 0
