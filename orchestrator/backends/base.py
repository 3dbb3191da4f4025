"""The one narrow interface every backend implements: validate, submit, poll, cancel.

A backend only places work: on a compute node every backend runs the same worker,
`python -m ghostsweep.orchestrator.worker TRIAL_DIR [TRIAL_DIR ...]`, which owns the trial's lease, heartbeat and
result files. State is read from those files, so nothing outside `orchestrator/backends/` knows which
backend ran a trial.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar


@dataclass(frozen=True)
class Resources:
    """What one trial needs. `trials_per_gpu = K` packs K trials onto one GPU (or one CPU slot)."""

    gpus_per_trial: int = 0
    trials_per_gpu: int = 1
    cpus_per_trial: int = 1
    mem_gb: float = 4.0
    time_limit_min: int = 240
    nodes: int = 1


@dataclass(frozen=True)
class TrialRef:
    trial_id: str
    trial_dir: Path


@dataclass(frozen=True)
class Submission:
    """A backend's receipt for one trial: the job that will run it."""

    trial_id: str
    job_id: str


@dataclass(frozen=True)
class JobInfo:
    """The scheduler's view of a trial's job, when the files alone cannot tell (e.g. cancelled before start)."""

    job_id: str
    state: str  # scheduler's word: PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, NODE_FAIL, ...
    node: str | None = None
    final: bool = False  # True when the job will never run (again) on its own
    reason: str | None = None


@dataclass
class Backend(ABC):
    """Base of local, slurm and ray. `options` is the spec's `backend.options` mapping, validated by `validate`."""

    name: ClassVar[str]
    resources: Resources
    options: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list, init=False)  # one-line notes from `poll`, for `status`

    def reject_unknown_options(self, valid: Sequence[str]) -> None:
        """One line naming the first option this backend does not know, for `validate`."""
        for key in self.options:
            if key not in valid:
                raise ValueError(f"backend.options.{key}: unknown option; valid: {', '.join(valid)}")

    @abstractmethod
    def validate(self) -> None:
        """Raise ValueError (one line) for anything that would fail after submission: bad options, bad partition."""

    @abstractmethod
    def submit(self, trials: Sequence[TrialRef]) -> list[Submission]:
        """Place the trials; may block until done (local, ray) or return at once (slurm)."""

    @abstractmethod
    def poll(self, job_ids: Sequence[str]) -> dict[str, JobInfo]:
        """Scheduler state for these jobs, in as few scheduler calls as possible (one batched query). A job left
        out is unknown (its trial's files decide); a degraded answer adds a note to `self.warnings`."""

    @abstractmethod
    def cancel(self, job_ids: Sequence[str]) -> None:
        """Stop these jobs; their trials keep their checkpoints for a later rerun."""
