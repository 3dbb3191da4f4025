"""Hand-edited or corrupt sweep files: extensions.json that is not what `extend` wrote, and result.json accuracies
that no run produces (NaN, Infinity, out of [0, 100]). Each is one line naming the file and the repair, or an
unreadable trial with its reason; never a traceback, never a trial silently "not done yet"."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ghostsweep.trials.trialdir import Outcome, TrialResult, read_result, write_result

FIXTURE = Path(__file__).parent / "data/sweeps/v1/fixture"


def ghostsweep(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ghostsweep.orchestrator.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURE, tmp_path / "sweep")
    return tmp_path / "sweep"


BAD_EXTENSIONS = {
    "not records": "[1,2,3]",
    "garbage row": '[{"rows":[{"label":5,"two_stage":{"pilot_n":"three","pilot_std":null}}]}]',
    "bad plan": '[{"at": 1.0, "note": "n", "trial_ids": [], "rows": [{"group": "g", "two_stage": '
                '{"pilot_n": 1, "pilot_std": 0.2, "target": 0.2, "cap": 20, "total": 5, "capped": false}}]}]',
    "malformed JSON": '{"two_stage": "garbage", "x": [1,2',
}


@pytest.mark.parametrize("content", BAD_EXTENSIONS.values(), ids=BAD_EXTENSIONS.keys())
def test_a_bad_extensions_file_stops_report_and_extend_with_one_line(sweep: Path, content: str) -> None:
    path = sweep / "extensions.json"
    path.write_text(content)
    for command in (("report", sweep), ("extend", sweep, "--seeds", "4", "--dry-run")):
        done = ghostsweep(*command)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        (line,) = done.stderr.splitlines()
        assert line.startswith(f"ghostsweep: error: unreadable {path}: ") and "set it aside" in line, line
    status = ghostsweep("status", sweep)  # status and rerun do not need it
    assert status.returncode == 0, status.stdout + status.stderr
    assert "extensions.json" not in ghostsweep("rerun", sweep).stderr  # (it may stop later: no CIFAR-10 here)


def _edit_result(sweep: Path, trial_id: str, **changes: object) -> Path:
    path = sweep / "trials" / trial_id / "result.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))
    return path


@pytest.mark.parametrize("accuracy", [math.nan, math.inf, 1e308, -0.5, 100.5])
def test_an_impossible_accuracy_makes_its_trial_unreadable_in_the_report(sweep: Path, accuracy: float) -> None:
    trial_id = "resnet8-s1-7b345657"
    _edit_result(sweep, trial_id, final_test_acc=accuracy)
    status = ghostsweep("status", sweep)
    assert status.returncode == 0 and "unreadable" in status.stdout, status.stdout + status.stderr

    done = ghostsweep("report", sweep)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((sweep / "report.json").read_text())
    (row,) = [row for row in report["rows"] if row["label"] == "resnet8"]
    (note,) = [note for note in row["notes"] if "unreadable" in note]
    assert note.startswith("seed 1 unreadable, not counted: ") and "final_test_acc" in note
    assert f"ghostsweep rerun {sweep} --trial {trial_id}" in note
    assert f"resnet8: {note}" in (sweep / "report.md").read_text()


@pytest.mark.parametrize("field", ["final_test_acc", "best_val_acc", "final_val_acc"])
@pytest.mark.parametrize("accuracy", [math.nan, math.inf, 101.0])
def test_write_result_refuses_what_its_reader_would_reject(tmp_path: Path, field: str, accuracy: float) -> None:
    result = TrialResult(Outcome.DONE, "t", **{field: accuracy})
    with pytest.raises(ValueError, match=field):
        write_result(tmp_path, result)
    assert not (tmp_path / "result.json").exists()


def test_a_diverged_run_is_written_as_failed_with_its_reason(tmp_path: Path) -> None:
    """How the runner records a non-finite loss (trials/runner.py `_finish`): failed, the reason, no accuracy."""
    write_result(tmp_path, TrialResult(Outcome.FAILED, "t", reason="diverged at iteration 40", best_val_acc=10.0))
    result = read_result(tmp_path)
    assert result is not None and result.reason == "diverged at iteration 40" and result.final_test_acc is None
