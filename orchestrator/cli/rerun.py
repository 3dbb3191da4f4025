"""`ghostsweep rerun`: resubmit failed or unfinished trials; each resumes from its checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from ghostsweep.orchestrator.cli.arguments import add_backend_arguments, backend_option_overrides
from ghostsweep.orchestrator.cli.submitting import _print_warnings, _submit
from ghostsweep.orchestrator.sweepdir.directory import SweepDir


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    rerun = subparsers.add_parser("rerun", help="resubmit failed/unfinished trials, resuming from checkpoints")
    rerun.add_argument("sweep_dir", type=Path, metavar="SWEEP_DIR", help="the sweep directory submit wrote")
    which = rerun.add_mutually_exclusive_group()
    which.add_argument("--failed", action="store_true", help="only failed and preempted trials")
    which.add_argument("--trial", action="append", default=[], metavar="ID", help="this trial (repeatable)")
    add_backend_arguments(rerun, overridden="sweep")
    rerun.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ghostsweep.orchestrator.submission.sweep import (
        UNFINISHED,
        backend_for,
        check_sweep_data,
        collect_states,
        select_rerun,
    )

    sweep = SweepDir(args.sweep_dir)
    states, warnings = collect_states(sweep)
    _print_warnings(warnings)
    trial_ids = select_rerun(states, args.failed, args.trial)
    busy = [s.trial_id for s in states if s.state in UNFINISHED]
    if busy and not args.trial:
        print(f"left to their jobs: {len(busy)} trial(s) still queued or running (see `ghostsweep status`)")
    if not trial_ids:
        print("nothing to rerun")
        return 0
    backend = backend_for(sweep, args.backend, backend_option_overrides(args))
    backend.validate()
    _print_warnings(check_sweep_data(sweep, backend))
    heading = f"resubmitting {len(trial_ids)} trial(s) to {backend.name} (each resumes from its checkpoint):"
    return _submit(sweep, trial_ids, backend, heading)
