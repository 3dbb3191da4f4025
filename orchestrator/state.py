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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ghostsweep.orchestrator.lease import LEASE_FILE, is_fresh
from ghostsweep.trials.files import atomic_write_json, read_json

STATES = ("pending", "queued", "running", "done", "failed", "preempted")
QUEUED_FILE = "queued.json"
RESULT_FILE = "result.json"
PROGRESS_FILE = "progress.json"


@dataclass(frozen=True)
class TrialState:
    trial_id: str
    state: str
    reason: str | None = None
    backend: str | None = None
    job_id: str | None = None
    attempt: int = 0
    progress: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    lease: dict[str, Any] | None = None
    node: str | None = None  # where it runs or ran: the lease's node, else the heartbeat's host (or the backend's)


def read_state(trial_dir: Path, now: float | None = None) -> TrialState:
    trial_dir = Path(trial_dir)
    result = read_json(trial_dir / RESULT_FILE)
    queued = read_json(trial_dir / QUEUED_FILE) or {}
    lease = read_json(trial_dir / LEASE_FILE)
    progress = read_json(trial_dir / PROGRESS_FILE)
    common = {
        "trial_id": trial_dir.name, "backend": queued.get("backend"), "job_id": queued.get("job_id"),
        "attempt": queued.get("attempt", 0), "progress": progress, "result": result, "lease": lease,
        "node": (lease or {}).get("node") or (lease or {}).get("host") or (progress or {}).get("host"),
    }
    if result and result.get("status") == "done":
        return TrialState(state="done", **common)
    if is_fresh(lease, now):
        return TrialState(state="running", **common)
    if result and not (queued and queued["submitted_at"] > os.stat(trial_dir / RESULT_FILE).st_mtime):
        if result.get("status") == "interrupted":
            return TrialState(state="preempted", reason=result.get("reason") or "interrupted", **common)
        return TrialState(state="failed", reason=result.get("reason") or "failed", **common)
    return TrialState(state="queued" if queued else "pending", **common)


def mark_queued(trial_dir: Path, backend: str) -> None:
    """Record a submission before the backend places it, so a fast failure can never look older."""
    previous = read_json(trial_dir / QUEUED_FILE) or {}
    attempt = previous.get("attempt", 0) + 1
    atomic_write_json(trial_dir / QUEUED_FILE, {
        "backend": backend, "job_id": None, "submitted_at": time.time(), "attempt": attempt,
    })


def record_job_id(trial_dir: Path, job_id: str) -> None:
    """Attach the backend's job id to the current submission (keeps `submitted_at`)."""
    queued = read_json(trial_dir / QUEUED_FILE)
    if queued is not None and queued.get("job_id") != job_id:
        atomic_write_json(trial_dir / QUEUED_FILE, queued | {"job_id": job_id})


def unqueue(trial_dir: Path) -> None:
    """A submission cancelled before it started: the trial is pending again."""
    (trial_dir / QUEUED_FILE).unlink(missing_ok=True)


def record_failure(trial_dir: Path, reason: str) -> None:
    """result.json for a trial whose runner could not write one itself (crash before start, killed worker)."""
    atomic_write_json(trial_dir / RESULT_FILE, {
        "status": "failed", "reason": reason, "trial_id": Path(trial_dir).name, "finished_at": time.time(),
    })
