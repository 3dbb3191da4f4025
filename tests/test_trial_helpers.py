"""Helpers for the trial tests: run `train` as a user would, read what a trial left behind."""

from __future__ import annotations

import importlib
import json
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from cpu_kernels import pinned_env, require, rerun_reason, runs_here

from ghostsweep.trials.config import TrialConfig
from ghostsweep.trials.stop import STOP_SIGNALS

REPO = Path(__file__).resolve().parents[1]
TRAIN = [sys.executable, "-m", "ghostsweep", "train"]
TRAIN_MAIN = "ghostsweep.orchestrator.cli:main"  # in-process equivalent
WALL_CLOCK_FIELDS = ("images_per_s", "elapsed_s")  # the only metrics that may differ between equal runs
# A smoke trial: the smallest CIFAR ResNet, small batches, cheap evaluations.
SMOKE = ["--model", "resnet8", "--seed", "0", "--batch-size", "32", "--val-size", "200", "--test-size", "200"]


def trial_env(**extra: str) -> dict[str, str]:
    """One thread per process (the box is shared) and the repo importable; W&B kept off the network."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "GHOSTSWEEP_"))}
    return env | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "tests"), "WANDB_SILENT": "true"} | extra


def trial_env_on(kernels: str, **extra: str) -> dict[str, str]:
    """`trial_env` pinned to the kernel set `kernels` (`cpu_kernels`), for a test whose tolerance is rounding-level
    and was measured on that set; skips the calling test where this CPU cannot run it."""
    require(kernels)
    return pinned_env(kernels, trial_env(**extra))


def trial_dir_for(root: Path, config: TrialConfig) -> Path:
    """A trial directory as `ghostsweep submit` lays it out: the worker reads config.json."""
    trial_dir = root / config.trial_id()
    trial_dir.mkdir(parents=True)
    (trial_dir / "config.json").write_text(json.dumps(config.to_dict() | {"trial_id": config.trial_id()}))
    return trial_dir


def train(*args: object, threads: int = 1) -> int:
    """Run `train` in this process (no interpreter start-up), on one thread like `train_process` unless asked
    for more; the stop signals, which `train` leaves ignored for its process's exit, are handed back to pytest."""
    module, _, function = TRAIN_MAIN.partition(":")
    before = torch.get_num_threads()
    handlers = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    torch.set_num_threads(threads)
    try:
        return getattr(importlib.import_module(module), function)(["train", *map(str, args)])
    finally:
        torch.set_num_threads(before)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def train_on(kernels: str | None, *args: object, threads: int = 1, timeout: float = 900) -> int:
    """`train` on the named kernel set (`cpu_kernels.KERNEL_SETS`), skipping the calling test where this CPU cannot
    run it: in a new process with those kernels pinned and `threads` threads (its output echoed for pytest to show
    if the test fails), or in this process where it runs them already; `None`: this CPU's own kernels, here."""
    if kernels is None:
        return train(*args, threads=threads)
    require(kernels)
    if runs_here(kernels):
        return train(*args, threads=threads)
    done = subprocess.run([*TRAIN, *map(str, args)], env=trial_env_on(kernels, OMP_NUM_THREADS=str(threads)),
                          cwd=REPO, capture_output=True, text=True, timeout=timeout)
    print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
    return done.returncode


# A learning test runs on this CPU's own kernels and again pinned to AVX2, the kernels its bound was measured on,
# where those differ (an AVX-512 CPU); on an AVX2 CPU the second run would repeat the first and is skipped.
OWN_AND_AVX2_KERNELS = pytest.mark.parametrize("kernels", [None, "avx2"], ids=["own-kernels", "avx2-kernels"])


def train_learning(kernels: str | None, *args: object, threads: int = 1) -> int:
    """`train_on` for a test parametrized by OWN_AND_AVX2_KERNELS."""
    if kernels is not None and (reason := rerun_reason(kernels)):
        pytest.skip(reason)
    return train_on(kernels, *args, threads=threads)


