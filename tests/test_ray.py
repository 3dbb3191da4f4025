"""The ray backend: on a local Ray (one session for the in-process tests), through the CLI, and inside Slurm.

Trials are real (CIFAR-10, resnet8 or resnet20, tens of iterations) except in the packing test, whose subject is Tune's
scheduling: there a stand-in trial waits at a rendezvous for the others, so the overlap is observed, not timed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ghostsweep.orchestrator.backends import get_backend
from ghostsweep.orchestrator.backends.private import private_dir
from ghostsweep.orchestrator.spec.sweepspec import parse_spec
from ghostsweep.orchestrator.submission.sweep import submit_trials
from ghostsweep.orchestrator.sweepdir.directory import SweepDir
from ghostsweep.orchestrator.sweepdir.state import read_state
from ghostsweep.trials.files import atomic_write_json, read_json, read_lines

REPO = Path(__file__).resolve().parents[1]
CIFAR10_DIR = REPO.parent / "shared/data/cifar-10-batches-py"
pytestmark = [pytest.mark.ray, pytest.mark.skipif(
    not (CIFAR10_DIR / "test_batch").is_file(),
    reason=f"real CIFAR-10 not found at {CIFAR10_DIR} (../shared exists only beside CI clones)",
)]
TINY = {  # one trial is ~20 s of CPU here
    "recipe": {"iterations": 20, "milestones": [10, 15], "eval_interval": 10, "checkpoint_interval": 10,
               "batch_size": 32},
    "data": {"val_size": 200, "test_size": 200},
    "runtime": {"device": "cpu"},
}
ENV = {"GHOSTSWEEP_DATA_DIR": str(CIFAR10_DIR),
       "PYTHONPATH": str(REPO / "tests"), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def local_ray():
    """One 2-CPU Ray for the in-process tests; its workers inherit ENV (data dir, import path)."""
    import ray

    saved = {k: os.environ.get(k) for k in ENV}
    os.environ.update(ENV)
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def make_sweep(root: Path, spec: dict[str, Any]) -> tuple[SweepDir, Any]:
    parsed = parse_spec({**TINY, **spec})
    sweep = SweepDir(root)
    sweep.materialize(parsed)
    return sweep, parsed


def run_sweep(root: Path, spec: dict[str, Any], backend: str, options: dict[str, Any]) -> SweepDir:
    sweep, parsed = make_sweep(root, spec)
    chosen = get_backend(backend, parsed.resources, options)
    chosen.validate()
    submit_trials(sweep, sweep.trial_ids(), chosen)
    return sweep


def results(sweep: SweepDir) -> dict[str, dict]:
    return {trial_id: read_json(sweep.trial_dir(trial_id) / "result.json") for trial_id in sweep.trial_ids()}


def attempts(sweep: SweepDir) -> dict[str, int]:
    return {t: read_json(sweep.trial_dir(t) / "attempts.json")["attempt"] for t in sweep.trial_ids()}


def test_smoke_sweep_matches_local_backend(local_ray, tmp_path):
    """sweeps/smoke.yaml's grid, cut to one seed and 20 iterations: same trial ids, same accuracies."""
    spec = {"name": "smoke", "grids": [{"model": ["resnet20", "ghost_resnet20"]}], "seeds": 1,
            "resources": {"cpus_per_trial": 1}}
    local = run_sweep(tmp_path / "local", spec, "local", {"max_parallel": 2})
    on_ray = run_sweep(tmp_path / "ray", spec, "ray", {})
    assert local.trial_ids() == on_ray.trial_ids()
    for trial_id, mine in results(on_ray).items():
        theirs = results(local)[trial_id]
        assert mine["status"] == theirs["status"] == "done", (mine, theirs)
        for key in ("final_val_acc", "final_test_acc", "best_val_acc", "iterations"):
            assert mine[key] == theirs[key], (trial_id, key)
        assert (on_ray.trial_dir(trial_id) / "metrics.jsonl").read_text().count("\n") == 2


def test_retry_resumes_and_permanent_failure_is_recorded(local_ray, tmp_path):
    spec = {"name": "faults", "seeds": [0], "resources": {"cpus_per_trial": 1}, "grids": [
        {"model": "resnet8", "faults.fail_at_iteration": 15, "faults.times": 1},  # fails once, after ckpt 10
        {"model": "resnet8", "recipe.lr": 0.05, "faults.fail_at_iteration": 5},  # fails every attempt
        {"model": "resnet8", "recipe.lr": 0.02},
    ]}
    sweep = run_sweep(tmp_path / "sweep", spec, "ray", {"max_failures": 1})
    once, always, fine = sweep.trial_ids()
    states = {t: read_state(sweep.trial_dir(t)) for t in sweep.trial_ids()}
    assert [states[t].state for t in (once, always, fine)] == ["done", "failed", "done"]
    assert attempts(sweep) == {once: 2, always: 2, fine: 1}  # max_failures=1: one retry each
    assert "injected failure at iteration 5" in states[always].reason
    lines = [json.loads(line) for line in (sweep.trial_dir(once) / "metrics.jsonl").read_text().splitlines()]
    assert [row["iteration"] for row in lines] == [10, 20]  # resumed at 10, not restarted


