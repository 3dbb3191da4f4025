"""What submit, rerun and extend share once they know their trials: hand them to the backend, follow them, and
say how they ended."""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter
from typing import TYPE_CHECKING

from ghostsweep.orchestrator.sweepdir.directory import SweepDir
from ghostsweep.trials.trialdir import TrialStatus

if TYPE_CHECKING:
    from ghostsweep.orchestrator.backends.base import Backend, Submission

EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130, what a shell reports for Ctrl-C: `submit && report` stops


def _submit(sweep: SweepDir, trial_ids: list[str], backend: Backend, heading: str) -> int:
    """What submit, rerun and extend share: name the trials, hand them to the backend, report how they ended."""
    from ghostsweep.orchestrator.monitor.progress import SubmitProgress
    from ghostsweep.orchestrator.submission.sweep import submit_trials

    unwritable = [t for t in trial_ids if sweep.trial_dir(t).is_dir() and not os.access(sweep.trial_dir(t), os.W_OK)]
    if unwritable:
        raise ValueError(f"{sweep.trial_dir(unwritable[0])}: not writable ({len(unwritable)} trial folder(s)); "
                         f"a trial's worker writes its files there")
    print(heading)
    for trial_id in trial_ids:
        print(f"  {trial_id}")
    try:
        with SubmitProgress(sweep, trial_ids, live=backend.waits_for_trials) as progress:
            submissions = submit_trials(sweep, trial_ids, backend, progress.job_started)
    except KeyboardInterrupt:
        print(f"interrupted: stopped trials kept their checkpoints; `ghostsweep rerun {sweep.root}` resumes every "
              f"trial that is not done (interrupted, never started, failed)", file=sys.stderr)
        return EXIT_INTERRUPTED
    progress.print_jobs(submissions)
    return _after_submission(sweep, submissions, backend.waits_for_trials)


def _after_submission(sweep: SweepDir, submissions: list[Submission], ended: bool) -> int:
    """How the trials stand; for a blocking backend (`ended`) they have ended, so exit 1 if any failed. One
    still running then was skipped by our worker: another live worker holds its lease, which is no failure."""
    from ghostsweep.orchestrator.sweepdir.state import read_state

    states = Counter(read_state(sweep.trial_dir(s.trial_id)).state for s in submissions)
    words = {TrialStatus.RUNNING: "already running elsewhere"} if ended else {}
    print(", ".join(f"{n} {words.get(state, state)}" for state, n in states.items())
          + f"; see `ghostsweep status {sweep.root}`")
    return 1 if states.get(TrialStatus.FAILED) or states.get(TrialStatus.UNREADABLE) else 0


def _print_warnings(warnings: list[str]) -> None:
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
