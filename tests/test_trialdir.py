"""The trial-directory protocol: typed records that read what the old untyped writers wrote, and the states and
exit codes that every writer and reader share."""

from __future__ import annotations

import json
import re

import pytest

from ghostsweep.orchestrator.sweepdir.lease import Lease
from ghostsweep.orchestrator.sweepdir.state import mark_queued, read_state, record_job_id
from ghostsweep.trials.trialdir import (
    PROGRESS_FILE,
    QUEUED_FILE,
    RESULT_FILE,
    ExitCode,
    Outcome,
    ProgressRecord,
    TrialResult,
    TrialStatus,
    atomic_write_json,
    read_progress,
    read_queued,
    read_result,
    record_failure,
    write_progress,
    write_result,
)

# result.json as trials/runner.py's finish() wrote it before TrialResult existed
UNTYPED_RESULT = {
    "status": "done", "reason": None, "trial_id": "resnet20-s0-1a2b3c4d", "variant": "resnet20",
    "model": "resnet20", "seed": 0, "final_val_acc": 91.8, "final_test_acc": 91.5, "best_val_acc": 92.0,
    "best_val_test_acc": 91.6, "best_val_iteration": 62000, "params": 272474, "macs": 41 * 10**6,
    "iterations": 64000, "wall_time_s": 1300.0, "device": "NVIDIA H200", "world_size": 1,
    "torch_version": "2.5.1", "code_version": "3dcfdef", "attempt": 1, "wandb_run_dir": None, "compile": "off",
    "channels_last": False, "precision": "fp32", "deterministic": True, "depthwise": "native",
    "split_hash": "9f3e",
}


def test_result_round_trips_through_dict_and_file(tmp_path):
    result = TrialResult(status=Outcome.INTERRUPTED, trial_id="t", reason="stop requested", seed=3,
                         final_test_acc=None, wall_time_s=12.5)
    assert TrialResult.from_dict(result.to_dict()) == result
    assert json.loads(json.dumps(result.to_dict()))["status"] == "interrupted"
    write_result(tmp_path, result)
    written = read_result(tmp_path)
    assert written.finished_at is not None  # stamped on write
    assert written == TrialResult.from_dict(result.to_dict() | {"finished_at": written.finished_at})


def test_the_untyped_writers_results_parse():
    result = TrialResult.from_dict(UNTYPED_RESULT)
    assert result.done and result.status is Outcome.DONE and result.final_test_acc == 91.5
    # every key the old runner wrote is a field; fields added since read as None
    assert result.to_dict() == UNTYPED_RESULT | {"finished_at": None, "max_test_acc": None, "node": None,
                                                 "gpu_binding": None, "note": None, "cuda_version": None,
                                                 "cudnn_version": None, "gpu_model": None}
    early_failure = {"status": "failed", "reason": "ValueError: bad checkpoint", "trial_id": "t", "seed": 1}
    assert TrialResult.from_dict(early_failure).reason == "ValueError: bad checkpoint"


def test_unknown_keys_are_ignored_and_a_bad_status_is_a_value_error():
    assert TrialResult.from_dict({"status": "done", "from_a_newer_writer": 1}) == TrialResult(Outcome.DONE, "")
    for bad in ({"status": "finished"}, {"trial_id": "t"}):
        with pytest.raises(ValueError):
            TrialResult.from_dict(bad)


@pytest.mark.parametrize("content", ["{not json", '["done"]', '{"status": "finished"}'])
def test_an_unreadable_result_file_is_one_line_naming_it(tmp_path, content):
    (tmp_path / RESULT_FILE).write_text(content)
    with pytest.raises(ValueError, match=re.escape(f"unreadable {tmp_path / RESULT_FILE}: ")) as raised:
        read_result(tmp_path)
    assert "\n" not in str(raised.value)
    state = read_state(tmp_path)  # the trial is unreadable, naming the file and the repair; no exception
    assert state.state == TrialStatus.UNREADABLE and f"unreadable {tmp_path / RESULT_FILE}: " in state.reason
    assert "ghostsweep rerun" in state.reason


def test_exit_codes_follow_the_outcome():
    assert [ExitCode.for_outcome(o) for o in Outcome] == [ExitCode.DONE, ExitCode.FAILED, ExitCode.INTERRUPTED]
    assert ExitCode.for_outcome("interrupted") == 3 and ExitCode.for_outcome("done") == 0
    assert (ExitCode.FAILED, ExitCode.USAGE) == (1, 2)
    with pytest.raises(ValueError):
        ExitCode.for_outcome("finished")


def test_queued_json_keeps_its_keys_and_counts_attempts(tmp_path):
    mark_queued(tmp_path, "slurm")
    record_job_id(tmp_path, "4242")
    mark_queued(tmp_path, "slurm")
    record_job_id(tmp_path, "4243")
    queued = read_queued(tmp_path)
    assert (queued.backend, queued.job_id, queued.attempt) == ("slurm", "4243", 2)
    assert list(json.loads((tmp_path / QUEUED_FILE).read_text())) == ["backend", "job_id", "submitted_at", "attempt"]


def test_progress_reads_the_runners_heartbeat(tmp_path):
    heartbeat = {"iteration": 100, "iterations": 64000, "images_per_s": 5000.0, "updated_at": 1.0, "host": "n1",
                 "pid": 7}
    atomic_write_json(tmp_path / PROGRESS_FILE, heartbeat)
    assert read_progress(tmp_path) == ProgressRecord(**heartbeat)
    write_progress(tmp_path, ProgressRecord(iteration=200, iterations=64000, images_per_s=5100.0))
    assert read_progress(tmp_path).iteration == 200


def test_read_state_types_every_case(tmp_path):
    """Each state from files written through the protocol, as a TrialStatus with typed records attached."""
    trial = tmp_path / "t"
    trial.mkdir()
    seen = [read_state(trial)]
    mark_queued(trial, "local")
    seen.append(read_state(trial))
    lease = Lease.acquire(trial)
    write_progress(trial, ProgressRecord(iteration=10, iterations=100, images_per_s=1.0, host="n1"))
    seen.append(read_state(trial))
    write_result(trial, TrialResult(Outcome.INTERRUPTED, "t"))
    lease.release()
    seen.append(read_state(trial))
    record_failure(trial, "boom")
    seen.append(read_state(trial))
    write_result(trial, TrialResult.from_dict(UNTYPED_RESULT))
    seen.append(read_state(trial))
    assert [s.state for s in seen] == [TrialStatus.PENDING, TrialStatus.QUEUED, TrialStatus.RUNNING,
                                       TrialStatus.PREEMPTED, TrialStatus.FAILED, TrialStatus.DONE]
    assert all(type(s.state) is TrialStatus for s in seen)
    assert [s.reason for s in seen[3:]] == ["interrupted", "boom", None]
    assert seen[2].progress.iteration == 10 and seen[2].node == seen[2].lease["node"]  # the lease's node first
    assert seen[-1].result.final_test_acc == 91.5 and seen[-1].attempt == 1 and seen[-1].backend == "local"
