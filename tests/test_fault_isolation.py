"""Faults stay in their trial: a corrupt or missing file makes that one trial unreadable (naming the file and the
repair), every other trial reads normally, `rerun` repairs it; a corrupt checkpoint is set aside and the previous
one (or a fresh start) is used, bitwise equal to a run that never saw the fault. A worker that finds its trial
leased by a live worker elsewhere skips it: no failure recorded, and the submit says so and exits 0."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_trial_helpers import REPO, SMOKE, metrics, result, train

from ghostsweep.orchestrator.backends.base import WORKER_MODULE
from ghostsweep.orchestrator.cli.submitting import _after_submission
from ghostsweep.orchestrator.spec.sweepspec import load_spec
from ghostsweep.orchestrator.submission.sweep import backend_for, submit_trials
from ghostsweep.orchestrator.sweepdir.directory import SweepDir
from ghostsweep.orchestrator.sweepdir.lease import Lease
from ghostsweep.trials.trialdir import (
    CHECKPOINT_FILE,
    PREVIOUS_CHECKPOINT_FILE,
    QUEUED_FILE,
    RESULT_FILE,
    ExitCode,
    Outcome,
    TrialResult,
    write_result,
)

RUN = [*SMOKE, "--iterations", "40", "--eval-interval", "10", "--checkpoint-interval", "10"]
SPEC = """
name: isolation
grids:
  - model: [resnet8]
