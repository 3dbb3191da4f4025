"""`submit` fails before it creates anything when the trials could not find CIFAR-10, records `--data-dir` for the
sweep's workers, and shows progress a person can read (read from the trials' own files)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from ghostsweep.orchestrator.backends import get_backend
from ghostsweep.orchestrator.monitor.progress import SubmitProgress
from ghostsweep.orchestrator.spec.resources import Resources
from ghostsweep.orchestrator.spec.sweepspec import load_spec
from ghostsweep.orchestrator.submission.sweep import check_data
from ghostsweep.orchestrator.sweepdir.directory import SweepDir
from ghostsweep.orchestrator.sweepdir.lease import Lease
from ghostsweep.trials.datadir import DataError
from ghostsweep.trials.trialdir import (
    METRICS_FILE,
    Outcome,
    ProgressRecord,
    TrialResult,
    atomic_write_lines,
    write_progress,
    write_result,
)

SPEC = """\
name: tiny
grids:
  - model: [resnet8]
seeds: {seeds}
recipe: {{iterations: 20, milestones: [10, 15], eval_interval: 10, checkpoint_interval: 20}}
data: {{val_size: 0, test_size: 200}}
runtime: {{device: cpu}}
wandb: {{mode: {wandb}}}
resources: {{gpus_per_trial: 0, cpus_per_trial: 1, mem_gb: 2, time_limit_min: 10}}
backend: {{name: local}}
"""


def ghostsweep(*args: str | Path, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it, from `cwd` (not the checkout), with no CIFAR-10 unless `env` points at it."""
    base = {k: v for k, v in os.environ.items() if k not in ("GHOSTSWEEP_DATA_DIR", "GHOSTSWEEP_DOWNLOAD")}
    return subprocess.run([sys.executable, "-P", "-m", "ghostsweep", *map(str, args)], cwd=cwd, text=True,
                          capture_output=True, env=base | {"HOME": str(cwd / "home")} | env, timeout=600)


@pytest.mark.parametrize("data", ["none", "missing", "incomplete", "download"])
def test_submit_without_data_is_one_line_and_creates_nothing(data: str, tmp_path: Path) -> None:
    """`download`: a proxy on a closed port stands in for a machine without network, so no test downloads."""
    (tmp_path / "spec.yaml").write_text(SPEC.format(seeds=2, wandb="disabled"))
    flags, env = [], {}
    if data == "download":
        flags = ["--download"]
        env = {name: "http://127.0.0.1:9" for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")}
    if data == "missing":
        flags = ["--data-dir", "nowhere"]
    elif data == "incomplete":
        (tmp_path / "partial").mkdir()
        (tmp_path / "partial" / "test_batch").write_bytes(b"x")
        flags = ["--data-dir", "partial"]
    before = sorted(p.name for p in tmp_path.iterdir())
    done = ghostsweep("submit", "spec.yaml", *flags, cwd=tmp_path, **env)
    assert done.returncode == 2 and done.stdout == "" and done.stderr.count("\n") == 1
    downloading = f"ghostsweep: error: downloading CIFAR-10 to {tmp_path}/home/.cache/ghostsweep/cifar10 failed: "
    assert done.stderr.startswith(downloading if data == "download" else "ghostsweep: error: CIFAR-10 ")
    assert ("incomplete: missing data_batch_1" in done.stderr) == (data == "incomplete")
    assert ("pass --download" in done.stderr) == (data == "none")  # the default cache: say how to fetch it
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no runs/, no cache folder


def test_a_cluster_backend_warns_when_this_machine_cannot_see_the_data(tmp_path: Path) -> None:
    slurm = get_backend("slurm", Resources(), {})
    warnings = check_data(slurm, tmp_path / "nowhere", None, download=False)
    assert warnings == [f"CIFAR-10 is not at {tmp_path / 'nowhere' / 'cifar-10-batches-py'} on this machine: "
                        "the slurm nodes must see it there"]
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "test_batch").write_bytes(b"x")
    with pytest.raises(DataError, match="incomplete"):  # visible from here, so checked here
        check_data(slurm, tmp_path / "partial", None, download=False)
    with pytest.raises(DataError, match="not found"):  # local trials run here: an error, not a warning
        check_data(get_backend("local", Resources(), {}), tmp_path / "nowhere", None, download=False)


