"""Sweep-level operations shared by every backend: collect states, submit, rerun, cancel."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ghostsweep.orchestrator.backends import get_backend
from ghostsweep.orchestrator.backends.base import Backend, JobInfo, JobPhase, Submission
from ghostsweep.orchestrator.state import TrialState, mark_queued, read_state, record_job_id, unqueue
from ghostsweep.orchestrator.sweepdir import SweepDir
from ghostsweep.trials.trialdir import TrialStatus

UNFINISHED = (TrialStatus.QUEUED, TrialStatus.RUNNING)
POLLED = (TrialStatus.QUEUED, TrialStatus.PREEMPTED)  # states whose files cannot tell what the job does now
RERUNNABLE = (TrialStatus.FAILED, TrialStatus.PREEMPTED, TrialStatus.PENDING)


def backend_for(sweep: SweepDir, name: str | None = None, overrides: dict[str, Any] | None = None) -> Backend:
    """The sweep's backend (or `name`) with the spec's resources; spec options apply to the spec's backend,
    `overrides` (e.g. `--backend-option`) on top."""
    index = sweep.index()
    spec_backend = index["backend"]
    name = name or spec_backend["name"]
    options = spec_backend["options"] if name == spec_backend["name"] else {}
    return get_backend(name, sweep.resources(), options | (overrides or {}))


def collect_states(sweep: SweepDir, poll: bool = True) -> tuple[list[TrialState], list[str]]:
    """Every trial's state in plan order, refined by the backends' view of queued trials; plus warnings."""
    now = time.time()
    states = [read_state(sweep.trial_dir(trial_id), now) for trial_id in sweep.trial_ids()]
    return refine_with_backends(sweep, states) if poll else (states, [])


def refine_with_backends(sweep: SweepDir, states: list[TrialState]) -> tuple[list[TrialState], list[str]]:
    """Ask each backend (one batched poll) about the queued and preempted trials, whose files may be stale.

    A queued trial whose job can never run (cancelled, crashed node, dead local process) is failed; a preempted
    trial whose job is not over was requeued (queued), one whose job was cancelled is failed "cancelled".
    The backend's node replaces the files' one. Backends' poll notes are among the returned warnings.
    """
    polled: dict[str, list[TrialState]] = {}
    for state in states:
        if state.state in POLLED and state.job_id and state.backend:
            polled.setdefault(state.backend, []).append(state)
    warnings, refined = [], {}
    for backend_name, group in polled.items():
        try:
            backend = backend_for(sweep, backend_name)
            infos = backend.poll([s.job_id for s in group])
        except Exception as error:  # a scheduler we cannot reach must not hide the files' view
            warnings.append(f"could not poll {backend_name}: {error}")
            continue
        warnings += backend.warnings
        for state in group:
            if state.job_id in infos:
                refined[state.trial_id] = _refine(state, infos[state.job_id], backend_name)
    return [refined.get(s.trial_id, s) for s in states], warnings


def _refine(state: TrialState, info: JobInfo, backend_name: str) -> TrialState:
    node = info.node or state.node
    if state.state == TrialStatus.PREEMPTED and not info.final:
        return replace(state, state=TrialStatus.QUEUED, reason=None, node=node)
    if state.state == TrialStatus.PREEMPTED and info.phase == JobPhase.CANCELLED:
        return replace(state, state=TrialStatus.FAILED, reason=info.reason or "cancelled", node=node)
    if state.state == TrialStatus.QUEUED and info.final:
        ended = info.scheduler_state or info.phase
        reason = info.reason or f"{backend_name} job {info.job_id} ended {ended}, no result"
        return replace(state, state=TrialStatus.FAILED, reason=reason, node=node)
    return replace(state, node=node)


def submit_trials(sweep: SweepDir, trial_ids: Sequence[str], backend: Backend) -> list[Submission]:
    """Mark the trials queued, then let the backend place them; a failed placement leaves them pending."""
    refs = sweep.trial_refs(list(trial_ids))
    for ref in refs:
        mark_queued(ref.trial_dir, backend.name)
    submissions: list[Submission] = []
    try:
        submissions = backend.submit(refs)
    finally:
        placed = {s.trial_id for s in submissions}
        for ref in refs:
            if ref.trial_id not in placed:
                unqueue(ref.trial_dir)
    for submission in submissions:
        record_job_id(sweep.trial_dir(submission.trial_id), submission.job_id)
    return submissions


def select_rerun(states: list[TrialState], failed_only: bool, trial_ids: Sequence[str]) -> list[str]:
    """Which trials `rerun` resubmits: named ones, failed/preempted ones, or every unfinished one."""
    by_id = {s.trial_id: s for s in states}
    if trial_ids:
        for trial_id in trial_ids:
            if trial_id not in by_id:
                raise ValueError(f"--trial: no trial {trial_id!r} in this sweep")
            if by_id[trial_id].state == TrialStatus.DONE:
                raise ValueError(f"--trial: {trial_id} is done; nothing to rerun")
            if by_id[trial_id].state in UNFINISHED:
                raise ValueError(f"--trial: {trial_id} is {by_id[trial_id].state}; cancel it first")
        return list(trial_ids)
    wanted = (TrialStatus.FAILED, TrialStatus.PREEMPTED) if failed_only else RERUNNABLE
    return [s.trial_id for s in states if s.state in wanted]


def cancel_sweep(sweep: SweepDir, states: list[TrialState]) -> list[str]:
    """Cancel every queued or running trial's job; trials that never started become pending again."""
    active = [s for s in states if s.state in UNFINISHED and s.job_id]
    by_backend: dict[str, list[TrialState]] = {}
    for state in active:
        by_backend.setdefault(state.backend or "", []).append(state)
    for backend_name, group in by_backend.items():
        backend_for(sweep, backend_name).cancel(sorted({s.job_id for s in group}))
    for state in active:
        if state.state == TrialStatus.QUEUED and state.lease is None:
            unqueue(sweep.trial_dir(state.trial_id))
    return [s.trial_id for s in active]
