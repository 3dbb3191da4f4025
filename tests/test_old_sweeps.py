"""Upgrades keep old sweeps: a sweep folder written by an earlier main still gives the same `status`, the same
numbers in `report`, and `rerun` finishes it (tests/data/sweeps/README.md says what each fixture is)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "data/sweeps"
VERSIONS = sorted(p.name for p in FIXTURES.iterdir() if (p / "fixture/sweep.json").is_file())


def ghostsweep(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ghostsweep.orchestrator.cli", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(params=VERSIONS)
def old_sweep(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the old folder (the fixture stays untouched) and where its expectations are."""
    version = FIXTURES / request.param
    shutil.copytree(version / "fixture", tmp_path / "fixture")
    return tmp_path / "fixture", version


def _status(sweep: Path, env: dict[str, str] | None = None) -> dict:
    done = ghostsweep("status", sweep, "--json", env=env)
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    status.pop("as_of")
    return status


def test_status_reads_as_it_did(old_sweep: tuple[Path, Path]) -> None:
    sweep, version = old_sweep
    expected = json.loads((version / "expected-status.json").read_text())
    expected.pop("as_of")
    status = _status(sweep)
    assert {key: status[key] for key in expected} == expected  # what today's status adds (code_versions) aside


def test_report_gives_the_same_numbers(old_sweep: tuple[Path, Path]) -> None:
    sweep, version = old_sweep
    expected = json.loads((version / "expected-report-numbers.json").read_text())
    done = ghostsweep("report", sweep)
    assert done.returncode == 0, done.stderr
    report = json.loads((sweep / "report.json").read_text())
    rows = {row["label"]: row for row in report["rows"]}
    assert set(rows) == set(expected["rows"])
    for label, numbers in expected["rows"].items():
        for metric in ("final_test_acc", "best_val_test_acc"):
            got = rows[label][metric]
            assert (got["n"], got["std"]) == (numbers[metric]["n"], numbers[metric]["std"])
            assert got["mean"] == pytest.approx(numbers[metric]["mean"], abs=1e-9)
        assert rows[label]["seeds_done"] == numbers["seeds_done"]
    comparisons = {c["difference"]: c for c in report["comparisons"]}
    for name, numbers in expected["comparisons"].items():
        assert comparisons[name]["n_pairs"] == numbers["n_pairs"]
        assert comparisons[name]["paired"]["estimate"] == pytest.approx(numbers["paired"], abs=1e-9)
        assert comparisons[name]["welch"]["estimate"] == pytest.approx(numbers["welch"], abs=1e-9)


def test_rerun_finishes_the_old_sweep(old_sweep: tuple[Path, Path], cifar10_dir: Path) -> None:
    """The trial the old version never started runs to the end under today's code, beside the old trials."""
    sweep, _ = old_sweep
    env = os.environ | {"GHOSTSWEEP_DATA_DIR": str(cifar10_dir), "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    before = _status(sweep, env)
    assert before["counts"]["pending"] == 1
    done = ghostsweep("rerun", sweep, env=env)
    assert done.returncode == 0, done.stderr
    after = _status(sweep, env)
    assert after["counts"]["done"] == before["counts"]["done"] + 1 and after["counts"]["pending"] == 0
    kept = {t["trial_id"]: t for t in before["trials"] if t["state"] == "done"}
    assert all(t == kept[t["trial_id"]] for t in after["trials"] if t["trial_id"] in kept)