def train_process(*args: object, env: dict[str, str] | None = None, cwd: Path | None = None,
                  timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `train` as a user would, to completion; stdout and stderr are captured."""
    return subprocess.run([*TRAIN, *map(str, args)], env=env or trial_env(), cwd=cwd or REPO,
                          capture_output=True, text=True, timeout=timeout)


def train_interrupted(*args: object, out: Path, after_iteration: int, signum: int = signal.SIGUSR2,
                      env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Start `train`, signal it once metrics.jsonl shows `after_iteration`, wait for it to end."""
    process = subprocess.Popen([*TRAIN, *map(str, args), "--out", str(out)], env=env or trial_env(), cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not any(row["iteration"] >= after_iteration for row in metrics(out)):
        if process.poll() is not None or time.time() > deadline:
            break
        time.sleep(0.05)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def metrics(out: Path, drop_wall_clock: bool = False) -> list[dict[str, Any]]:
    path = out / "metrics.jsonl"
    try:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line]
    except (FileNotFoundError, json.JSONDecodeError):
        return []
    if drop_wall_clock:
        rows = [{k: v for k, v in row.items() if k not in WALL_CLOCK_FIELDS} for row in rows]
    return rows


def result(out: Path) -> dict[str, Any]:
    return json.loads((out / "result.json").read_text())


def checkpoint(out: Path) -> dict[str, Any]:
    return torch.load(out / "checkpoint.pt", weights_only=True)


def assert_same_state(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Bitwise equality of two nested state dicts (tensors compared exactly)."""
    assert type(a) is type(b)
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same_state(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same_state(x, y)
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    else:
        assert a == b


def wandb_run_record(run_dir: Path) -> Any:
    """The `run` record of an offline W&B run."""
    for record in wandb_records(run_dir):
        if record.WhichOneof("record_type") == "run":
            return record.run
    raise AssertionError(f"no run record in {run_dir}")


def wandb_offline_run(run_dir: Path) -> SimpleNamespace:
    """An offline run as the public API would serve it once synced (config, summary, history, scan_history):
    what `report --from-wandb` reads, taken from the run's own log instead of a W&B server (none runs here)."""
    config, summary, history, run = {}, {}, [], None
    for record in wandb_records(run_dir):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            config |= {item.key: json.loads(item.value_json) for item in run.config.update}
        elif kind == "config":
            config |= {item.key: json.loads(item.value_json) for item in record.config.update}
        elif kind == "history":
            history.append({_key(item): json.loads(item.value_json) for item in record.history.item})
        elif kind == "summary":
            summary |= {_key(item): json.loads(item.value_json) for item in record.summary.update}
    assert run is not None, f"no run record in {run_dir}"
    config = {k: v for k, v in config.items() if not k.startswith("_")}

    def scan_history(keys: list[str]) -> list[dict[str, Any]]:
        return [{k: row[k] for k in keys if k in row} for row in history]

    return SimpleNamespace(name=run.display_name, group=run.run_group, config=config, summary=summary,
                           scan_history=scan_history)


def _key(item: Any) -> str:
    """A history or summary item's key: wandb's core writes it as a one-element `nested_key`."""
    return item.key or ".".join(item.nested_key)


def wandb_records(run_dir: Path) -> Iterator[Any]:
    """Every record of an offline W&B run, read from its run-*.wandb log (a LevelDB-style record log)."""
    from wandb.proto import wandb_internal_pb2

    data = next(run_dir.glob("run-*.wandb")).read_bytes()
    assert data[:4] == b":W&B"
    block, position, pending = 32768, 7, b""
    while position + 7 <= len(data):
        if block - position % block < 7:  # block trailer too short for a header: padding
            position += block - position % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[position:position + 7])
        chunk = data[position + 7:position + 7 + length]
        position += 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk  # 1 full, 2 first, 3 middle, 4 last
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record
