"""`python -P -m ghostsweep.orchestrator.submission.worker TRIAL_DIR [TRIAL_DIR ...]`: what every backend runs on
a node.

For each trial: skip it when done or leased by a live worker, else hold its lease (with heartbeat) while
`trials.runner.run_trial` runs it, resuming from its checkpoint. Several TRIAL_DIRs are packed trials: one
child process each, run concurrently on the same device. Exit 0 when all are done, 4 (SKIPPED: nothing failed)
when another live worker holds a trial's lease, 3 when any was interrupted (requeue me), else 1. A result.json
that is not what a writer wrote is set aside (kept) under the lease, so a rerun repairs the trial.

A DDP trial runs one worker per rank (RANK, or SLURM_PROCID in a multi-task Slurm step): rank 0 holds the
lease and writes the files as above; the other ranks only run the trial beside it.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ghostsweep.orchestrator.backends.base import SignalForwarder, worker_command
from ghostsweep.orchestrator.sweepdir.directory import SPEC_FILE, SweepDir
from ghostsweep.orchestrator.sweepdir.lease import Lease, read_lease
from ghostsweep.trials.binding import node_name
from ghostsweep.trials.files import MAX_RECORD_BYTES
from ghostsweep.trials.stop import STOP_SIGNALS, StopRequest, ignore_late_signals, request_stop_on_signals
from ghostsweep.trials.trialdir import (
    CONFIG_FILE,
    RESULT_FILE,
    ExitCode,
    Outcome,
    TrialResult,
    read_json,
    read_result,
    record_failure,
    set_aside,
)

RUNNER_ENV = "GHOSTSWEEP_TRIAL_RUNNER"  # "module:function"; tests substitute a fake trial
DEFAULT_RUNNER = "ghostsweep.trials.runner:run_trial"
FORWARDED_SIGNALS = (*STOP_SIGNALS, signal.SIGINT)
MPS_ENV = "GHOSTSWEEP_MPS"  # "off": packed trials time-slice the GPU even where MPS could run
MPS_CONTROL = "nvidia-cuda-mps-control"
MPS_PROBE = "import torch; torch.ones(1, device='cuda').sum().item()"


def main(argv: list[str] | None = None) -> int:
    trial_dirs = [Path(arg) for arg in (sys.argv[1:] if argv is None else argv)]
    if not trial_dirs or any(str(d).startswith("-") for d in trial_dirs):
        print(f"usage: python -P -m {__spec__.name} TRIAL_DIR [TRIAL_DIR ...]", file=sys.stderr)
        return ExitCode.USAGE
    try:
        return run_trial_dir(trial_dirs[0]) if len(trial_dirs) == 1 else run_packed(trial_dirs)
    finally:
        ignore_late_signals(FORWARDED_SIGNALS)


def run_packed(trial_dirs: list[Path]) -> int:
    """One child worker per trial, sharing this process's device; signals are passed on to every child.

    A signal that arrives before every child has started (the MPS probe takes seconds) starts no more of them:
    the worker ends "interrupted", so the backend requeues it."""
    signals = SignalForwarder().install(FORWARDED_SIGNALS)  # never restored: main() then ignores them
    with mps_server() as env:
        for trial_dir in trial_dirs:
            if signals.received:
                break
            signals.children.append(subprocess.Popen(worker_command([trial_dir]), env=env))
        codes = [child.wait() for child in signals.children]
    return combined_exit_code(codes, len(trial_dirs))


def combined_exit_code(codes: list[int], trials: int) -> ExitCode:
    """One exit code for packed trials: interrupted beats failed beats skipped beats done."""
    if ExitCode.INTERRUPTED in codes or len(codes) < trials:
        return ExitCode.INTERRUPTED
    if any(code not in (ExitCode.DONE, ExitCode.SKIPPED) for code in codes):
        return ExitCode.FAILED
    return ExitCode.SKIPPED if ExitCode.SKIPPED in codes else ExitCode.DONE


@contextlib.contextmanager
def mps_server() -> Iterator[dict[str, str]]:
    """The environment for packed trials: with a private MPS daemon where CUDA MPS can run, else as is.

    Without MPS, processes on one GPU take turns (time-slicing): a trial whose compiled step already keeps the
    GPU busy gains nothing from company (measured in docs/throughput.md). Under MPS their kernels run side by
    side. A cluster's own MPS (CUDA_MPS_PIPE_DIRECTORY set, e.g. Slurm's gres/mps) is used as it is; otherwise
    a daemon private to this worker (its own pipe directory, so no other job sees it) starts, is probed with
    one CUDA client, and is shut down with the worker. Any failure means no MPS, said in one line.
    """
    env = dict(os.environ)
    wanted = env.get(MPS_ENV, "auto") != "off" and env.get("CUDA_VISIBLE_DEVICES") != ""
    if not wanted or "CUDA_MPS_PIPE_DIRECTORY" in env or shutil.which(MPS_CONTROL) is None:
        yield env
        return
    with tempfile.TemporaryDirectory(prefix="ghostsweep-mps-") as folder:
        env |= {"CUDA_MPS_PIPE_DIRECTORY": f"{folder}/pipe", "CUDA_MPS_LOG_DIRECTORY": f"{folder}/log"}
        started = _start_mps(env)
        try:
            yield env if started else dict(os.environ)
        finally:
            if started:
                _stop_mps(env)


def _start_mps(env: dict[str, str]) -> bool:
    try:
        os.makedirs(env["CUDA_MPS_PIPE_DIRECTORY"])
        os.makedirs(env["CUDA_MPS_LOG_DIRECTORY"])
        subprocess.run([MPS_CONTROL, "-d"], env=env, check=True, timeout=30, capture_output=True)
        subprocess.run([sys.executable, "-P", "-c", MPS_PROBE], env=env, check=True, timeout=120, capture_output=True)
    except (OSError, subprocess.SubprocessError) as error:
        print(f"packed trials share the GPU without MPS: {type(error).__name__}: {error}", flush=True)
        _stop_mps(env)
        return False
    print(f"packed trials share the GPU through MPS (pipe {env['CUDA_MPS_PIPE_DIRECTORY']})", flush=True)
    return True


def _stop_mps(env: dict[str, str]) -> None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run([MPS_CONTROL], input="quit\n", text=True, env=env, timeout=30, capture_output=True)


def run_trial_dir(trial_dir: Path, runner: Callable[..., TrialResult | dict[str, Any]] | None = None) -> ExitCode:
    """Run one trial, under its lease on rank 0; the exit code says done, failed or interrupted."""
    if _is_done(trial_dir):
        print(f"{trial_dir.name}: already done, skipped", flush=True)
        return ExitCode.DONE
    from ghostsweep.trials.distributed import detect

    # Catch a preemption from the very start: a SIGTERM during imports or data loading would otherwise kill the
    # worker, and the trial would read "failed" instead of "preempted".
    stop = request_stop_on_signals()
    if not detect().is_main:
        return _run(trial_dir, runner or _load_runner(), stop, main_rank=False)
    lease = Lease.acquire(trial_dir)
    if lease is None:
        holder = read_lease(trial_dir) or {}
        print(f"{trial_dir.name}: already running elsewhere (leased by {holder.get('node')} pid "
              f"{holder.get('pid')}), skipped", flush=True)
        return ExitCode.SKIPPED
    try:
        if _is_done(trial_dir, set_aside_unreadable=True):  # finished by another worker meanwhile
            return ExitCode.DONE
        lease.start_heartbeat(on_lost=_abandon)
        return _run(trial_dir, runner or _load_runner(), stop, main_rank=True)
    finally:
        lease.release()


def _run(trial_dir: Path, runner: Callable[..., TrialResult | dict[str, Any]], stop: StopRequest,
         main_rank: bool) -> ExitCode:
    """Call the runner; on rank 0 a crash that left no newer result.json is recorded as the trial's failure."""
    result_path = trial_dir / RESULT_FILE
    before = _mtime_ns(result_path)  # "newer" on the filesystem's clock, not this machine's
    try:
        from ghostsweep.trials.config import TrialConfig
        from ghostsweep.trials.datadir import data_root

        config_data = _read_config(trial_dir)
        config_data.pop("trial_id", None)
        index = SweepDir.of_trial(trial_dir).readable_index()  # submit --data-dir, else as `train` picks
        override, spec_data_dir = (index.data_dir_override, index.data_dir) if index else (None, None)
        data_dir = data_root(override, spec_data_dir=spec_data_dir)
        result = runner(TrialConfig.from_dict(config_data), trial_dir, data_dir, stop_event=stop)
        outcome = Outcome(result.status if isinstance(result, TrialResult) else result["status"])
    except Exception as error:
        traceback.print_exc()
        if main_rank and _mtime_ns(result_path) in (None, before):
            record_failure(trial_dir, f"{type(error).__name__}: {error}", node=node_name())
        return ExitCode.FAILED
    return ExitCode.for_outcome(outcome)


