"""What submit, rerun and extend share once they know their trials: hand them to the backend, follow them, and
say how they ended."""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter
from typing import TYPE_CHECKING

from ghostsweep.orchestrator.sweepdir.directory import SweepDir, linked_folder
from ghostsweep.trials.trialdir import TrialStatus

if TYPE_CHECKING:
    from ghostsweep.orchestrator.backends.base import Backend, Submission

EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130, what a shell reports for Ctrl-C: `submit && report` stops


def _submit(sweep: SweepDir, trial_ids: list[str], backend: Backend, heading: str) -> int:
    """What submit, rerun and extend share: name the trials, hand them to the backend, report how they ended."""
    from ghostsweep.orchestrator.monitor.progress import SubmitProgress
    from ghostsweep.orchestrator.submission.sweep import submit_trials

    linked = {t: folder for t in trial_ids if (folder := linked_folder(sweep.trial_dir(t)))}
    _print_warnings([f"left out {t}: {folder} is a symbolic link (it may point anywhere; nothing is written through "
                     "it): put its own folder there" for t, folder in linked.items()])
    trial_ids = [t for t in trial_ids if t not in linked]
    if not trial_ids:
        return 1
    unwritable = [t for t in trial_ids if sweep.trial_dir(t).is_dir() and not os.access(sweep.trial_dir(t), os.W_OK)]
    if unwritable:
        raise ValueError(f"{sweep.trial_dir(unwritable[0])}: not writable ({len(unwritable)} trial folder(s)); "
                         f"a trial's worker writes its files there")
    _print_warnings(provenance_warnings(sweep, trial_ids))
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


def provenance_warnings(sweep: SweepDir, trial_ids: list[str]) -> list[str]:
    """Before submitting: the code, torch and CUDA versions these trials would run with (this checkout and this
    environment) against those of the sweep's done trials (any row may be compared with any other), and how to
    proceed. cuDNN, the device and the GPU model are known only once a trial runs: the report flags those."""
    from ghostsweep.orchestrator.sweepdir.cache import read_trials
    from ghostsweep.trials.provenance import UNKNOWN, clean, code_version, torch_build

    submitted = set(trial_ids)
    done = [read.state.result for trial_id, read in zip(sweep.index().trial_ids, read_trials(sweep), strict=True)
            if trial_id not in submitted and read.state.state == TrialStatus.DONE and read.state.result is not None]
    if not done:
        return []
    code, torch = code_version(), torch_build()
    other_code = Counter(r.code_version or UNKNOWN for r in done if clean(r.code_version or UNKNOWN) != clean(code))
    warnings = []
    if other_code:
        warnings.append(
            f"these trials run code {code}, but {other_code.total()} done trial(s) ran other code ("
            + ", ".join(f"{v}: {n}" for v, n in other_code.items()) + "): the report calls a row that mixes them "
            f"not comparable. To put every row on this code, run `ghostsweep rerun {sweep.root} --stale` once "
            f"these are done (it retrains those {other_code.total()} afresh under it); or submit from the done "
            f"trials' code instead (`ghostsweep cancel {sweep.root}` stops what was submitted)")
    elif code.endswith("-dirty"):
        warnings.append(
            f"these trials run code {code}: uncommitted changes, which result.json cannot tell from the done "
            "trials' code or from other uncommitted changes, so the report only flags the rows (⚠ dirty tree). "
            "Commit the changes first to keep the code identifiable")
    for word, current, recorded in (("torch", torch.version, lambda r: r.torch_version),
                                    ("CUDA", torch.cuda, lambda r: r.cuda_version)):
        if current is None or current == UNKNOWN:  # not known here (or a CPU-only build): nothing to compare
            continue
        other = Counter(value for r in done if (value := recorded(r)) is not None and value != current)
        if other:  # a result that did not record it is no evidence of a difference
            warnings.append(
                f"these trials run {word} {current} (this environment's), but {other.total()} done "
                "trial(s) ran " + ", ".join(f"{v} ({n})" for v, n in other.items()) + ": the report flags the "
                "rows that mix them (a warning, not a verdict); to avoid it, submit from the done trials' "
                "environment")
    return warnings


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
