"""Sweep-level operations shared by every backend: collect states, submit, rerun, cancel."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ghostsweep.orchestrator.backends import get_backend
from ghostsweep.orchestrator.backends.base import Backend, JobInfo, JobListener, JobPhase, Submission
from ghostsweep.orchestrator.spec.resources import Resources
from ghostsweep.orchestrator.sweepdir import badnodes
from ghostsweep.orchestrator.sweepdir.cache import read_states
from ghostsweep.orchestrator.sweepdir.directory import SweepDir
from ghostsweep.orchestrator.sweepdir.lease import filesystem_now
from ghostsweep.orchestrator.sweepdir.state import TrialState, unqueue
from ghostsweep.trials.datadir import check_batches, cifar10_folder, data_root, download_allowed, resolve_data_dir
from ghostsweep.trials.trialdir import TrialStatus

UNFINISHED = (TrialStatus.QUEUED, TrialStatus.RUNNING)
POLLED = (TrialStatus.QUEUED, TrialStatus.PREEMPTED)  # states whose files cannot tell what the job does now
RERUNNABLE = (TrialStatus.FAILED, TrialStatus.PREEMPTED, TrialStatus.UNREADABLE, TrialStatus.PENDING)
RERUN_FAILED = (TrialStatus.FAILED, TrialStatus.PREEMPTED, TrialStatus.UNREADABLE)  # `rerun --failed`


def backend_for(sweep: SweepDir, name: str | None = None, overrides: dict[str, Any] | None = None) -> Backend:
    """The sweep's backend (or `name`) with the spec's resources; spec options apply to the spec's backend,
    `overrides` (e.g. `--backend-option`) on top."""
    index = sweep.index()
    name = name or index.backend
    options = index.backend_options if name == index.backend else {}
    return get_backend(name, index.resources, options | (overrides or {}))


def check_data(backend: Backend, override: str | Path | None, spec_data_dir: str | None,
               download: bool | None = None) -> list[str]:
    """Before anything is created: the CIFAR-10 the trials will read (the worker's precedence) is complete, fetched
    once here when `download` (or $GHOSTSWEEP_DOWNLOAD) allows. A cluster's nodes may see paths this machine does
    not, so for them a folder absent here is a warning (returned), not an error. Every batch is unpickled as the
    trials will (`check_batches`: only what a batch holds), so a crafted one is refused here. DataError is one
    line."""
    root = data_root(override, spec_data_dir)
    if backend.runs_on_this_machine or download_allowed(download) or cifar10_folder(root).exists():
        check_batches(resolve_data_dir(root, download))
        return []
    return [f"CIFAR-10 is not at {cifar10_folder(root)} on this machine: the {backend.name} nodes must see it there"]


def check_sweep_data(sweep: SweepDir, backend: Backend) -> list[str]:
    """`check_data` for a sweep that exists (rerun, extend): the data directory it recorded."""
    index = sweep.index()
    return check_data(backend, index.data_dir_override, index.data_dir)


def collect_states(sweep: SweepDir, poll: bool = True, remember: bool = False) -> tuple[list[TrialState], list[str]]:
    """Every trial's state in plan order, refined by the backends' view of queued trials; plus warnings.
    `remember`: update the read cache (`status` does)."""
    now = filesystem_now(sweep.root)  # one probe: every lease's age on the filesystem's clock
    states = read_states(sweep, now, remember)  # settled trials from the read cache (orchestrator/sweepdir/cache.py)
    states, warnings = refine_with_backends(sweep, states) if poll else (states, [])
    return states, warnings + bad_node_warnings(sweep, states)


def bad_node_warnings(sweep: SweepDir, states: list[TrialState]) -> list[str]:
    """One line per bad node (orchestrator/sweepdir/badnodes.py), saying whether the sweep's backend excludes it."""
    bad = badnodes.bad_nodes(sweep, ((s.trial_id, s.result) for s in states))
    if not bad:
        return []
    excluded = backend_for(sweep).exclude_nodes([])
    return [badnodes.describe(node, excluded) for node in bad]


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


def validate_backend(backend: Backend, grid_resources: Iterable[Resources] = ()) -> None:
    """`backend.validate()` for the sweep's resources and for each grid's own, before anything is written."""
    backend.validate()
    for resources in set(grid_resources) - {backend.resources}:
        backend.with_resources(resources).validate()


def submit_trials(sweep: SweepDir, trial_ids: Sequence[str], backend: Backend,
                  on_job: JobListener | None = None) -> list[Submission]:
    """Let the backend place the trials, one placement per distinct resources (a grid may have its own), off the
    sweep's bad nodes where it can; `on_job` hears each job id as it comes into being."""
    bad = badnodes.bad_nodes(sweep)
    index = sweep.index()
    by_resources: dict[Resources, list[str]] = {}
    for trial_id in trial_ids:
        by_resources.setdefault(index.trial_resources(trial_id), []).append(trial_id)
    submissions: list[Submission] = []
    for resources, group in by_resources.items():
        placer = backend.with_resources(resources)
        if bad and placer.exclude_nodes([node.node for node in bad]):
            badnodes.remember(sweep, bad)
        submissions += placer.submit(sweep, sweep.trial_refs(group), on_job)
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
    wanted = RERUN_FAILED if failed_only else RERUNNABLE
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
            unqueue(sweep.trial_dir(state.trial_id), state.attempt)
    return [s.trial_id for s in active]
