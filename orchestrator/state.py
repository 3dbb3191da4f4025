"""A trial's state, derived from the files in its folder only, so any process on any node can read it.

    result.json done                               -> done
    fresh lease heartbeat                          -> running
    result.json failed / interrupted, not requeued -> failed (reason) / preempted
    queued.json                                    -> queued
    otherwise                                      -> pending

"Requeued" means queued.json's `submitted_at` is newer than result.json: a rerun that has not started yet.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ghostsweep.orchestrator.lease import is_fresh
from ghostsweep.trials.trialdir import (
    LEASE_FILE,
    QUEUED_FILE,
    RESULT_FILE,
    Outcome,
    ProgressRecord,
    QueuedRecord,
    TrialResult,
    TrialStatus,
    read_json,
    read_progress,
    read_queued,
    read_result,
    write_queued,
)


@dataclass(frozen=True)
class TrialState:
    trial_id: str
    state: TrialStatus
    reason: str | None = None
    backend: str | None = None
    job_id: str | None = None
    attempt: int = 0
    progress: ProgressRecord | None = None
    result: TrialResult | None = None
    lease: dict[str, Any] | None = None
    node: str | None = None  # where it runs or ran: the lease's node, else the heartbeat's host (or the backend's)

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", TrialStatus(self.state))  # a plain "done" is accepted, and checked


def read_state(trial_dir: Path, now: float | None = None) -> TrialState:
    """ValueError (naming the file) when result.json, queued.json or progress.json is not what a writer wrote."""
    trial_dir = Path(trial_dir)
    result = read_result(trial_dir)
    queued = read_queued(trial_dir)
    lease = read_json(trial_dir / LEASE_FILE)
    progress = read_progress(trial_dir)
    common: dict[str, Any] = {
        "trial_id": trial_dir.name, "progress": progress, "result": result, "lease": lease,
        "node": (lease or {}).get("node") or (lease or {}).get("host") or (progress.host if progress else None),
    }
    if queued is not None:
        common |= {"backend": queued.backend, "job_id": queued.job_id, "attempt": queued.attempt}
    if result is not None and result.done:
        return TrialState(state=TrialStatus.DONE, **common)
    if is_fresh(lease, now):
        return TrialState(state=TrialStatus.RUNNING, **common)
    if result is not None and not _requeued(trial_dir, queued):
        if result.status is Outcome.INTERRUPTED:
            return TrialState(state=TrialStatus.PREEMPTED, reason=result.reason or "interrupted", **common)
        return TrialState(state=TrialStatus.FAILED, reason=result.reason or "failed", **common)
    return TrialState(state=TrialStatus.PENDING if queued is None else TrialStatus.QUEUED, **common)


def _requeued(trial_dir: Path, queued: QueuedRecord | None) -> bool:
    """A rerun that has not started yet: the submission is newer than the last attempt's result.json."""
    return queued is not None and queued.submitted_at > os.stat(trial_dir / RESULT_FILE).st_mtime


def mark_queued(trial_dir: Path, backend: str) -> None:
    """Record a submission before the backend places it, so a fast failure can never look older."""
    previous = read_queued(trial_dir)
    attempt = (previous.attempt if previous else 0) + 1
    write_queued(trial_dir, QueuedRecord(backend=backend, job_id=None, submitted_at=time.time(), attempt=attempt))


def record_job_id(trial_dir: Path, job_id: str) -> None:
    """Attach the backend's job id to the current submission (keeps `submitted_at`)."""
    queued = read_queued(trial_dir)
    if queued is not None and queued.job_id != job_id:
        write_queued(trial_dir, replace(queued, job_id=job_id))


def unqueue(trial_dir: Path) -> None:
    """A submission cancelled before it started: the trial is pending again."""
    (Path(trial_dir) / QUEUED_FILE).unlink(missing_ok=True)
