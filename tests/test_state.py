"""Trial state from files, the lease, and 100 trials finishing at once from several processes."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import threading
import time
from pathlib import Path

from ghostsweep.orchestrator.backends.base import JobInfo, JobPhase
from ghostsweep.orchestrator.submission import sweep, worker
from ghostsweep.orchestrator.sweepdir.lease import STALE_S, Lease, lease_log_overlaps, wait_until_released
from ghostsweep.orchestrator.sweepdir.state import TrialState, mark_queued, read_state, unqueue
from ghostsweep.trials.config import TrialConfig
from ghostsweep.trials.trialdir import (
    LEASE_FILE,
    LEASE_LOG,
    ExitCode,
    atomic_write_json,
    read_json,
    read_lines,
    record_failure,
)


def test_state_follows_the_files(tmp_path):
    trial = tmp_path / "t"
    trial.mkdir()
    assert read_state(trial).state == "pending"
    mark_queued(trial, "local")
    assert read_state(trial).state == "queued"
    lease = Lease.acquire(trial)
    assert read_state(trial).state == "running"
    record_failure(trial, "boom")
    lease.release()
    failed = read_state(trial)
    assert (failed.state, failed.reason) == ("failed", "boom")
    time.sleep(0.01)
    mark_queued(trial, "local")  # a rerun: queued again, newer than the failed result
    assert read_state(trial).state == "queued" and read_state(trial).attempt == 2
    atomic_write_json(trial / "result.json", {"status": "interrupted", "reason": "SIGTERM"})
    assert read_state(trial).state == "preempted"
    atomic_write_json(trial / "result.json", {"status": "done"})
    assert read_state(trial).state == "done"
    unqueue(trial, 2)
    assert read_state(trial).state == "done"


def test_lease_records_the_slurm_node_name(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURMD_NODENAME", "gpu-07")
    Lease.acquire(tmp_path)
    assert read_state(tmp_path).node == "gpu-07"


def test_only_ddp_rank_0_takes_the_lease_and_writes_files(tmp_path, monkeypatch):
    trial = tmp_path / "t"
    trial.mkdir()
    atomic_write_json(trial / "config.json", TrialConfig(model="resnet20").to_dict())
    leases = []

    def runner(_config, out_dir, _data_dir, **_):
        leases.append(read_json(out_dir / LEASE_FILE))
        if len(leases) == 2:
            raise RuntimeError("rank 1 crashed")
        return {"status": "done"}

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert worker.run_trial_dir(trial, runner) == ExitCode.DONE
    assert worker.run_trial_dir(trial, runner) == ExitCode.FAILED
    assert not (trial / "result.json").exists()  # only rank 0 records a failure
    monkeypatch.setenv("RANK", "0")
    assert worker.run_trial_dir(trial, runner) == ExitCode.DONE
    assert leases[:2] == [None, None] and leases[2]["pid"] == os.getpid()


def test_status_asks_the_backend_about_queued_and_preempted_trials(monkeypatch):
    """Requeued (job alive) -> queued; cancelled -> failed "cancelled"; out of requeues -> still preempted;
    a queued trial's dead job -> failed; nodes and poll notes come back from the backend."""
    jobs = {
        "1": JobInfo("1", JobPhase.WAITING, scheduler_state="PENDING"),
        "2": JobInfo("2", JobPhase.CANCELLED, "n2", reason="cancelled", scheduler_state="CANCELLED"),
        "3": JobInfo("3", JobPhase.ENDED, reason="slurm job 3 ended FAILED", scheduler_state="FAILED"),
        "4": JobInfo("4", JobPhase.ENDED, reason="slurm job 4 ended FAILED", scheduler_state="FAILED"),
        "5": JobInfo("5", JobPhase.ACTIVE, "n5", scheduler_state="RUNNING"),
    }

    class FakeBackend:
        warnings: list[str] = []

        def poll(self, job_ids):
            self.warnings.append("sacct unavailable")
            return {job_id: jobs[job_id] for job_id in job_ids if job_id in jobs}

    monkeypatch.setattr(sweep, "backend_for", lambda _sweep, _name: FakeBackend())
    states = [
        TrialState("requeued", "preempted", "stop requested", "slurm", "1", node="n1"),
        TrialState("cancelled", "preempted", "stop requested", "slurm", "2"),
        TrialState("exhausted", "preempted", "stop requested", "slurm", "3"),
        TrialState("dead", "queued", None, "slurm", "4"),
        TrialState("waiting", "queued", None, "slurm", "5"),
        TrialState("unknown", "preempted", "stop requested", "slurm", "6"),
    ]
    refined, warnings = sweep.refine_with_backends(None, states)
    got = {s.trial_id: (s.state, s.reason, s.node) for s in refined}
    assert got == {
        "requeued": ("queued", None, "n1"), "cancelled": ("failed", "cancelled", "n2"),
        "exhausted": ("preempted", "stop requested", None), "dead": ("failed", "slurm job 4 ended FAILED", None),
        "waiting": ("queued", None, "n5"), "unknown": ("preempted", "stop requested", None),
    }
    assert warnings == ["sacct unavailable"]


