"""What every backend shares: the narrow interface (validate, submit, poll, cancel) and the mechanics behind it.

A backend only places work: on a compute node every backend runs the same worker, `worker_command`, which owns
the trial's lease, heartbeat and result files. State is read from those files, so nothing outside
`orchestrator/backends/` knows which backend ran a trial; where the files cannot tell, `poll` answers in
`JobPhase`s, the same words for every scheduler.

Shared mechanics live here once, as in submitit's core: `Backend.submit` is a template that marks the trials
queued, records each job id (`Placement.assign`, the one place one is written), settles trials whose job died
without a result (`Placement.settle`), un-queues those that never started and raises KeyboardInterrupt for a
stopped run once its trials have saved; a backend's `place` hook only starts jobs and says what happened. Also
here: the worker's command line and environment, signal forwarding to child workers, options dataclasses checked
like the spec, and jobs that are one process on one host (`ProcessBackend`: local workers, the Ray driver).

A backend is its configuration (resources, options: frozen) plus a `Session`, the runtime state it shares with
the backends made from it (`with_resources`): poll notes, excluded nodes, what the scheduler said about itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Self

from ghostsweep.orchestrator.spec.resources import Resources
from ghostsweep.orchestrator.sweepdir.directory import SweepDir, TrialRef
from ghostsweep.orchestrator.sweepdir.lease import break_dead_lease
from ghostsweep.orchestrator.sweepdir.state import mark_queued, never_started, read_state, record_job_id, unqueue
from ghostsweep.trials.trialdir import TrialStatus, record_failure
from ghostsweep.trials.typed import parse

WORKER_MODULE = "ghostsweep.orchestrator.submission.worker"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
OUR_PROCESS_MARK = b"ghostsweep"  # in the command line of every process a job id may name
JobListener = Callable[[Sequence[str], str], None]  # told (trial ids, job id) as soon as a job exists


@dataclass(frozen=True)
class Submission:
    """A backend's receipt for one trial: the job that will run it."""

    trial_id: str
    job_id: str


class JobPhase(StrEnum):
    """Where a job is, in words every backend maps its scheduler's states onto; generic code tests only these."""

    WAITING = "waiting"  # queued, or requeued after a preemption or a dead node: it will run
    ACTIVE = "active"  # running now
    ENDED = "ended"  # over for good: completed, failed, timed out, its process gone
    CANCELLED = "cancelled"  # over for good because someone cancelled it


@dataclass(frozen=True)
class JobInfo:
    """The scheduler's view of a trial's job, for when the files alone cannot tell (e.g. cancelled before start)."""

    job_id: str
    phase: JobPhase
    node: str | None = None
    reason: str | None = None  # why an ended job ended, for `status`
    scheduler_state: str | None = None  # the scheduler's own word (Slurm's NODE_FAIL, ...), shown, never tested

    @property
    def final(self) -> bool:
        """The job will never run (again) on its own."""
        return self.phase in (JobPhase.ENDED, JobPhase.CANCELLED)


@dataclass(frozen=True)
class BackendOptions:
    """A backend's `backend.options`, one dataclass field each, checked like the spec (`trials.typed`): an unknown
    key or a wrong type is one line naming `backend.options.KEY`; `Annotated[int, Range(ge=1)]` bounds a number."""

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> Self:
        return parse(cls, dict(options), "backend.options")


@dataclass
class Session:
    """What one command's backend learns while it runs: shared by every backend made from it (`with_resources`),
    never part of its configuration."""

    warnings: list[str] = field(default_factory=list)  # one-line notes from `poll`, for `status`
    excluded_nodes: tuple[str, ...] = ()  # bad nodes that later placements keep off
    cluster: dict[str, str] | None = None  # what the scheduler said about itself (Slurm's config), asked once


