"""`ghostsweep status` on a sweep directory whose files say exactly what happened."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ghostsweep.orchestrator.cli import main
from ghostsweep.orchestrator.spec.sweepspec import parse_spec
from ghostsweep.orchestrator.sweepdir.directory import SweepDir
from ghostsweep.trials.trialdir import Outcome, ProgressRecord, TrialResult, write_progress, write_result


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """Two trials of 200 iterations: one done (its last heartbeat was at 189), one never started."""
    spec = parse_spec({"name": "s", "grids": [{"model": ["resnet20"]}], "seeds": 2, "recipe": {"iterations": 200}})
    sweep = SweepDir(tmp_path / "s")
    sweep.materialize(spec)
    done = sweep.trial_dir(spec.trials[0].trial_id())
    write_progress(done, ProgressRecord(iteration=189, iterations=200, images_per_s=900.0, updated_at=time.time()))
    write_result(done, TrialResult(status=Outcome.DONE, trial_id=done.name, iterations=200, final_test_acc=91.0,
                                   wall_time_s=30.0))
    return sweep.root


def test_a_done_trial_shows_all_its_iterations_and_json_says_when(sweep: Path, capsys) -> None:
    before = time.time()
    assert main(["status", str(sweep), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert [t["iteration"] for t in status["trials"]] == [200, None]
    assert before <= status["as_of"] <= time.time()
    assert status["eta_s"] is None  # nothing runs: no ETA to promise


def test_a_non_positive_interval_is_one_line(sweep: Path, capsys) -> None:
    assert main(["status", str(sweep), "--watch", "--interval", "0"]) == 2
    assert capsys.readouterr().err == "ghostsweep: error: --interval: must be > 0 seconds, got 0\n"