def test_lease_is_exclusive_and_a_stale_one_is_taken_over(tmp_path):
    first = Lease.acquire(tmp_path)
    assert first is not None and Lease.acquire(tmp_path) is None
    aged = (tmp_path / LEASE_FILE).stat().st_mtime - STALE_S - 1  # not touched for STALE_S: its holder is gone
    os.utime(tmp_path / LEASE_FILE, (aged, aged))
    assert read_state(tmp_path).state == "pending"  # a dead worker's lease is not "running"
    second = Lease.acquire(tmp_path)
    assert second is not None and second.token != first.token
    assert not first.heartbeat() and first.lost  # the stalled holder learns it lost the lease
    first.release()  # must not remove the new holder's lease
    assert read_json(tmp_path / LEASE_FILE)["token"] == second.token
    second.release()
    assert not (tmp_path / LEASE_FILE).exists()


def test_waiting_for_release_ends_when_holders_let_go_or_die(tmp_path):
    live, dead = tmp_path / "live", tmp_path / "dead"
    live.mkdir()
    dead.mkdir()
    held = Lease.acquire(live)
    atomic_write_json(dead / LEASE_FILE, read_json(live / LEASE_FILE) | {"pid": _exited_pid()})
    assert wait_until_released([live, dead], poll_s=0.05, timeout_s=0.3) == [live]  # a killed holder: no wait
    assert not (dead / LEASE_FILE).exists()
    threading.Timer(0.3, held.release).start()
    started = time.monotonic()
    assert wait_until_released([live], poll_s=0.05, timeout_s=30) == []
    assert time.monotonic() - started < 5


def _exited_pid() -> int:
    process = multiprocessing.Process(target=int)
    process.start()
    process.join()
    return process.pid


def _counting_runner(config: TrialConfig, out_dir: Path, data_dir: Path | None = None, **_: object) -> dict:
    """Fake trial: records that it ran, then writes its result."""
    with open(out_dir / "runs.log", "a") as log:
        log.write(f"{os.getpid()}\n")
    time.sleep(0.01)
    result = {"status": "done", "trial_id": out_dir.name, "final_test_acc": 90.0}
    atomic_write_json(out_dir / "result.json", result)
    return result


def _work_through(trial_dirs: list[Path], seed: int, start: multiprocessing.synchronize.Event) -> None:
    start.wait()
    order = list(trial_dirs)
    random.Random(seed).shuffle(order)
    for trial_dir in order:
        worker.run_trial_dir(trial_dir, runner=_counting_runner)


def test_100_trials_from_8_processes_run_once_each_and_leave_100_results(tmp_path):
    config = TrialConfig(model="resnet20").to_dict()
    trial_dirs = []
    for index in range(100):
        trial_dir = tmp_path / f"trial-{index:03d}"
        trial_dir.mkdir()
        (trial_dir / "config.json").write_text(json.dumps(config | {"seed": index}))
        trial_dirs.append(trial_dir)
    context = multiprocessing.get_context("fork")
    start = context.Event()
    processes = [context.Process(target=_work_through, args=(trial_dirs, seed, start)) for seed in range(8)]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(timeout=300)
        assert process.exitcode == 0
    runs = [len((d / "runs.log").read_text().splitlines()) for d in trial_dirs]
    assert runs == [1] * 100
    assert [read_state(d).state for d in trial_dirs] == ["done"] * 100
    kept = ("config.json", "runs.log", "result.json", LEASE_LOG)
    leftovers = [p.name for d in trial_dirs for p in d.iterdir() if p.name not in kept]
    assert leftovers == []  # no lease, steal marker or temporary file left behind
    assert [lease_log_overlaps(d) for d in trial_dirs] == [[]] * 100  # never two holders at once
    assert all(read_lines(d / LEASE_LOG)[0]["event"] == "acquired" for d in trial_dirs)