@dataclass
class Placement:
    """One `submit`'s trials and what the backend's `place` hook reports about them, through the mechanics every
    backend shares."""

    sweep: SweepDir
    trials: list[TrialRef]
    on_job: JobListener | None = None
    jobs: dict[str, str] = field(default_factory=dict)  # trial id -> its job id, as recorded
    interrupted: str | None = None  # why `place` stopped before every trial ended

    def assign(self, trials: Sequence[TrialRef], job_id: str, announce: bool = True) -> None:
        """These trials now have this job: recorded in their queued.json (the one place a job id is written) and,
        when `announce`, told to the listener at once, not when a blocking `submit` returns."""
        for trial in trials:
            record_job_id(trial.trial_dir, job_id)
            self.jobs[trial.trial_id] = job_id
        if announce and self.on_job is not None:
            self.on_job([t.trial_id for t in trials], job_id)

    def settle(self, trial: TrialRef, why: str) -> None:
        """The trial's job has ended: the lease of a dead holder on this machine is broken, and a trial left
        without a result of this attempt (still queued) fails for `why`. One its worker finished, failed or saved
        keeps its own result."""
        break_dead_lease(trial.trial_dir)
        if read_state(trial.trial_dir).state is TrialStatus.QUEUED:
            record_failure(trial.trial_dir, why)

    def interrupt(self, why: str) -> None:
        """Stopped by SIGINT/SIGTERM: `submit` raises KeyboardInterrupt once `place` returns (its trials saved)."""
        self.interrupted = why

    @property
    def submissions(self) -> list[Submission]:
        return [Submission(trial_id, job_id) for trial_id, job_id in self.jobs.items()]


@dataclass(frozen=True)
class Backend(ABC):
    """Base of local, slurm and ray: configuration (resources, options) plus the `Session` it runs in. A backend
    declares its options dataclass as the type of `options`."""

    name: ClassVar[str]
    resources: Resources
    options: BackendOptions = field(default_factory=BackendOptions)
    session: Session = field(default_factory=Session, compare=False, repr=False)
    waits_for_trials: ClassVar[bool] = False  # `submit` blocks until its trials end (local, ray)

    @classmethod
    def from_spec(cls, resources: Resources, options: Mapping[str, Any]) -> Self:
        """This backend with the spec's `backend.options` (and `--backend-option`s) checked and parsed."""
        options_type: type[BackendOptions] = typing.get_type_hints(cls)["options"]
        return cls(resources, options_type.parse(options))

    def with_resources(self, resources: Resources) -> Self:
        """The same backend for trials with other resources (a grid's own), in the same session."""
        return self if resources == self.resources else replace(self, resources=resources)

    @property
    def warnings(self) -> list[str]:
        """One-line notes from `poll` (a degraded answer), for `status`."""
        return self.session.warnings

    def validate(self) -> None:  # noqa: B027  (a hook: most backends have nothing more to check)
        """Raise ValueError (one line) for what would fail only after submission: a bad layout, a bad partition."""

    @property
    def runs_on_this_machine(self) -> bool:
        """Its trials run here, so what this machine sees (CIFAR-10) they see; a cluster's nodes may not."""
        return False

    def exclude_nodes(self, nodes: Sequence[str]) -> bool:
        """Keep later submissions off these (bad) nodes; False where this backend cannot (or is told not to)."""
        return False

    def submit(self, sweep: SweepDir, trials: Sequence[TrialRef], on_job: JobListener | None = None,
               ) -> list[Submission]:
        """Mark the trials queued and `place` them: blocks until they end (local, ray) or returns once they are
        queued (slurm). Then a trial without a job, or (blocking) one still queued that no worker took, is pending
        again; a stopped run raises KeyboardInterrupt here, after its trials have saved. `on_job` hears each job
        id as it comes into being."""
        placement = Placement(sweep, list(trials), on_job)
        attempts = {trial.trial_id: mark_queued(trial.trial_dir, self.name) for trial in placement.trials}
        try:
            if placement.trials:
                self.place(placement)
        finally:
            for trial in placement.trials:
                if trial.trial_id not in placement.jobs or (self.waits_for_trials and never_started(trial.trial_dir)):
                    unqueue(trial.trial_dir, attempts[trial.trial_id])
        if placement.interrupted:
            raise KeyboardInterrupt(placement.interrupted)
        return placement.submissions

    @abstractmethod
    def place(self, placement: Placement) -> None:
        """Start the jobs for `placement.trials` (a hook of `submit`): `assign` each job id as it exists, `settle`
        each trial whose job ended, `interrupt` when stopped. Raises when nothing could be placed."""

    @abstractmethod
    def poll(self, job_ids: Sequence[str]) -> dict[str, JobInfo]:
        """Scheduler state for these jobs, in as few scheduler calls as possible (one batched query). A job left
        out is unknown (its trial's files decide); a degraded answer adds a note to `self.warnings`."""

    @abstractmethod
    def cancel(self, job_ids: Sequence[str]) -> None:
        """Stop these jobs; their trials keep their checkpoints for a later rerun."""


