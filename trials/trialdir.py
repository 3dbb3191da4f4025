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
    checkpoint.prev.pt  the checkpoint before (a hard link)       runner
    checkpoint.sha256.json  size and sha256 of both, checked before a resume    runner
    leases.jsonl    append-only log of lease acquisitions         worker (orchestrator.lease)
    attempts.json   how many times the runner started             runner
    result.json     TrialResult: how the last attempt ended       runner (or the worker, for a crash)
    worker.log      the worker's stdout and stderr                local and ray backends

Every file is written atomically (see `files`), so a reader on another node sees the old file or the new one.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import IntEnum, StrEnum
from pathlib import Path
from types import NoneType
from typing import Any, TypeVar

from ghostsweep.trials.files import (
    MAX_RECORD_BYTES,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_lines,
    atomic_write_text,
    read_json,
    read_lines,
    remove_stale_temporaries,
)
from ghostsweep.trials.strict_yaml import shown

__all__ = [
    "ATTEMPTS_FILE", "CHECKPOINT_FILE", "CONFIG_FILE", "LEASE_FILE", "METRICS_FILE", "PROGRESS_FILE",
    "QUEUED_FILE", "RESULT_FILE", "WORKER_LOG", "ExitCode", "Outcome", "ProgressRecord", "QueuedRecord",
    "LEASE_LOG", "PREVIOUS_CHECKPOINT_FILE", "CHECKPOINT_DIGEST_FILE", "set_aside_outcome",
    "TrialResult", "TrialStatus", "atomic_write_bytes", "atomic_write_json", "atomic_write_lines",
    "atomic_write_text", "finite_number", "read_json", "read_lines", "read_metrics", "read_progress", "read_queued",
    "read_result", "record_failure", "remove_stale_temporaries", "set_aside", "write_progress", "write_queued",
    "write_result",
]

CONFIG_FILE = "config.json"
QUEUED_FILE = "queued.json"
LEASE_FILE = "lease.json"
PROGRESS_FILE = "progress.json"
METRICS_FILE = "metrics.jsonl"
CURVE_METRIC = "val_acc"  # what a trial's learning curve is, in the files and in W&B
CHECKPOINT_FILE = "checkpoint.pt"
PREVIOUS_CHECKPOINT_FILE = "checkpoint.prev.pt"
CHECKPOINT_DIGEST_FILE = "checkpoint.sha256.json"
LEASE_LOG = "leases.jsonl"
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
    UNREADABLE = "unreadable"  # one of its files is corrupt: the reason names it and what to do


class ExitCode(IntEnum):
    """The exit status of `ghostsweep train` and of the sweep worker; backends requeue on INTERRUPTED."""

    DONE = 0
    FAILED = 1
    USAGE = 2
    INTERRUPTED = 3
    SKIPPED = 4  # leased elsewhere: another live worker runs the trial; nothing ran here and nothing failed

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
    max_test_acc: float | None = None  # the best test accuracy over the evaluations: selected on the test set
    params: int | None = None
    macs: int | None = None
    iterations: int | None = None
    wall_time_s: float | None = None
    device: str | None = None
    world_size: int | None = None
    node: str | None = None  # rank 0's node (the scheduler's name for it), for status and bad-node detection
    gpu_binding: list[dict[str, Any]] | None = None  # per rank: node, scheduler GPU ids, CUDA_VISIBLE_DEVICES, ...
    torch_version: str | None = None
    code_version: str | None = None  # trials.provenance.code_version: the commit (-dirty), or a stamped version
    cuda_version: str | None = None  # as torch was built with it; None on a CPU-only build, or an older result
    cudnn_version: str | None = None
    gpu_model: str | None = None  # rank 0's GPU (torch.cuda.get_device_name); None on the CPU
    attempt: int | None = None
    wandb_run_dir: str | None = None
    compile: str | None = None
    channels_last: bool | None = None
    precision: str | None = None
    deterministic: bool | None = None
    depthwise: str | None = None
    split_hash: str | None = None
    finished_at: float | None = None
    note: str | None = None  # what the attempt had to work around, e.g. a corrupt checkpoint set aside

    @property
    def done(self) -> bool:
        return self.status is Outcome.DONE

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"status": self.status.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialResult:
        """Unknown keys (from a newer writer) are ignored; a missing or bad `status`, or a value of another type
        than its field's, is a ValueError."""
        values = _typed_fields(cls, data)
        for name in ACCURACY_FIELDS:
            if values.get(name) is not None and not 0 <= values[name] <= 100:
                raise ValueError(f"{name}: must be an accuracy in [0, 100] %, got {shown(values[name])}")
        values["status"] = Outcome(values.get("status"))
        values.setdefault("trial_id", "")
        return cls(**values)