def test_submit_from_another_folder_with_relative_paths(cifar10_dir: Path, tmp_path: Path) -> None:
    """`--data-dir` is relative to where submit ran, recorded absolute, and beats $GHOSTSWEEP_DATA_DIR (which
    points nowhere here) in the worker too; piped stdout gets plain lines; wandb_run_dir is absolute."""
    (tmp_path / "spec.yaml").write_text(SPEC.format(seeds=1, wandb="offline"))
    (tmp_path / "data").symlink_to(cifar10_dir)
    done = ghostsweep("submit", "spec.yaml", "--data-dir", "data", "--out", "runs/x", cwd=tmp_path,
                      GHOSTSWEEP_DATA_DIR=str(tmp_path / "nowhere"), WANDB_MODE="offline")
    assert done.returncode == 0, done.stdout + done.stderr
    sweep = SweepDir(tmp_path / "runs/x")
    assert sweep.index().data_dir_override == str(tmp_path / "data")
    (trial_id,) = sweep.trial_ids()
    lines = done.stdout.splitlines()
    job = lines.index(next(line for line in lines if line.startswith(f"  {trial_id} -> local:")))
    started = lines.index(next(line for line in lines if line.startswith(f"started  {trial_id} on ")))
    evaluated = next(line for line in lines if line.startswith(f"  {trial_id}: iteration 10/20  loss "))
    assert job < started < lines.index(evaluated) and "test " in evaluated
    assert f"done     {trial_id}: test " in done.stdout and "20/20 iterations (100%)" in lines[-2]
    assert "\x1b[" not in done.stdout  # no terminal control codes in a pipe
    result = json.loads((sweep.trial_dir(trial_id) / "result.json").read_text())
    assert Path(result["wandb_run_dir"]).is_absolute() and Path(result["wandb_run_dir"]).is_dir()

    status = json.loads(ghostsweep("status", "runs/x", "--json", cwd=tmp_path).stdout)
    (trial,) = status["trials"]
    assert (trial["state"], trial["iteration"]) == ("done", 20) and status["eta_s"] is None
    assert trial["final_test_acc"] == result["final_test_acc"] and abs(status["as_of"] - time.time()) < 60
    table = ghostsweep("status", "runs/x", "--all", cwd=tmp_path).stdout
    assert f"test {result['final_test_acc']:.2f}%" in table and "ETA" not in table.splitlines()[0]


@pytest.mark.parametrize("terminal", [False, True])
def test_progress_reads_the_trials_files(terminal: bool, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The display a blocking backend's submit shows, fed by the files a running and a finished trial write."""
    (tmp_path / "spec.yaml").write_text(SPEC.format(seeds=2, wandb="disabled"))
    sweep = SweepDir(tmp_path / "runs")
    sweep.materialize(load_spec(tmp_path / "spec.yaml"))
    running, finished = sweep.trial_ids()
    console = Console(record=True, force_terminal=terminal, width=200, height=40)
    with SubmitProgress(sweep, [running, finished], console=console) as progress:
        progress.job_started([running, finished], "local:host:1")
        lease = Lease.acquire(sweep.trial_dir(running))
        write_progress(sweep.trial_dir(running), ProgressRecord(iteration=12, iterations=20, images_per_s=64.0))
        atomic_write_lines(sweep.trial_dir(running) / METRICS_FILE, [
            {"iteration": 10, "train_loss": 2.25, "train_acc": 15.0, "val_acc": None, "test_acc": 21.5}])
        write_result(sweep.trial_dir(finished), TrialResult(status=Outcome.DONE, trial_id=finished,
                                                            final_test_acc=31.25, iterations=20))
        if terminal:
            time.sleep(2.5)  # one refresh of the live display while the trial runs
    lease.release()
    shown = capsys.readouterr().out + console.export_text()
    assert f"  {running} -> local:host:1" in shown and f"done     {finished}: test 31.25%" in shown
    assert "32/40 iterations (80%)" in shown and "trials: 1 running, 1 done" in shown
    if terminal:  # the live table: iteration, loss/accuracy, node
        assert f"{running}  12/20      loss 2.250  train 15.0%  test 21.5%  {socket.gethostname()}" in shown
    else:
        assert f"started  {running} on " in shown and f"  {running}: iteration 10/20  loss 2.250" in shown