seeds: {seeds}
recipe: {{iterations: 20, batch_size: 32, milestones: [10], eval_interval: 10, checkpoint_interval: 10}}
data: {{val_size: 0, test_size: 200}}
runtime: {{device: cpu}}
resources: {{gpus_per_trial: 0, cpus_per_trial: 1}}
backend: {{name: local, options: {{max_parallel: 1}}}}
"""
SAME = ("final_test_acc", "best_val_test_acc", "max_test_acc", "iterations")


def ghostsweep(*args: object, data: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "GHOSTSWEEP_"))}
    env |= {"GHOSTSWEEP_DATA_DIR": str(data), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "tests")}
    return subprocess.run([sys.executable, "-P", "-m", "ghostsweep", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600)


def states(sweep: Path, data: Path) -> dict[str, dict]:
    shown = ghostsweep("status", sweep, "--json", data=data)
    assert shown.returncode == 0, shown.stderr
    return {t["trial_id"]: t for t in json.loads(shown.stdout)["trials"]}


@pytest.fixture(scope="module")
def finished_sweep(cifar10_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A real sweep of three tiny trials, run to the end on the local backend."""
    root = tmp_path_factory.mktemp("isolation")
    (root / "spec.yaml").write_text(SPEC.format(seeds=3))
    done = ghostsweep("submit", root / "spec.yaml", "--out", root / "sweep", data=cifar10_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    return root / "spec.yaml", root / "sweep"


def test_one_corrupt_file_stays_in_its_trial_and_rerun_repairs_it(finished_sweep: tuple[Path, Path],
                                                                   cifar10_dir: Path) -> None:
    spec, sweep = finished_sweep
    first, second, third = sorted(states(sweep, cifar10_dir))
    before = json.loads((sweep / "trials" / first / RESULT_FILE).read_text())
    (sweep / "trials" / first / RESULT_FILE).write_text('{"status": "do')  # truncated
    (sweep / "trials" / second / RESULT_FILE).unlink()  # missing: as if lost with a node's local cache
    (sweep / "trials" / second / QUEUED_FILE).write_text("\x00garbage")

    shown = states(sweep, cifar10_dir)
    assert [shown[t]["state"] for t in (first, second, third)] == ["unreadable", "unreadable", "done"]
    assert f"unreadable {sweep / 'trials' / first / RESULT_FILE}" in shown[first]["reason"]
    assert f"ghostsweep rerun {sweep} --trial {first}" in shown[first]["reason"]
    assert f"{QUEUED_FILE}" in shown[second]["reason"]
    table = ghostsweep("status", sweep, data=cifar10_dir)
    assert table.returncode == 0 and "Traceback" not in table.stderr, table.stderr

    again = ghostsweep("submit", spec, "--out", sweep, data=cifar10_dir)
    assert again.returncode == 0 and "nothing to submit" in again.stdout, again.stdout + again.stderr

    rerun = ghostsweep("rerun", sweep, "--failed", data=cifar10_dir)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert {t["state"] for t in states(sweep, cifar10_dir).values()} == {"done"}
    assert (sweep / "trials" / first / f"{RESULT_FILE}.corrupt-1").read_text() == '{"status": "do'  # kept
    assert (sweep / "trials" / second / f"{QUEUED_FILE}.corrupt-1").exists()
    after = json.loads((sweep / "trials" / first / RESULT_FILE).read_text())
    assert {k: after[k] for k in SAME} == {k: before[k] for k in SAME}  # resumed from its final checkpoint


def test_a_bad_sweep_json_is_one_line_and_submit_writes_it_again(finished_sweep: tuple[Path, Path],
                                                                   cifar10_dir: Path) -> None:
    spec, sweep = finished_sweep
    good = (sweep / "sweep.json").read_text()
    (sweep / "sweep.json").write_text(json.dumps({"name": "isolation"}))
    shown = ghostsweep("status", sweep, data=cifar10_dir)
    assert shown.returncode == ExitCode.USAGE and "Traceback" not in shown.stderr
    assert shown.stderr.strip().startswith(f"ghostsweep: error: unreadable {sweep / 'sweep.json'}: 'trial_ids'")
    assert len(shown.stderr.strip().splitlines()) == 1 and f"submit {sweep / 'spec.yaml'}" in shown.stderr
    repaired = ghostsweep("submit", spec, "--out", sweep, data=cifar10_dir)
    assert repaired.returncode == 0 and "nothing to submit" in repaired.stdout, repaired.stdout + repaired.stderr
    assert json.loads((sweep / "sweep.json").read_text())["trial_ids"] == json.loads(good)["trial_ids"]
    assert (sweep / "sweep.json.corrupt-1").exists()


def test_a_trial_leased_elsewhere_is_skipped_not_failed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two submitters raced: the trial was pending when ours looked, and another worker took its lease before ours
    started (held here, by this live process). Before: "worker exited with code 0 without a result" was recorded
    as the trial's failure and submit exited 1."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(seeds=1))
    sweep = SweepDir(tmp_path / "sweep")
    sweep.materialize(load_spec(spec))
    trial_dir = sweep.trial_dir(sweep.trial_ids()[0])
    held = Lease.acquire(trial_dir)
    try:
        skipped = subprocess.run([sys.executable, "-P", "-m", WORKER_MODULE, str(trial_dir)],
                                 capture_output=True, text=True, timeout=300)
        assert skipped.returncode == ExitCode.SKIPPED and "already running elsewhere" in skipped.stdout
        backend = backend_for(sweep)
        submissions = submit_trials(sweep, sweep.trial_ids(), backend)  # what `submit` does once it has chosen
        assert not (trial_dir / RESULT_FILE).exists()  # no failure recorded
        assert "already running elsewhere" in (trial_dir / "worker.log").read_text()
        capsys.readouterr()
        assert _after_submission(sweep, submissions, backend.waits_for_trials) == 0  # nothing failed
        assert capsys.readouterr().out.startswith("1 already running elsewhere")
    finally:
        held.release()


@pytest.fixture(scope="module")
def reference(cifar10_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    assert train(*RUN, "--seed", "0", "--data-dir", cifar10_dir, "--out", out) == 0
    return out


def _assert_same_run(a: Path, b: Path) -> None:
    assert metrics(a, drop_wall_clock=True) == metrics(b, drop_wall_clock=True)
    assert {k: result(a)[k] for k in (*SAME, "best_val_acc")} == {k: result(b)[k] for k in (*SAME, "best_val_acc")}
    assert (a / CHECKPOINT_FILE).read_bytes() != b"" and _weights(a) == _weights(b)


def _weights(out: Path) -> list[bytes]:
    import torch

    state = torch.load(out / CHECKPOINT_FILE, weights_only=True)
    return [tensor.numpy().tobytes() for tensor in state["model"].values()]


def _interrupted_copy(reference: Path, out: Path) -> Path:
    """The reference trial's directory as an interrupted attempt left it, ready to resume."""
    shutil.copytree(reference, out)
    write_result(out, TrialResult(status=Outcome.INTERRUPTED, trial_id=result(reference)["trial_id"]))
    return out


def test_a_truncated_checkpoint_is_set_aside_and_the_previous_one_resumes_bitwise(
    reference: Path, cifar10_dir: Path, tmp_path: Path
) -> None:
    out = _interrupted_copy(reference, tmp_path / "trial")
    size = (out / CHECKPOINT_FILE).stat().st_size
    with open(out / CHECKPOINT_FILE, "r+b") as handle:
        handle.truncate(size // 2)
    assert train(*RUN, "--seed", "0", "--data-dir", cifar10_dir, "--out", out) == 0
    assert result(out)["note"] == (
        f"{CHECKPOINT_FILE} failed its size/sha256 check (set aside as {CHECKPOINT_FILE}.corrupt-1); "
        f"resumed from {PREVIOUS_CHECKPOINT_FILE} at iteration 30"
    )
    assert (out / f"{CHECKPOINT_FILE}.corrupt-1").stat().st_size == size // 2  # kept for a post-mortem
    _assert_same_run(reference, out)


def test_with_no_good_checkpoint_the_trial_starts_afresh_bitwise(
    reference: Path, cifar10_dir: Path, tmp_path: Path
) -> None:
    out = _interrupted_copy(reference, tmp_path / "trial")
    for name in (CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE):
        data = bytearray((out / name).read_bytes())
        data[len(data) // 2] ^= 0xFF  # one flipped bit's worth of rot
        (out / name).unlink()  # the two names are hard links to one file after a crash-free run
        (out / name).write_bytes(bytes(data))
    assert train(*RUN, "--seed", "0", "--data-dir", cifar10_dir, "--out", out) == 0
    assert result(out)["note"].endswith("no good checkpoint left: started afresh")
    assert {p.name for p in out.glob("*.corrupt-*")} == {f"{CHECKPOINT_FILE}.corrupt-1",
                                                         f"{PREVIOUS_CHECKPOINT_FILE}.corrupt-1"}
    _assert_same_run(reference, out)
