"""The per-trial read cache (orchestrator/sweepdir/cache.py): settled trials are read once, any change to a trial's
files is seen at once, a bad cache is rebuilt, and `status` and `report` print the same with it as without it."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from ghostsweep.orchestrator.cli import main
from ghostsweep.orchestrator.spec.sweepspec import parse_spec
from ghostsweep.orchestrator.sweepdir.cache import CACHE_FILE, CACHE_SWITCH, read_trials
from ghostsweep.orchestrator.sweepdir.directory import SweepDir
from ghostsweep.orchestrator.sweepdir.lease import STALE_S, Lease
from ghostsweep.orchestrator.sweepdir.state import mark_queued
from ghostsweep.trials.trialdir import (
    METRICS_FILE,
    RESULT_FILE,
    Outcome,
    TrialResult,
    atomic_write_lines,
    record_failure,
    write_result,
)

FINISHED_AGO_S = 600  # the trials' files are older than the cache's racy window, as in a sweep finished earlier


@pytest.fixture
def sweep(tmp_path: Path) -> SweepDir:
    """Six trials of two rows: four done with curves, one failed, one never started; files ten minutes old."""
    spec = parse_spec({"name": "c", "grids": [{"model": ["resnet20", "ghost_resnet20"]}], "seeds": 3,
                       "recipe": {"iterations": 30}})
    sweep = SweepDir(tmp_path / "c")
    sweep.materialize(spec)
    trials = [sweep.trial_dir(t.trial_id()) for t in spec.trials]
    for number, trial in enumerate(trials[:4]):
        atomic_write_lines(trial / METRICS_FILE, [{"iteration": i, "val_acc": 50.0 + number + i} for i in (10, 20, 30)])
        write_result(trial, TrialResult(status=Outcome.DONE, trial_id=trial.name, iterations=30, seed=number % 3,
                                        final_test_acc=80.0 + number, best_val_test_acc=79.0 + number,
                                        params=270_000, macs=41_000_000, wall_time_s=60.0, device="cpu",
                                        world_size=1))
    record_failure(trials[4], "diverged at iteration 7", node="n1")
    age(sweep.root)
    return sweep


def age(root: Path, seconds: float = FINISHED_AGO_S) -> None:
    """Every file and folder under `root` as if last written `seconds` ago."""
    then = time.time() - seconds
    for folder, _, names in os.walk(root, topdown=False):
        for name in names:
            os.utime(os.path.join(folder, name), (then, then))
        os.utime(folder, (then, then))


def status_output(sweep: SweepDir, capsys, *flags: str) -> str:
    assert main(["status", str(sweep.root), *flags]) == 0
    out = capsys.readouterr().out
    if "--json" in flags:
        return json.dumps(json.loads(out) | {"as_of": None})
    return re.sub(r"as of .*", "as of", out)


def outputs(sweep: SweepDir, capsys) -> dict[str, str]:
    """What status and report print and write, but for the time they say they ran."""
    got = {"status": status_output(sweep, capsys, "--all"), "json": status_output(sweep, capsys, "--json")}
    for name in ("report.json", "report.md", "report.html"):
        (sweep.root / name).unlink(missing_ok=True)
    assert main(["report", str(sweep.root)]) == 0
    got["report"] = capsys.readouterr().out
    report = json.loads((sweep.root / "report.json").read_text())
    got["report.json"] = (sweep.root / "report.json").read_text().replace(repr(report["generated_at"]), "T")
    got["report.md"] = (sweep.root / "report.md").read_text()
    return got


def test_outputs_are_the_same_with_the_cache_as_without_it(sweep: SweepDir, capsys, monkeypatch) -> None:
    monkeypatch.setenv(CACHE_SWITCH, "off")
    without = outputs(sweep, capsys)
    assert not (sweep.root / CACHE_FILE).exists()  # off: the file is left alone
    monkeypatch.delenv(CACHE_SWITCH)
    cold = outputs(sweep, capsys)
    remembered = json.loads((sweep.root / CACHE_FILE).read_text())["trials"]
    assert len(remembered) == 6 and all("curve" in entry for entry in remembered.values())  # pending ones too
    warm = outputs(sweep, capsys)
    assert without == cold == warm
    assert "done 4" in warm["status"] and "failed 1" in warm["status"] and "pending 1" in warm["status"]


def test_settled_trials_come_from_the_cache(sweep: SweepDir, monkeypatch) -> None:
    read_trials(sweep, curves=True, remember=True)  # remembers the six settled trials
    cache = sweep.root / CACHE_FILE
    data = json.loads(cache.read_text())
    done = next(trial_id for trial_id, entry in data["trials"].items() if entry["state"] == "done")
    data["trials"][done]["result"]["final_test_acc"] = 12.5  # only the cache says so: proof it is what is read
    cache.write_text(json.dumps(data))
    reads = dict(zip(sweep.trial_ids(), read_trials(sweep, curves=True), strict=True))
    assert reads[done].state.result.final_test_acc == 12.5
    assert reads[done].curve and all(isinstance(point, tuple) for point in reads[done].curve)


def final_accuracy(sweep: SweepDir, capsys, trial_id: str) -> tuple[str, float | None]:
    trials = json.loads(status_output(sweep, capsys, "--json"))["trials"]
    trial = next(t for t in trials if t["trial_id"] == trial_id)
    return trial["state"], trial["final_test_acc"]


def test_a_changed_rerun_or_deleted_file_is_seen_at_once(sweep: SweepDir, capsys) -> None:
    done, failed = sweep.trial_ids()[0], sweep.trial_ids()[4]
    status_output(sweep, capsys, "--json")  # remembered
    assert final_accuracy(sweep, capsys, done) == ("done", 80.0)
    write_result(sweep.trial_dir(done), TrialResult(status=Outcome.DONE, trial_id=done, final_test_acc=81.5))
    assert final_accuracy(sweep, capsys, done) == ("done", 81.5)
    age(sweep.root)  # remembered again, then rewritten in place: same inode, another size
    status_output(sweep, capsys, "--json")
    path = sweep.trial_dir(done) / RESULT_FILE
    path.write_text(path.read_text().replace("81.5", "81.25"))
    assert final_accuracy(sweep, capsys, done) == ("done", 81.25)
    mark_queued(sweep.trial_dir(failed), "local")  # a rerun: queued.json newer than the failed result
    assert final_accuracy(sweep, capsys, failed) == ("queued", None)
    path.unlink()
    assert final_accuracy(sweep, capsys, done) == ("pending", None)


@pytest.mark.parametrize("bad", [b"", b'{"format": 1, "code": "x", "trials": {', b"\x00\xff garbage",
                                 b'{"format": 999, "trials": {}}', b"[1, 2]"])
def test_a_torn_corrupt_or_foreign_cache_is_rebuilt(sweep: SweepDir, capsys, bad: bytes) -> None:
    expected = status_output(sweep, capsys, "--all")
    (sweep.root / CACHE_FILE).write_bytes(bad)
    assert status_output(sweep, capsys, "--all") == expected
    assert len(json.loads((sweep.root / CACHE_FILE).read_text())["trials"]) == 6  # written afresh


def test_only_status_and_report_write_the_cache(sweep: SweepDir, capsys) -> None:
    assert main(["extend", str(sweep.root), "--seeds", "4", "--dry-run"]) == 0  # reads every trial, writes nothing
    assert "dry run" in capsys.readouterr().out and not (sweep.root / CACHE_FILE).exists()
    assert main(["status", str(sweep.root)]) == 0
    assert (sweep.root / CACHE_FILE).exists()


def test_fresh_files_are_read_live_until_they_age(sweep: SweepDir) -> None:
    """Two rewrites within one mtime tick can keep size, mtime and inode: files younger than the racy window
    are not remembered."""
    done = sweep.trial_ids()[0]
    write_result(sweep.trial_dir(done), TrialResult(status=Outcome.DONE, trial_id=done, final_test_acc=81.5))
    read_trials(sweep, remember=True)
    assert done not in json.loads((sweep.root / CACHE_FILE).read_text())["trials"]
    age(sweep.root)
    read_trials(sweep, remember=True)
    assert done in json.loads((sweep.root / CACHE_FILE).read_text())["trials"]



def test_a_running_trial_is_always_read_live(sweep: SweepDir, capsys) -> None:
    """A fresh lease ages with the clock alone: the running trial is never remembered, and when its holder is
    gone (here: the lease grows stale) status says so without any file of the trial changing."""
    running = sweep.trial_ids()[5]
    mark_queued(sweep.trial_dir(running), "local")
    lease = Lease.acquire(sweep.trial_dir(running))
    age(sweep.trial_dir(running), 5)  # older than the racy window, younger than a stale lease
    assert final_accuracy(sweep, capsys, running) == ("running", None)
    assert running not in json.loads((sweep.root / CACHE_FILE).read_text())["trials"]
    age(sweep.trial_dir(running), STALE_S + 60)  # the holder stopped heartbeating long ago
    assert final_accuracy(sweep, capsys, running)[0] != "running"
    lease.release()
