"""The trial directory: one protocol, defined once, imported by every writer and reader.

A trial is a folder on a (shared) filesystem. The runner and the sweep worker write it; `status`, `rerun`,
`report` and every backend read it, on any node. This module is torch-free and is the only place that
knows the folder's file names, the shape of `result.json`, the trial states and the worker's exit codes.

    config.json     TrialConfig.to_dict() plus trial_id          written once, by submit (or train)
    queued.json     QueuedRecord: the current submission         orchestrator, before the backend places it
    lease.json      the live worker's lease and heartbeat         worker (orchestrator.lease)
    progress.json   ProgressRecord: iteration and speed           runner, every HEARTBEAT_S
    metrics.jsonl   one row per evaluation                        runner
    checkpoint.pt   weights, optimizer, RNG, progress             runner
    attempts.json   how many times the runner started             runner
    result.json     TrialResult: how the last attempt ended       runner (or the worker, for a crash)
    worker.log      the worker's stdout and stderr                local and ray backends

Every file is written atomically (see `files`), so a reader on another node sees the old file or the new one.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, fields
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Any

from ghostsweep.trials.files import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_lines,
    atomic_write_text,
    read_json,
    read_lines,
    remove_stale_temporaries,
)

__all__ = [
    "ATTEMPTS_FILE", "CHECKPOINT_FILE", "CONFIG_FILE", "LEASE_FILE", "METRICS_FILE", "PROGRESS_FILE",
    "QUEUED_FILE", "RESULT_FILE", "WORKER_LOG", "ExitCode", "Outcome", "TrialResult", "TrialStatus",
    "atomic_write_bytes", "atomic_write_json", "atomic_write_lines", "atomic_write_text", "read_json",
    "read_lines", "read_result", "record_failure", "remove_stale_temporaries", "write_result",
]

CONFIG_FILE = "config.json"
QUEUED_FILE = "queued.json"
LEASE_FILE = "lease.json"
PROGRESS_FILE = "progress.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FILE = "checkpoint.pt"
ATTEMPTS_FILE = "attempts.json"
RESULT_FILE = "result.json"
WORKER_LOG = "worker.log"


class Outcome(StrEnum):
    """How one attempt of a trial ended: result.json's `status`."""

    DONE = "done"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # stopped on request (preemption, timeout warning, Ctrl-C) after a checkpoint


class TrialStatus(StrEnum):
    """A trial's state as `status` shows it, derived from its files (and, where they cannot tell, the scheduler)."""

    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    PREEMPTED = "preempted"


class ExitCode(IntEnum):
    """The exit status of `ghostsweep train` and of the sweep worker; backends requeue on INTERRUPTED."""

    DONE = 0
    FAILED = 1
    USAGE = 2
    INTERRUPTED = 3

    @classmethod
    def for_outcome(cls, outcome: Outcome | str) -> ExitCode:
        return {Outcome.DONE: cls.DONE, Outcome.INTERRUPTED: cls.INTERRUPTED}.get(Outcome(outcome), cls.FAILED)


@dataclass(frozen=True)
class TrialResult:
    """result.json. Only `status` and `trial_id` are always there: a trial that failed before its loop started
    (or whose worker crashed) has no metrics. Accuracies are top-1 % on the full split."""

    status: Outcome
    trial_id: str
    reason: str | None = None
    variant: str | None = None
    model: str | None = None
    seed: int | None = None
    final_val_acc: float | None = None
    final_test_acc: float | None = None
    best_val_acc: float | None = None
    best_val_test_acc: float | None = None  # test accuracy of the best-validation checkpoint
    best_val_iteration: int | None = None
    params: int | None = None
    macs: int | None = None
    iterations: int | None = None
    wall_time_s: float | None = None
    device: str | None = None
    world_size: int | None = None
    torch_version: str | None = None
    code_version: str | None = None
    attempt: int | None = None
    wandb_run_dir: str | None = None
    compile: str | None = None
    channels_last: bool | None = None
    precision: str | None = None
    deterministic: bool | None = None
    depthwise: str | None = None
    split_hash: str | None = None
    finished_at: float | None = None

    @property
    def done(self) -> bool:
        return self.status is Outcome.DONE

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"status": self.status.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialResult:
        """Unknown keys (from a newer writer) are ignored; a missing or bad `status` is a ValueError."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["status"] = Outcome(values.get("status"))
        values.setdefault("trial_id", "")
        return cls(**values)


def read_result(trial_dir: Path) -> TrialResult | None:
    """The trial's result.json, or None when it has none yet."""
    data = read_json(Path(trial_dir) / RESULT_FILE)
    return None if data is None else TrialResult.from_dict(data)


def write_result(trial_dir: Path, result: TrialResult) -> None:
    stamped = result if result.finished_at is not None else dataclasses.replace(result, finished_at=time.time())
    atomic_write_json(Path(trial_dir) / RESULT_FILE, stamped.to_dict())


def record_failure(trial_dir: Path, reason: str) -> None:
    """result.json for a trial whose runner could not write one itself (crash before start, killed worker)."""
    write_result(trial_dir, TrialResult(status=Outcome.FAILED, trial_id=Path(trial_dir).name, reason=reason))
