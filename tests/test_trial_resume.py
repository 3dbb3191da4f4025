"""A trial is a pure function of its seed: same seed same run, and interruptions or crashes change nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_trial_helpers import (
    REPO,
    SMOKE,
    assert_same_state,
    checkpoint,
    metrics,
    result,
    train,
    train_interrupted,
    train_process,
    trial_dir_for,
    trial_env,
)

from ghostsweep.trials.checkpoint import CRASH_ENV
from ghostsweep.trials.config import DataConfig, Recipe, RuntimeConfig, TrialConfig
from ghostsweep.trials.files import CRASH_EXIT_CODE
from ghostsweep.trials.stop import StopRequest, request_stop_on_signals
from ghostsweep.trials.trialdir import ExitCode

# An eval every 10 iterations, a checkpoint every 15: interruptions land between evals and checkpoints.
RUN = [*SMOKE, "--iterations", "40", "--eval-interval", "10", "--checkpoint-interval", "15"]


@pytest.fixture(scope="module")
def reference(cifar10_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted run of seed 0 (as a user runs it), the run every other one here is compared with."""
    out = tmp_path_factory.mktemp("reference")
    completed = train_process(*RUN, "--seed", "0", "--data-dir", cifar10_dir, "--out", out, cwd=out)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines()[-1].startswith("done: resnet8-s0-")
    return out


def assert_same_trial(a: Path, b: Path) -> None:
    assert metrics(a, drop_wall_clock=True) == metrics(b, drop_wall_clock=True)
    ckpt_a, ckpt_b = checkpoint(a), checkpoint(b)
    for key in ("iteration", "model", "optimizer", "best_state"):
        assert_same_state(ckpt_a[key], ckpt_b[key])
    keys = ("final_val_acc", "final_test_acc", "best_val_acc", "best_val_test_acc", "best_val_iteration",
            "iterations")
    assert {k: result(a)[k] for k in keys} == {k: result(b)[k] for k in keys}


def test_reference_run_writes_the_trial_directory(reference: Path, cifar10_dir: Path) -> None:
    summary = result(reference)
    assert summary["status"] == "done" and summary["reason"] is None
    assert summary["iterations"] == 40 and summary["attempt"] == 1 and summary["world_size"] == 1
    assert summary["params"] == 75_290 and summary["macs"] > 0 and summary["wandb_run_dir"] is None
    assert [row["iteration"] for row in metrics(reference)] == [10, 20, 30, 40]
    tests = [row["test_acc"] for row in metrics(reference)]  # at every evaluation: the report's max over evals
    assert None not in tests and summary["max_test_acc"] == max(tests) and summary["final_test_acc"] == tests[-1]
    assert {p.name for p in reference.iterdir()} == {
        "config.json", "metrics.jsonl", "progress.json", "checkpoint.pt", "checkpoint.prev.pt",
        "checkpoint.sha256.json", "result.json", "attempts.json",
    }  # W&B disabled (the default) leaves nothing, not even in the working directory
    assert train(*RUN, "--seed", "0", "--data-dir", cifar10_dir, "--out", reference) == 0
    assert result(reference) == summary  # a done trial is not run again


def test_same_seed_same_run_other_seed_other_run(reference: Path, cifar10_dir: Path, tmp_path: Path) -> None:
    again, other = tmp_path / "again", tmp_path / "other"
    assert train(*RUN, "--seed", "0", "--data-dir", cifar10_dir, "--out", again) == 0
    assert train(*RUN, "--seed", "1", "--data-dir", cifar10_dir, "--out", other) == 0
    assert_same_trial(reference, again)
    assert metrics(other, drop_wall_clock=True) != metrics(reference, drop_wall_clock=True)
    weights = "conv1.weight"
    assert not checkpoint(other)["model"][weights].equal(checkpoint(reference)["model"][weights])


