"""`ghostsweep rerun`: resubmit failed or unfinished trials (each resumes from its checkpoint), or with `--stale`
retrain the done trials of another code version from scratch."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ghostsweep.orchestrator.cli.arguments import add_backend_arguments, backend_option_overrides
from ghostsweep.orchestrator.cli.submitting import _print_warnings, _submit
from ghostsweep.orchestrator.sweepdir.directory import SweepDir
from ghostsweep.trials.provenance import clean, code_version
from ghostsweep.trials.trialdir import TrialStatus, set_aside_outcome

if TYPE_CHECKING:
    from ghostsweep.orchestrator.sweepdir.state import TrialState


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    rerun = subparsers.add_parser("rerun", help="resubmit failed/unfinished trials, resuming from checkpoints")
    rerun.add_argument("sweep_dir", type=Path, metavar="SWEEP_DIR", help="the sweep directory submit wrote")
    which = rerun.add_mutually_exclusive_group()
    which.add_argument("--failed", action="store_true", help="only failed and preempted trials")
    which.add_argument("--trial", action="append", default=[], metavar="ID", help="this trial (repeatable)")
    which.add_argument("--stale", action="store_true",
                       help="the done trials of another code version than this one: their result and checkpoints "
                            "are set aside (*.stale-N) and they train afresh, so every row runs one code version")
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
    trial_ids = stale_trials(states) if args.stale else select_rerun(states, args.failed, args.trial)
    busy = [s.trial_id for s in states if s.state in UNFINISHED]
    if busy and not args.trial:
        print(f"left to their jobs: {len(busy)} trial(s) still queued or running (see `ghostsweep status`)")
    if not trial_ids:
        print("nothing to rerun")
        return 0
    backend = backend_for(sweep, args.backend, backend_option_overrides(args))
    backend.validate()
    _print_warnings(check_sweep_data(sweep, backend))
    if args.stale:
        for trial_id in trial_ids:
            set_aside_outcome(sweep.trial_dir(trial_id), "stale")
        print(f"set aside the results and checkpoints of {len(trial_ids)} done trial(s) of other code versions "
              f"(*.stale-N): they train afresh under {code_version()}")
    how = "each trains afresh" if args.stale else "each resumes from its checkpoint"
    heading = f"resubmitting {len(trial_ids)} trial(s) to {backend.name} ({how}):"
    return _submit(sweep, trial_ids, backend, heading)


def stale_trials(states: list[TrialState]) -> list[str]:
    """The done trials whose result another commit produced (a dirty tree of this commit is not stale)."""
    current = clean(code_version())
    return [s.trial_id for s in states if s.state == TrialStatus.DONE and s.result is not None
            and clean(s.result.code_version or "") != current]