def ghostsweep(*args: str, env: dict[str, str] | None = None, wait: bool = True) -> Any:
    command = [sys.executable, "-m", "ghostsweep.orchestrator.cli", *args]
    full_env = os.environ | ENV | (env or {})
    if not wait:
        return subprocess.Popen(command, env=full_env, cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
    return subprocess.run(command, env=full_env, cwd=REPO, capture_output=True, text=True, timeout=400)


def test_sigint_then_resume_runs_no_done_trial_again(tmp_path):
    spec_file, root = tmp_path / "spec.yaml", tmp_path / "sweep"
    spec_file.write_text(json.dumps({
        **TINY, "name": "resume", "grids": [{"model": "resnet20"}], "seeds": 3,
        "recipe": {**TINY["recipe"], "iterations": 40, "milestones": [20, 30]},
        "resources": {"cpus_per_trial": 1}, "backend": {"name": "ray", "options": {"max_failures": 0}},
    }))
    driver = ghostsweep("submit", str(spec_file), "--out", str(root), wait=False)
    sweep = SweepDir(root)
    deadline = time.time() + 300
    while time.time() < deadline:  # interrupt once a trial is done and another is checkpointed, far from done
        time.sleep(1)
        if not (root / "sweep.json").exists():
            continue
        states = [read_state(sweep.trial_dir(t)) for t in sweep.trial_ids()]
        done = [s for s in states if s.state == "done"]
        if done and any(s.state == "running" and 0 < last_eval(sweep.trial_dir(s.trial_id)) <= 20 for s in states):
            break
    else:
        driver.kill()
        pytest.fail(f"no trial finished in time:\n{driver.communicate()[0]}")
    done_before = {s.trial_id: (sweep.trial_dir(s.trial_id) / "result.json").stat().st_mtime for s in done}
    driver.send_signal(signal.SIGINT)
    output = driver.communicate(timeout=120)[0]
    assert driver.returncode == 130, output
    # exit 130 means every stopped worker saved and let go: none still "running" to be skipped by `rerun`, and
    # each started trial checkpointed on the way out (Ray must not SIGKILL it) rather than losing its progress
    started = {t: read_state(sweep.trial_dir(t)).state for t in sweep.trial_ids()
               if (sweep.trial_dir(t) / "metrics.jsonl").exists()}
    assert set(started.values()) <= {"done", "preempted"} and "preempted" in started.values(), started

    resumed = ghostsweep("rerun", str(root))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert all(read_state(sweep.trial_dir(t)).state == "done" for t in sweep.trial_ids())
    for trial_id, mtime in done_before.items():  # finished trials were not run again
        assert (sweep.trial_dir(trial_id) / "result.json").stat().st_mtime == mtime
        assert attempts(sweep)[trial_id] == 1
    assert [p.name for p in private_dir(sweep, "ray").glob("tune-*")] == ["tune-1"]  # restored, not restarted
    assert not (root / "ray").exists()  # Tune's pickles are never in the shared sweep folder


def last_eval(trial_dir: Path) -> int:
    """The last evaluated (and, in TINY, checkpointed) iteration; 0 before the first."""
    return max((row["iteration"] for row in read_lines(trial_dir / "metrics.jsonl")), default=0)


RENDEZVOUS_S = 120  # how long a packed trial waits for the others: worker start-up is slow on a loaded machine


def rendezvous_trial(config: Any, out_dir: Path, data_dir: Path | None = None, **_: object) -> dict:
    """Stand-in trial for the packing test: announces itself, then waits until all `PACKED_TRIALS` have announced.

    Run one at a time (no packing), the first waits alone and records that it never met the others; run at once,
    all meet however slowly Ray started their workers.
    """
    arrivals = out_dir.parent.parent / "arrivals"
    arrivals.mkdir(exist_ok=True)
    (arrivals / out_dir.name).touch()
    expected, deadline = int(os.environ["PACKED_TRIALS"]), time.monotonic() + RENDEZVOUS_S
    while len(list(arrivals.iterdir())) < expected and time.monotonic() < deadline:
        time.sleep(0.2)
    met = len(list(arrivals.iterdir())) >= expected
    atomic_write_json(out_dir / "ran.json", {"met_all": met})
    result = {"status": "done", "reason": None, "trial_id": out_dir.name, "seed": config.seed}
    atomic_write_json(out_dir / "result.json", result)
    return result


def test_packing_runs_k_trials_per_slot_at_once(tmp_path):
    """cpus_per_trial 2 on a 2-CPU Ray fits one trial; trials_per_gpu 4 packs four into that slot, running at once."""
    spec_file, root = tmp_path / "spec.yaml", tmp_path / "sweep"
    spec_file.write_text(json.dumps({
        **TINY, "name": "packing", "grids": [{"model": "resnet20"}], "seeds": 4,
        "resources": {"cpus_per_trial": 2, "trials_per_gpu": 4}, "backend": {"name": "ray"},
    }))
    done = ghostsweep("submit", str(spec_file), "--out", str(root),
                      env={"GHOSTSWEEP_TRIAL_RUNNER": "test_ray:rendezvous_trial", "PACKED_TRIALS": "4"})
    assert done.returncode == 0, done.stdout + done.stderr
    runs = [read_json(p) for p in root.glob("trials/*/ran.json")]
    assert len(runs) == 4 and all(run["met_all"] for run in runs), runs  # all four were running at once


SLURM_PREFIX = "/tmp/ghostsweep-slurm-raytest"  # a private 2-node cluster: the shared one has one node
# Its own ports (8017..8030): test_slurm_gpu's cluster (7917) and test_slurm's (7817) run beside it under xdist.
SLURM_ENV = {"GHOSTSWEEP_SLURM_PREFIX": SLURM_PREFIX, "GHOSTSWEEP_SLURM_PORT_BASE": "8017",
             "GHOSTSWEEP_SLURM_NODES": "2"}


@pytest.fixture(scope="module")
def two_node_slurm():
    """Two slurmd "nodes" on this host: Ray runs one raylet per node, each in its own port slice."""
    if os.geteuid() != 0 or shutil.which("sinfo") is None:
        pytest.skip("the local Slurm cluster needs root and the slurm packages (slurm/cluster.sh start)")
    env = os.environ | SLURM_ENV | {"GHOSTSWEEP_SLURM_INSTALL": "0"}
    started = subprocess.run([str(REPO / "slurm/cluster.sh"), "start"], env=env, capture_output=True,
                             text=True, timeout=180)
    if started.returncode != 0:
        pytest.skip(f"could not start a 2-node Slurm cluster: {started.stderr.strip()[-300:]}")
    yield {"SLURM_CONF": f"{SLURM_PREFIX}/etc/slurm.conf"}
    subprocess.run([str(REPO / "slurm/cluster.sh"), "stop", "--purge"], env=env, capture_output=True,
                   timeout=180)


@pytest.mark.slurm
def test_ray_cluster_on_slurm_runs_sweep_on_both_nodes(two_node_slurm, tmp_path):
    spec_file, root = tmp_path / "spec.yaml", tmp_path / "sweep"
    spec_file.write_text(json.dumps({
        **TINY, "name": "onslurm", "grids": [{"model": "resnet8"}], "seeds": 4,
        "resources": {"cpus_per_trial": 1},
    }))
    env = os.environ | ENV | two_node_slurm
    log = tmp_path / "job.out"
    job = subprocess.run(
        ["sbatch", "--parsable", "--wait", "--nodes=2", "--cpus-per-task=2", f"--output={log}",
         f"--chdir={REPO}", str(REPO / "slurm/ray-cluster.sbatch"), sys.executable, "-m", "ghostsweep.orchestrator.cli",
         "submit", str(spec_file), "--out", str(root), "--backend", "ray"],
        env=env, capture_output=True, text=True, timeout=500,
    )
    output = log.read_text() if log.exists() else ""
    assert job.returncode == 0, job.stderr + output
    sweep = SweepDir(root)
    assert [read_state(sweep.trial_dir(t)).state for t in sweep.trial_ids()] == ["done"] * 4, output
    nodes = set()
    for tune_result in private_dir(sweep, "ray").glob("tune-1/*/result.json"):
        rows = [json.loads(line) for line in tune_result.read_text().splitlines()]
        nodes |= {row["ray_node_id"] for row in rows if "ray_node_id" in row}
    assert len(nodes) == 2, output  # trials ran on both Ray nodes
    assert "Ray is up on 2 node(s)" in output and "done (exit 0)" in output
    leftovers = subprocess.run(["pgrep", "-f", f"ray-{job.stdout.strip()}"], capture_output=True, text=True)
    assert leftovers.stdout == "", "Ray processes outlived the job"
