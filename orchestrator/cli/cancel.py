"""`ghostsweep cancel`: stop every queued or running trial of a sweep (running ones checkpoint first)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ghostsweep.orchestrator.cli.submitting import _print_warnings
from ghostsweep.orchestrator.sweepdir.directory import SweepDir


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    cancel = subparsers.add_parser("cancel", help="stop every queued or running trial (checkpoints are kept)")
    cancel.add_argument("sweep_dir", type=Path, metavar="SWEEP_DIR", help="the sweep directory submit wrote")
    cancel.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ghostsweep.orchestrator.submission.sweep import cancel_sweep, collect_states

    sweep = SweepDir(args.sweep_dir)
    states, warnings = collect_states(sweep)
    _print_warnings(warnings)
    cancelled = cancel_sweep(sweep, states)
    print(f"cancelled {len(cancelled)} trial(s)" if cancelled else "nothing queued or running")
    for trial_id in cancelled:
        print(f"  {trial_id}")
    return 0
