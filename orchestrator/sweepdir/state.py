"""A trial's state, derived from the files in its folder only, so any process on any node can read it.

    result.json or queued.json unreadable          -> unreadable (the file, and what to do)
    result.json done                               -> done
    fresh lease                                    -> running
    result.json failed / interrupted, not requeued -> failed (reason) / preempted
    queued.json                                    -> queued
    otherwise                                      -> pending

"Requeued" means queued.json is newer than result.json: a rerun that has not started yet. Both ages are file
mtimes, stamped by the one filesystem (queued.json keeps its mtime when the job id is attached), never times
written by the submitting machine. A corrupt file stays in its trial: every other trial reads normally.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ghostsweep.orchestrator.sweepdir.directory import SweepDir, linked_folder
from ghostsweep.orchestrator.sweepdir.lease import is_fresh, read_lease
from ghostsweep.trials.trialdir import (
    LEASE_FILE,
    LEASE_LOG,
    PROGRESS_FILE,
    QUEUED_FILE,
    RESULT_FILE,
    Outcome,
    ProgressRecord,
    QueuedRecord,
    TrialResult,
    TrialStatus,
    read_progress,
    read_queued,
    read_result,
    set_aside,
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
    node: str | None = None  # where it runs or ran: the lease's node, else result.json's, else the heartbeat's host

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", TrialStatus(self.state))  # a plain "done" is accepted, and checked


def read_state(trial_dir: Path, now: float | None = None) -> TrialState:
    """The trial's state; a result.json or queued.json that is not what a writer wrote makes it `unreadable`,
    naming the file and what to do (a bad progress.json only hides the progress). `now`: the filesystem's clock
    (`lease.filesystem_now`), to probe it once for many trials."""
    folder = os.path.normpath(trial_dir)  # a str: status over 10⁴ trials spends a fifth of its time in Path
    linked = linked_folder(folder)
    if linked:  # its files would be read from wherever it points
        return TrialState(trial_id=os.path.basename(folder), state=TrialStatus.UNREADABLE,
                          reason=f"{linked} is a symbolic link, refused (it may point anywhere): put the "
                          f"{'trial' if linked == folder else 'sweep'}'s own folder there")
    present = _present(folder)
    lease = read_lease(folder) if LEASE_FILE in present else None
    progress = _readable(read_progress, folder) if PROGRESS_FILE in present else None
    common: dict[str, Any] = {"trial_id": os.path.basename(folder), "progress": progress, "lease": lease}
    try:
        result = read_result(folder) if RESULT_FILE in present else None
        done = result is not None and result.done
        queued = None
        if QUEUED_FILE in present:
            queued = _readable(read_queued, folder) if done else read_queued(folder)  # done: only shown
    except (ValueError, OSError) as error:
        node = (lease or {}).get("node") or (lease or {}).get("host") or (progress.host if progress else None)
        return TrialState(state=TrialStatus.UNREADABLE, reason=unreadable_reason(Path(folder), error), node=node,
                          **common)
    common |= {
        "result": result,
        "node": (lease or {}).get("node") or (lease or {}).get("host") or (result.node if result else None)
        or (progress.host if progress else None),
    }
    if queued is not None:
        common |= {"backend": queued.backend, "job_id": queued.job_id, "attempt": queued.attempt}
    if result is not None and result.done:
        return TrialState(state=TrialStatus.DONE, **common)
    if lease is not None and is_fresh(folder, now):
        return TrialState(state=TrialStatus.RUNNING, **common)
    if result is not None and not _requeued(folder, queued):
        if result.status is Outcome.INTERRUPTED:
            return TrialState(state=TrialStatus.PREEMPTED, reason=result.reason or "interrupted", **common)
        return TrialState(state=TrialStatus.FAILED, reason=result.reason or "failed", **common)
    return TrialState(state=TrialStatus.PENDING if queued is None else TrialStatus.QUEUED, **common)


def _present(trial_dir: str) -> set[str]:
    """The names in the folder: one listing instead of a failed open per file a trial does not have yet (most of
    `status` over 10⁴ trials). A folder that cannot be listed: every file is tried, so its error is reported."""
    try:
        return set(os.listdir(trial_dir))
    except FileNotFoundError:
        return set()
    except OSError:
        return {LEASE_FILE, PROGRESS_FILE, RESULT_FILE, QUEUED_FILE}


def unreadable_reason(trial_dir: Path, error: Exception) -> str:
    """One line: which file, why, and how `rerun` repairs it."""
    return (f"{str(error).splitlines()[0][:300]}; `ghostsweep rerun {SweepDir.of_trial(trial_dir).root} --trial "
            f"{trial_dir.name}` sets it aside (kept as *.corrupt-N) and resumes from the checkpoint")


def _readable(read: Callable[[Path], Any], trial_dir: Path) -> Any:
    try:
        return read(trial_dir)
    except (ValueError, OSError):
        return None


def _requeued(trial_dir: str, queued: QueuedRecord | None) -> bool:
    """A rerun that has not started yet: queued.json was written after the last attempt's result.json (both
    mtimes, one filesystem clock)."""
    if queued is None:
        return False
    return (os.stat(os.path.join(trial_dir, QUEUED_FILE)).st_mtime
            > os.stat(os.path.join(trial_dir, RESULT_FILE)).st_mtime)


def mark_queued(trial_dir: Path, backend: str) -> int:
    """Record a submission before the backend places it, so a fast failure can never look older; its attempt number
    (what `unqueue` checks). A corrupt queued.json or result.json, and a planted link or special file, is set aside
    first: a rerun is how a trial with an unreadable file is repaired."""
    trial_dir = Path(trial_dir)
    _set_aside_planted(trial_dir)
    previous = _read_or_set_aside(read_queued, trial_dir, QUEUED_FILE)
    _read_or_set_aside(read_result, trial_dir, RESULT_FILE)
    attempt = (previous.attempt if previous else 0) + 1
    write_queued(trial_dir, QueuedRecord(backend=backend, job_id=None, submitted_at=time.time(), attempt=attempt))
    return attempt


def _set_aside_planted(trial_dir: Path) -> None:
    """Set aside what no writer of ours makes in a trial's folder: a symbolic link (an append would follow it out of
    the sweep, and is refused) or a FIFO, socket or device (a read would wait or never end). Left there, one such
    file stops every submission of the sweep; set aside, the trial runs and the file is kept for a look."""
    with os.scandir(trial_dir) as entries:
        planted = [entry for entry in entries
                   if entry.is_symlink() or not (entry.is_file() or entry.is_dir())]
    for entry in planted:
        what = "a symbolic link" if entry.is_symlink() else "not a regular file"
        aside = set_aside(Path(entry.path), "planted")
        print(f"{trial_dir.name}: {entry.name} is {what}; set aside as {aside.name}")


def _read_or_set_aside(read: Callable[[Path], Any], trial_dir: Path, name: str) -> Any:
    try:
        return read(trial_dir)
    except ValueError as error:
        aside = set_aside(trial_dir / name)
        print(f"{trial_dir.name}: {str(error).splitlines()[0][:300]}; set aside as {aside.name}")
        return None


def record_job_id(trial_dir: Path, job_id: str) -> None:
    """Attach the backend's job id to the current submission, keeping queued.json's mtime: the submission's
    time on the filesystem's clock, which `_requeued` compares with result.json's."""
    queued = _readable(read_queued, trial_dir)  # unreadable: `status` says so, and a rerun repairs it
    if queued is not None and queued.job_id != job_id:
        path = Path(trial_dir) / QUEUED_FILE
        submitted = path.stat()
        write_queued(trial_dir, replace(queued, job_id=job_id))
        os.utime(path, ns=(submitted.st_atime_ns, submitted.st_mtime_ns))


def never_started(trial_dir: Path) -> bool:
    """Queued, and no worker has taken its lease since: the lease log, appended at every acquisition, is not newer
    than queued.json (both mtimes, one filesystem clock)."""
    folder = Path(trial_dir)
    if read_state(folder).state is not TrialStatus.QUEUED:
        return False
    try:
        return (folder / LEASE_LOG).stat().st_mtime_ns <= (folder / QUEUED_FILE).stat().st_mtime_ns
    except FileNotFoundError:
        return True


def unqueue(trial_dir: Path, attempt: int) -> None:
    """A submission (its `attempt`) cancelled before it started: the trial is pending again. Only while queued.json
    is still that submission's: a rerun since (after a `cancel`, while the cancelled submit waits for its running
    trials to save) wrote its own, with the next attempt, and that one stays."""
    queued = _readable(read_queued, trial_dir)
    if queued is not None and queued.attempt == attempt:
        (Path(trial_dir) / QUEUED_FILE).unlink(missing_ok=True)