def worker_command(trial_dirs: Iterable[Path | str]) -> list[str]:
    """The command every backend runs on a node. `-P`: the working directory is not put on sys.path, so a user's
    `ghostsweep.py` (or `torch.py`) there cannot shadow the installed package; $PYTHONPATH is the user's to set."""
    return [sys.executable, "-P", "-m", WORKER_MODULE, *map(str, trial_dirs)]


def worker_env(cpu_threads: int | None = None, **overrides: str) -> dict[str, str]:
    """This process's environment for a worker. `cpu_threads` sizes the CPU thread pools unless the user already
    did, so CPU results do not depend on the backend."""
    env = dict(os.environ)
    if cpu_threads is not None:
        for variable in THREAD_VARIABLES:
            env.setdefault(variable, str(cpu_threads))
    return env | overrides


@dataclass
class SignalForwarder:
    """Passes the signals it is installed for on to `children` (which may grow), as `send` or as received.

    A worker's children (packed trials) and a backend's workers must all hear a preemption: only the process
    that Slurm or the user signalled would otherwise stop. Signals are recorded in `received`, in order."""

    children: list[subprocess.Popen] = field(default_factory=list)
    send: signal.Signals | None = None
    received: list[int] = field(default_factory=list)
    previous: dict[int, Any] = field(default_factory=dict)  # the handlers replaced, e.g. submitit's requeue

    def install(self, signums: Iterable[int]) -> Self:
        self.previous |= {signum: signal.signal(signum, self._forward) for signum in signums}
        return self

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _forward(self, signum: int, _frame: object) -> None:
        self.received.append(signum)
        for child in self.children:
            child.send_signal(self.send or signum)  # a child that has exited is skipped by Popen


@dataclass(frozen=True)
class ProcessJob:
    """A job that is one process on one host (a local worker, a Ray driver): `<backend>:<host>:<pid>`."""

    backend: str
    host: str
    pid: int

    def __str__(self) -> str:
        return f"{self.backend}:{self.host}:{self.pid}"

    @classmethod
    def here(cls, backend: str, pid: int) -> ProcessJob:
        return cls(backend, socket.gethostname(), pid)

    @classmethod
    def parse(cls, job_id: str) -> ProcessJob | None:
        backend, _, rest = job_id.partition(":")
        host, _, pid = rest.rpartition(":")
        return cls(backend, host, int(pid)) if host and pid.isdigit() else None

    @property
    def on_this_host(self) -> bool:
        return self.host == socket.gethostname()

    def is_running(self) -> bool:
        """On this host, alive, and one of ours: a recycled pid must never be signalled."""
        if not self.on_this_host:
            return False
        try:
            return OUR_PROCESS_MARK in Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            return False


class ProcessBackend(Backend):
    """A backend whose jobs are processes on the submitting host: `poll` asks whether they live, `cancel`
    sends them `stop_signal`. Processes on another host are unknown here; their trials' files decide."""

    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM

    def job_id(self, pid: int) -> str:
        return str(ProcessJob.here(self.name, pid))

    def gone_reason(self, job: ProcessJob) -> str:
        """Why a queued trial failed when its process is gone (a hook: say what to do about it)."""
        return f"{self.name} process {job.pid} on {job.host} is gone"

    def poll(self, job_ids: Sequence[str]) -> dict[str, JobInfo]:
        infos = {}
        for job_id in job_ids:
            job = ProcessJob.parse(job_id)
            if job is None or not job.on_this_host:
                continue
            if job.is_running():
                infos[job_id] = JobInfo(job_id, JobPhase.ACTIVE, node=job.host)
            else:
                infos[job_id] = JobInfo(job_id, JobPhase.ENDED, node=job.host, reason=self.gone_reason(job))
        return infos

    def cancel(self, job_ids: Sequence[str]) -> None:
        for job_id in job_ids:
            job = ProcessJob.parse(job_id)
            if job is not None and job.is_running():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(job.pid, self.stop_signal)