ACCURACY_FIELDS = tuple(f.name for f in fields(TrialResult) if f.name.endswith("_acc"))  # top-1 %, in [0, 100]


@dataclass(frozen=True)
class QueuedRecord:
    """queued.json: the current submission. `job_id` is None until the backend has placed it; `attempt` counts
    submissions, so a rerun's is one more than the last."""

    backend: str
    job_id: str | None
    submitted_at: float
    attempt: int = 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QueuedRecord:
        return cls(**_typed_fields(cls, data))


@dataclass(frozen=True)
class ProgressRecord:
    """progress.json: the runner's heartbeat, from which `status` shows progress and an ETA."""

    iteration: int
    iterations: int
    images_per_s: float
    updated_at: float | None = None
    host: str | None = None
    pid: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProgressRecord:
        return cls(**_typed_fields(cls, data))


def read_result(trial_dir: Path) -> TrialResult | None:
    """The trial's result.json, or None when it has none yet."""
    return _read_record(os.path.join(trial_dir, RESULT_FILE), TrialResult.from_dict)


def write_result(trial_dir: Path, result: TrialResult) -> None:
    """A ValueError, before anything is written, for a result its reader would reject (a NaN or an accuracy out of
    [0, 100]): a run whose loss went non-finite is recorded as failed with the reason "diverged at ...", never as a
    done run with a NaN accuracy that every reader would then call unreadable."""
    stamped = result if result.finished_at is not None else dataclasses.replace(result, finished_at=time.time())
    record = stamped.to_dict()
    TrialResult.from_dict(record)
    atomic_write_json(Path(trial_dir) / RESULT_FILE, record)


def record_failure(trial_dir: Path, reason: str, node: str | None = None) -> None:
    """result.json for a trial whose runner could not write one itself (crash before start, killed worker)."""
    write_result(trial_dir, TrialResult(status=Outcome.FAILED, trial_id=Path(trial_dir).name, reason=reason,
                                        node=node))


def set_aside(path: Path, why: str = "corrupt") -> Path:
    """Rename a corrupt (or stale) file to `<name>.<why>-N` (kept for a post-mortem, out of every reader's way)."""
    path = Path(path)
    for number in range(1, 10_000):
        aside = path.with_name(f"{path.name}.{why}-{number}")
        if not aside.exists():
            path.rename(aside)
            return aside
    raise FileExistsError(f"{path}: too many corrupt copies set aside already")


ATTEMPT_FILES = (RESULT_FILE, CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE, CHECKPOINT_DIGEST_FILE, METRICS_FILE,
                 PROGRESS_FILE)  # what a done trial's training left: set aside, the next attempt trains afresh


def set_aside_outcome(trial_dir: Path, why: str) -> list[Path]:
    """Set a done trial's result, checkpoints and metrics aside as `<name>.<why>-N`, so that rerunning it trains
    afresh (a checkpoint left behind would resume at the last iteration); the files set aside."""
    return [set_aside(Path(trial_dir) / name, why) for name in ATTEMPT_FILES if (Path(trial_dir) / name).exists()]


def read_queued(trial_dir: Path) -> QueuedRecord | None:
    """The current submission, or None when the trial is not submitted (or its submission was cancelled)."""
    return _read_record(os.path.join(trial_dir, QUEUED_FILE), QueuedRecord.from_dict)


def write_queued(trial_dir: Path, queued: QueuedRecord) -> None:
    atomic_write_json(Path(trial_dir) / QUEUED_FILE, queued.to_dict())