def test_interrupted_and_resumed_equals_uninterrupted(
    reference: Path, cifar10_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "trial"
    stopped = train_interrupted(*RUN, "--seed", "0", "--data-dir", cifar10_dir, out=out, after_iteration=10,
                                signum=signal.SIGUSR2)
    assert stopped.returncode == 3, stopped.stderr
    interrupted = result(out)
    assert interrupted["status"] == "interrupted" and 10 <= interrupted["iterations"] < 40
    assert checkpoint(out)["iteration"] == interrupted["iterations"]
    assert train(*RUN, "--seed", "0", "--data-dir", cifar10_dir, "--out", out) == 0
    assert result(out)["attempt"] == 2
    assert_same_trial(reference, out)


def test_crash_between_write_and_rename_resumes_from_previous_checkpoint(
    reference: Path, cifar10_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "trial"
    crashed = train_process(*RUN, "--seed", "0", "--data-dir", cifar10_dir, "--out", out,
                            env=trial_env(**{CRASH_ENV: "30"}))
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    assert checkpoint(out)["iteration"] == 15  # the checkpoint of iteration 30 never replaced it
    assert any(name.startswith(".checkpoint.pt.tmp") for name in os.listdir(out))  # written, not renamed
    assert not (out / "result.json").exists()
    assert train(*RUN, "--seed", "0", "--data-dir", cifar10_dir, "--out", out) == 0
    assert not any(".tmp" in name for name in os.listdir(out))
    assert_same_trial(reference, out)


def test_divergence_ends_the_trial_as_failed(cifar10_dir: Path, tmp_path: Path) -> None:
    code = train(*SMOKE, "--iterations", "30", "--lr", "1e6", "--data-dir", cifar10_dir, "--out", tmp_path)
    assert code == 1
    summary = result(tmp_path)
    assert summary["status"] == "failed" and summary["reason"].startswith("diverged at iteration ")
    assert int(summary["reason"].rsplit(" ", 1)[1]) == summary["iterations"] <= 30


def test_runtime_options_run_and_are_recorded(cifar10_dir: Path, tmp_path: Path) -> None:
    options = ["--channels-last", "--precision", "bf16", "--normalization", "channel", "--no-deterministic"]
    code = train(*SMOKE, *options, "--iterations", "4", "--eval-interval", "4", "--data-dir", cifar10_dir,
                 "--out", tmp_path)
    assert code == 0
    summary = result(tmp_path)
    recorded = ("channels_last", "precision", "compile", "deterministic")
    assert tuple(summary[key] for key in recorded) == (True, "bf16", "off", False)


@pytest.mark.parametrize("command", ["worker", "train"])
def test_a_burst_of_signals_checkpoints_and_ends_interrupted(cifar10_dir: Path, tmp_path: Path, command: str) -> None:
    """Slurm signals every process of a job step and our backends forward the same signal again, so a USR2 can
    arrive while the handler of the previous one still runs. A handler that takes a lock (`threading.Event.set`)
    then waits on itself, and the trial hangs for good: a CI run of the Slurm preemption test hung 17 minutes
    this way. Under a 2-second burst of USR2 the sweep worker, and `ghostsweep train` run directly, must still
    checkpoint and end "interrupted" (not be killed by a late USR2 as the interpreter shuts down)."""
    config = TrialConfig(model="resnet8", recipe=Recipe(iterations=100_000, batch_size=32, eval_interval=1_000),
                         data=DataConfig(val_size=0, test_size=200), runtime=RuntimeConfig(device="cpu"))
    trial_dir = trial_dir_for(tmp_path, config)
    argv = {"worker": ["ghostsweep.orchestrator.submission.worker", str(trial_dir)],
            "train": ["ghostsweep.orchestrator.cli", "train", "--config", str(trial_dir / "config.json"),
                      "--out", str(trial_dir)]}
    worker = subprocess.Popen([sys.executable, "-m", *argv[command]],
                              env=trial_env(GHOSTSWEEP_DATA_DIR=str(cifar10_dir)), cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not (trial_dir / "progress.json").exists() and worker.poll() is None and time.time() < deadline:
        time.sleep(0.05)  # the heartbeat comes once training runs (the stop handlers went in before)
    burst_end = time.time() + 2
    while time.time() < burst_end and worker.poll() is None:
        worker.send_signal(signal.SIGUSR2)
        time.sleep(0.0002)
    try:
        output, _ = worker.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        worker.kill()
        pytest.fail("the trial hung under a burst of signals (a signal handler deadlocked)")
    assert worker.returncode == ExitCode.INTERRUPTED, output[-3000:]
    summary = result(trial_dir)
    assert summary["status"] == "interrupted" and summary["iterations"] == checkpoint(trial_dir)["iteration"] > 0


# A process whose main thread runs Python code (where signal handlers run) while signals keep coming.
_HANDLER_UNDER_BURST = """
import signal, time
from ghostsweep.trials.stop import StopRequest
stop = StopRequest()
signal.signal(signal.SIGUSR2, stop.set)
print("ready", flush=True)
end = time.time() + 2
while time.time() < end:
    stop.is_set()
signal.signal(signal.SIGUSR2, signal.SIG_IGN)
print("set" if stop.is_set() else "unset", flush=True)
"""


def test_the_stop_request_is_safe_to_set_from_nested_signal_handlers() -> None:
    """One second of back-to-back USR2 into a process whose handler is `StopRequest.set`: it exits normally.
    With `threading.Event().set` as the handler, the same burst killed 5 of 5 processes (RecursionError from
    handlers nested in each other's lock acquire) when this test was written."""
    child = subprocess.Popen([sys.executable, "-c", _HANDLER_UNDER_BURST], env=trial_env(), cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert child.stdout.readline() == "ready\n"
    burst_end = time.time() + 1
    while time.time() < burst_end and child.poll() is None:
        child.send_signal(signal.SIGUSR2)
    try:
        output, _ = child.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        child.kill()
        pytest.fail("the process hung under a burst of signals")
    assert (child.returncode, output) == (0, "set\n")


def test_a_stop_request_made_off_the_main_thread_installs_no_handler() -> None:
    """Ray Train runs each DDP rank's worker in a side thread, where `signal.signal` raises ValueError: the rank
    still gets its stop request (it ends with its actor), and the process's handlers stay as they were."""
    before = signal.getsignal(signal.SIGUSR2)
    made: list[StopRequest] = []
    rank = threading.Thread(target=lambda: made.append(request_stop_on_signals()))
    rank.start()
    rank.join()
    assert len(made) == 1 and not made[0].is_set()
    assert signal.getsignal(signal.SIGUSR2) is before
