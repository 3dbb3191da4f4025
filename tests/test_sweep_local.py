"""The local backend through the CLI, with a fake trial (GHOSTSWEEP_TRIAL_RUNNER) so no training runs.

The real runner end to end is in test_sweep_e2e.py.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ghostsweep.orchestrator.sweepdir.lease import Lease
from ghostsweep.trials.datadir import FOLDER, TEST_FILE, TRAIN_FILES
from ghostsweep.trials.files import atomic_write_bytes, atomic_write_json

REPO = Path(__file__).resolve().parents[1]
SPEC = """
name: fake
grids:
  - model: [resnet20]
  - model: [ghost_resnet20]
    faults.fail_at_iteration: [{fail_at}]
    faults.times: [1]
seeds: 2
recipe: {{iterations: 10, milestones: [5], eval_interval: 5}}
resources: {{cpus_per_trial: 1}}
backend: {{name: local, options: {{max_parallel: {parallel}}}}}
"""


def fake_run_trial(config, out_dir: Path, data_dir: Path | None = None, stop_event=None) -> dict:
    """Stands in for trials.runner.run_trial: logs each attempt, honours fault injection and SIGTERM."""
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    with open(out_dir / "runs.log", "a") as log:  # once logged, SIGTERM interrupts the trial
        log.write(f"{os.getpid()}\n")
    attempt = len((out_dir / "runs.log").read_text().splitlines())
    deadline = time.time() + float(os.environ.get("FAKE_TRIAL_S", "0"))
    while time.time() < deadline and not stop:
        time.sleep(0.05)
    faults = config.faults
    if stop:
        result = {"status": "interrupted", "reason": "stop requested"}
    elif faults.fail_at_iteration is not None and (faults.times == 0 or attempt <= faults.times):
        result = {"status": "failed", "reason": f"injected fault at iteration {faults.fail_at_iteration}"}
    else:
        result = {"status": "done", "reason": None, "final_test_acc": 90.0 + config.seed + attempt}
    result |= {"trial_id": out_dir.name, "variant": config.variant, "seed": config.seed}
    atomic_write_json(out_dir / "result.json", result)
    return result


def fake_env(trial_s: float = 0) -> dict[str, str]:
    return os.environ | {
        "PYTHONPATH": str(REPO / "tests"),
        "GHOSTSWEEP_TRIAL_RUNNER": "test_sweep_local:fake_run_trial", "FAKE_TRIAL_S": str(trial_s),
        "GHOSTSWEEP_DATA_DIR": str(stand_in_data()),
    }


STAND_IN_BATCH = pickle.dumps({"data": [], "labels": []})


def stand_in_data() -> Path:
    """The fake trial reads no images, but `submit` checks that CIFAR-10's files are there and unpickle as a batch
    does: a stand-in folder with their names (each an empty batch), so these tests run where the real data set is
    absent."""
    folder = Path(tempfile.gettempdir()) / f"ghostsweep-tests-{os.getuid()}" / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for name in (*TRAIN_FILES, TEST_FILE):
        if not (folder / name).is_file() or (folder / name).read_bytes() != STAND_IN_BATCH:
            atomic_write_bytes(folder / name, STAND_IN_BATCH)  # tests running beside us read it meanwhile
    return folder


def ghostsweep(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "ghostsweep.orchestrator.cli", *args]
    return subprocess.run(command, env=fake_env(), capture_output=True, text=True, timeout=300)


def status(sweep: Path) -> dict[str, dict]:
    done = ghostsweep("status", str(sweep), "--json")
    assert done.returncode == 0, done.stderr
    return {t["trial_id"]: t for t in json.loads(done.stdout)["trials"]}


def runs(sweep: Path) -> dict[str, int]:
    return {d.name: len((d / "runs.log").read_text().splitlines()) for d in (sweep / "trials").iterdir()}


def test_fail_rerun_and_resubmit(tmp_path):
    spec, sweep = tmp_path / "fake.yaml", tmp_path / "sweep"
    spec.write_text(SPEC.format(fail_at=3, parallel=2))
    first = ghostsweep("submit", str(spec), "--out", str(sweep))
    assert first.returncode == 1, first.stdout + first.stderr  # two trials failed
    states = status(sweep)
    failed = {i: t for i, t in states.items() if t["state"] == "failed"}
    assert len(failed) == 2 and all(i.startswith("ghost_resnet20") for i in failed)
    assert {t["reason"] for t in failed.values()} == {"injected fault at iteration 3"}
    done_before = {i: (sweep / "trials" / i / "result.json").read_text() for i in states if i not in failed}

    again = ghostsweep("submit", str(spec), "--out", str(sweep))
    assert "nothing to submit" in again.stdout and "rerun" in again.stdout
    assert set(runs(sweep).values()) == {1}

    held_id, other_id = sorted(failed)
    held = Lease.acquire(sweep / "trials" / held_id)  # as if a worker still ran it: rerun must leave it alone
    rerun = ghostsweep("rerun", str(sweep), "--failed")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "left to their jobs: 1 trial(s) still queued or running" in rerun.stdout
    assert (status(sweep)[held_id]["state"], status(sweep)[other_id]["state"]) == ("running", "done")
    assert runs(sweep)[held_id] == 1
    held.release()
    rerun = ghostsweep("rerun", str(sweep), "--failed")
    assert rerun.returncode == 0 and "left to their jobs" not in rerun.stdout, rerun.stdout + rerun.stderr
    assert {s["state"] for s in status(sweep).values()} == {"done"}
    assert runs(sweep) == {i: 2 if i in failed else 1 for i in states}  # nothing else ran again
    assert {i: (sweep / "trials" / i / "result.json").read_text() for i in done_before} == done_before

    last = ghostsweep("submit", str(spec), "--out", str(sweep))
    assert "nothing to submit" in last.stdout and "submitting" not in last.stdout


def test_cancel_interrupts_running_and_unqueues_waiting_trials(tmp_path):
    spec, sweep = tmp_path / "fake.yaml", tmp_path / "sweep"
    spec.write_text(SPEC.format(fail_at="null", parallel=1))
    submit = subprocess.Popen(
        [sys.executable, "-m", "ghostsweep.orchestrator.cli", "submit", str(spec), "--out", str(sweep)],
        env=fake_env(trial_s=120), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        if any(sweep.glob("trials/*/runs.log")):  # a runner started (and waits for SIGTERM)
            break
        time.sleep(1)
    cancelled = ghostsweep("cancel", str(sweep))
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout
    submit.wait(timeout=120)
    states = [t["state"] for t in status(sweep).values()]
    assert sorted(states) == ["pending", "pending", "pending", "preempted"], submit.stdout.read()

    resumed = ghostsweep("rerun", str(sweep))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert {t["state"] for t in status(sweep).values()} == {"done"}