def read_progress(trial_dir: Path) -> ProgressRecord | None:
    """The runner's last heartbeat, or None before its first."""
    return _read_record(os.path.join(trial_dir, PROGRESS_FILE), ProgressRecord.from_dict)


def write_progress(trial_dir: Path, progress: ProgressRecord) -> None:
    atomic_write_json(Path(trial_dir) / PROGRESS_FILE, progress.to_dict())


METRIC_KEYS = ("iteration", "lr", "train_loss", "train_acc", "val_acc", "test_acc", "images_per_s", "elapsed_s")


def read_metrics(path: Path | str) -> list[dict[str, Any]]:
    """metrics.jsonl's rows (none before the first evaluation); a row that is not a mapping, or whose `iteration`
    is not an integer or whose other `METRIC_KEYS` are not numbers or null, is a ValueError naming its line. NaN
    passes (a diverged run's loss is NaN): a reader that needs a finite value checks it."""
    rows = read_lines(path)
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise ValueError(f"unreadable {path}: line {number}: must be a mapping, got {shown(row)}")
        for key in METRIC_KEYS:
            value = row.get(key)
            if key == "iteration":
                fits, words = type(value) is int, "an integer"
            else:
                fits = value is None or isinstance(value, int | float) and not isinstance(value, bool)
                words = "a number or null"
            if not fits:
                raise ValueError(f"unreadable {path}: line {number}: {key}: must be {words}, got {shown(value)}")
    return rows


Record = TypeVar("Record")


def _read_record(path: str, parse: Callable[[dict[str, Any]], Record]) -> Record | None:
    """None when the file does not exist (yet); a file that is not a valid record is a one-line ValueError
    naming it, so the CLI says which trial to look at instead of printing a traceback. `path` is a str: status
    reads 10⁴ trials, and a Path per file is a fifth of that."""
    try:
        data = read_json(path, MAX_RECORD_BYTES)
        if data is None:
            return None
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        return parse(data)
    except (ValueError, TypeError) as error:  # bad JSON, bad status, a missing required field
        raise ValueError(f"unreadable {path}: {error}") from error


def _typed_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The keys `cls` declares (a newer writer's extra keys must not break an older reader), each of its field's
    type: anything else (a list for a node, a string for an accuracy, a NaN) is a ValueError naming the key, so that
    its trial is unreadable, not a traceback in whatever shows it. Values are kept as written."""
    checks = _field_checks(cls)
    values = {}
    for name, value in data.items():
        check = checks.get(name)
        if check is None:
            continue
        optional, fits, words = check
        if not (value is None and optional or value is not None and fits(value)):
            raise ValueError(f"{name}: must be {words}{' or null' if optional else ''}, got {shown(value)}")
        values[name] = value
    return values


def finite_number(value: Any) -> bool:
    """JSON allows NaN and Infinity (Python writes them), strict parsers do not, and no accuracy or time is one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


_CHECKS: dict[Any, tuple[Callable[[Any], bool], str]] = {
    str: (lambda value: isinstance(value, str), "a string"),
    int: (lambda value: isinstance(value, int) and not isinstance(value, bool) and finite_number(value),
          "an integer"),
    float: (finite_number, "a finite number"),
    bool: (lambda value: isinstance(value, bool), "true or false"),
    list[dict[str, Any]]: (lambda value: isinstance(value, list) and all(isinstance(v, dict) for v in value),
                           "a list of mappings"),
    Outcome: (lambda value: value in _OUTCOMES, f"one of {', '.join(Outcome)}"),
}
_OUTCOMES = frozenset(Outcome)


@functools.cache
def _field_checks(cls: type) -> dict[str, tuple[bool, Callable[[Any], bool], str]]:
    """Per field: (None allowed, the check of any other value, the type in words), from its type hint."""
    hints = typing.get_type_hints(cls)
    checks = {}
    for field in fields(cls):
        hint = hints[field.name]
        members = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        (hint,) = [member for member in members if member is not NoneType]
        checks[field.name] = (NoneType in members, *_CHECKS[hint])
    return checks