def _mtime_ns(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def _abandon(trial_dir: Path) -> None:
    """Another worker took our lease (we stalled past STALE_S): stop at once, writing nothing more."""
    print(f"{trial_dir.name}: lease taken over by another worker; exiting", file=sys.stderr, flush=True)
    os._exit(ExitCode.FAILED)


def _read_config(trial_dir: Path) -> dict[str, Any]:
    """config.json, or a ValueError naming it and saying how to write it again."""
    sweep = SweepDir.of_trial(trial_dir)
    remedy = f"`ghostsweep submit {sweep.root / SPEC_FILE} --out {sweep.root}` writes it"
    try:
        config_data = read_json(trial_dir / CONFIG_FILE, MAX_RECORD_BYTES)
    except ValueError as error:
        raise ValueError(f"unreadable {trial_dir / CONFIG_FILE}: {error}; move it aside and {remedy}") from None
    if not isinstance(config_data, dict):
        raise ValueError(f"no valid {CONFIG_FILE} in {trial_dir}: {remedy}")
    return config_data


def _is_done(trial_dir: Path, set_aside_unreadable: bool = False) -> bool:
    """Whether result.json says done; an unreadable one is not done, and is set aside when asked (we hold the
    lease, so no writer is mid-way)."""
    try:
        result = read_result(trial_dir)
    except ValueError as error:
        if set_aside_unreadable:
            aside = set_aside(trial_dir / RESULT_FILE)
            print(f"{trial_dir.name}: {str(error).splitlines()[0][:300]}; set aside as {aside.name}", flush=True)
        return False
    return result is not None and result.done


def _load_runner() -> Callable[..., TrialResult | dict[str, Any]]:
    module, _, function = os.environ.get(RUNNER_ENV, DEFAULT_RUNNER).partition(":")
    return getattr(importlib.import_module(module), function)


if __name__ == "__main__":
    sys.exit(main())
