"""What every backend shares: the narrow interface (validate, submit, poll, cancel) and the mechanics behind it.

A backend only places work: on a compute node every backend runs the same worker, `worker_command`, which owns
the trial's lease, heartbeat and result files. State is read from those files, so nothing outside
`orchestrator/backends/` knows which backend ran a trial; where the files cannot tell, `poll` answers in
`JobPhase`s, the same words for every scheduler.

Shared mechanics live here once, as in submitit's core: the worker's command line and environment, signal
forwarding to child workers, options dataclasses checked like the spec, and jobs that are one process on one
host (`ProcessBackend`: local workers, the Ray driver). A backend adds small hooks on top.
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
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Self

from ghostsweep.orchestrator.spec.resources import Resources
from ghostsweep.orchestrator.sweepdir.directory import TrialRef
from ghostsweep.trials.typed import parse

WORKER_MODULE = "ghostsweep.orchestrator.submission.worker"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
OUR_PROCESS_MARK = b"ghostsweep"  # in the command line of every process a job id may name


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
class Backend(ABC):
    """Base of local, slurm and ray. A backend declares its options dataclass as the type of `options`."""

    name: ClassVar[str]
    resources: Resources
    options: BackendOptions = field(default_factory=BackendOptions)
    warnings: list[str] = field(default_factory=list, init=False)  # one-line notes from `poll`, for `status`
    # told each job id as soon as it exists, e.g. by submit's progress display: (trial ids, job id)
    job_listener: Callable[[Sequence[str], str], None] | None = field(default=None, init=False, repr=False)
    waits_for_trials: ClassVar[bool] = False  # `submit` blocks until its trials end (local, ray)

    @classmethod
    def from_spec(cls, resources: Resources, options: Mapping[str, Any]) -> Self:
        """This backend with the spec's `backend.options` (and `--backend-option`s) checked and parsed."""
        options_type: type[BackendOptions] = typing.get_type_hints(cls)["options"]
        return cls(resources, options_type.parse(options))

    def validate(self) -> None:  # noqa: B027  (a hook: most backends have nothing more to check)
        """Raise ValueError (one line) for what would fail only after submission: a bad layout, a bad partition."""

    @property
    def runs_on_this_machine(self) -> bool:
        """Its trials run here, so what this machine sees (CIFAR-10) they see; a cluster's nodes may not."""
        return False

    def exclude_nodes(self, nodes: Sequence[str]) -> bool:
        """Keep later submissions off these (bad) nodes; False where this backend cannot (or is told not to)."""
        return False

    @abstractmethod
    def submit(self, trials: Sequence[TrialRef]) -> list[Submission]:
        """Place the trials; may block until done (local, ray) or return at once (slurm). Calls `report_job`
        as each job id comes into being. A blocking backend stopped by SIGINT/SIGTERM raises KeyboardInterrupt
        once its trials have saved."""

    def report_job(self, trial_ids: Sequence[str], job_id: str) -> None:
        """Tell `job_listener` that these trials now have this job (printed at once, not when submit returns)."""
        if self.job_listener is not None:
            self.job_listener(trial_ids, job_id)

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
