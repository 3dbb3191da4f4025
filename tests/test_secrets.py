"""No secret leaves the process it was given to: W&B credentials reach Ray's trial workers through their process
environment only, never through Ray's runtime_env (job metadata that every user of the cluster can read) or a file.

Real Ray, real trials (resnet8, 10 iterations, real CIFAR-10) with W&B in offline mode. The one stand-in is a
runner that wraps the real trial: it records a hash of the key its worker process sees (never the key), since an
offline W&B run does not use the key and so cannot show that it arrived.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from ghostsweep.trials.files import atomic_write_json, read_json

REPO = Path(__file__).resolve().parents[1]
FAKE_KEY = f"ghostsweep-fake-wandb-key-{secrets.token_hex(12)}"  # fresh each run: found only where it leaked
PROBE_FILE = "key-probe.json"
SPEC = {
    "name": "secrets", "grids": [{"model": "resnet8"}], "seeds": 1,
    "recipe": {"iterations": 10, "milestones": [5], "eval_interval": 10, "checkpoint_interval": 10,
               "batch_size": 32},
    "data": {"val_size": 0, "test_size": 200}, "runtime": {"device": "cpu"},
    "wandb": {"mode": "offline", "project": "secrets"}, "resources": {"cpus_per_trial": 1},
}


def key_probe_trial(config: Any, out_dir: Path, data_dir: Path | None = None, **options: Any) -> Any:
    """The real trial, after writing down the SHA-256 of the WANDB_API_KEY this worker process sees."""
    from ghostsweep.trials.runner import run_trial

    seen = os.environ.get("WANDB_API_KEY")
    digest = hashlib.sha256(seen.encode()).hexdigest() if seen else None
    atomic_write_json(Path(out_dir) / PROBE_FILE, {"wandb_api_key_sha256": digest})
    return run_trial(config, out_dir, data_dir, **options)


@pytest.fixture
def env(cifar10_dir) -> dict[str, str]:
    """The submitting user's environment: a W&B key, the data, and the probe as the trial runner."""
    return os.environ | {
        "WANDB_API_KEY": FAKE_KEY, "GHOSTSWEEP_DATA_DIR": str(cifar10_dir), "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO / "tests"), "GHOSTSWEEP_TRIAL_RUNNER": "test_secrets:key_probe_trial",
    }


@pytest.fixture
def ray_temp_dir():
    """Ray's session files (logs, runtime-env records) in a folder of this test's: short, for Ray's sockets."""
    path = Path(tempfile.mkdtemp(prefix="gs-ray-", dir="/tmp"))
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


def submit(spec_dir: Path, env: dict[str, str], *options: str) -> subprocess.CompletedProcess:
    spec = spec_dir / "spec.yaml"
    spec.write_text(json.dumps(SPEC))
    command = [sys.executable, "-P", "-m", "ghostsweep.orchestrator.cli", "submit", str(spec),
               "--out", str(spec_dir / "sweep"), "--backend", "ray", *options]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)


def assert_worker_saw_key_and_no_file_holds_it(sweep_root: Path, *other_dirs: Path) -> None:
    trial_dirs = list((sweep_root / "trials").iterdir())
    assert len(trial_dirs) == 1
    result = read_json(trial_dirs[0] / "result.json")
    assert result["status"] == "done", result
    assert Path(result["wandb_run_dir"]).is_dir()  # the trial's offline W&B run, inside the sweep
    probe = read_json(trial_dirs[0] / PROBE_FILE)
    assert probe["wandb_api_key_sha256"] == hashlib.sha256(FAKE_KEY.encode()).hexdigest()
    scanned = 0
    for root in (sweep_root, *other_dirs):
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert FAKE_KEY.encode() not in path.read_bytes(), f"the W&B key leaked into {path}"
                scanned += 1
    assert scanned > 20, scanned  # the sweep's files, the W&B run's, Ray's logs


@pytest.mark.ray
def test_private_ray_workers_inherit_the_key_and_no_file_holds_it(tmp_path, env, ray_temp_dir):
    """The default: a Ray started by `submit` itself; its workers inherit the key from the submitting process."""
    done = submit(tmp_path, env | {"RAY_TMPDIR": str(ray_temp_dir)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert any(ray_temp_dir.rglob("*.log")), "Ray wrote its session files elsewhere"
    assert_worker_saw_key_and_no_file_holds_it(tmp_path / "sweep", ray_temp_dir)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_running_cluster_gets_no_key_in_its_job_metadata(tmp_path, env, ray_temp_dir):
    """A Ray cluster started beforehand, its nodes given the key as an operator would: the submitting driver's job
    record in the GCS (its runtime_env included) holds no key, and the worker still sees the node's."""
    port = free_port()
    env = env | {"RAY_AUTH_MODE": "token"}  # `ray start` turns token auth on; its clients must send the token
    head = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", f"--port={port}",
         "--num-cpus=2", "--include-dashboard=false", f"--temp-dir={ray_temp_dir}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        done = submit(tmp_path, env, "--backend-option", f"address=127.0.0.1:{port}")
        assert done.returncode == 0, done.stdout + done.stderr
        jobs = job_table(f"127.0.0.1:{port}", env)
        assert len(jobs) >= 2  # the submit's driver and ours
        assert not [job for job in jobs if FAKE_KEY.encode() in job], "the W&B key is in Ray's job metadata"
        assert any(b"GHOSTSWEEP_DATA_DIR" in job for job in jobs)  # the runtime_env is there, without the key
        assert "WANDB_API_KEY not sent to the Ray cluster" in done.stderr  # the user learns where it must be
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # our own head's session: raylet, GCS and their workers
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        time.sleep(1)  # let the session's processes flush their logs before the files are scanned
    assert_worker_saw_key_and_no_file_holds_it(tmp_path / "sweep", ray_temp_dir)


def job_table(address: str, env: dict[str, str]) -> list[bytes]:
    """Every job's raw record in the GCS (config, runtime_env), as any client of the cluster can read it."""
    code = ("import json, ray, sys; from ray._private import state; "
            "ray.init(address=sys.argv[1], logging_level='ERROR'); "
            "table = state.state._connect_and_get_accessor().get_job_table(skip_submission_job_info_field=False, "
            "skip_is_running_tasks_field=True); print(json.dumps([bytes(job).hex() for job in table])); "
            "ray.shutdown()")
    done = subprocess.run([sys.executable, "-c", code, address], capture_output=True, text=True, timeout=120,
                          env=env | {"RAY_ADDRESS": address})
    assert done.returncode == 0, done.stderr
    return [bytes.fromhex(job) for job in json.loads(done.stdout.strip().splitlines()[-1])]
