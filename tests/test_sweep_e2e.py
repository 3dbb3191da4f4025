"""The smoke sweep on the local backend with the real trial runner and real CIFAR-10: fail, rerun, report.

The spec is sweeps/smoke.yaml (same grid, seeds, backend and resources) with a shorter recipe so the test
stays cheap on a shared 2-core machine, plus an injected fault in the Ghost grid's first attempt.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ghostsweep.orchestrator.report.plots import PLOTS

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared/data/cifar-10-batches-py"

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"CIFAR-10 not found at {DATA}")


def ghostsweep(*args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"GHOSTSWEEP_DATA_DIR": str(DATA), "PYTHONPATH": str(REPO / "tests")}
    env.pop("GHOSTSWEEP_TRIAL_RUNNER", None)
    return subprocess.run([sys.executable, "-m", "ghostsweep.orchestrator.cli", *args], env=env, capture_output=True,
                          text=True, timeout=900)


def small_smoke_spec(path: Path) -> Path:
    spec = yaml.safe_load((REPO / "sweeps/smoke.yaml").read_text())
    spec["recipe"] = {"iterations": 20, "milestones": [10], "eval_interval": 10, "checkpoint_interval": 10,
                      "batch_size": 32}
    spec["data"] = {"val_size": 500, "test_size": 1000}
    ghost_grid = next(g for g in spec["grids"] if "ghost_resnet20" in g["model"])
    spec["grids"] = [{"model": ["resnet20"]},
                     {**ghost_grid, "model": ["ghost_resnet20"], "faults.fail_at_iteration": [15],
                      "faults.times": [1]}]
    path.write_text(yaml.safe_dump(spec))
    return path


def rows(sweep: Path) -> dict[str, dict]:
    return {row["label"]: row for row in json.loads((sweep / "report.json").read_text())["rows"]}


def test_smoke_sweep_fails_reruns_and_reports_two_seeds_per_cell(tmp_path):
    spec, sweep = small_smoke_spec(tmp_path / "smoke.yaml"), tmp_path / "smoke"
    first = ghostsweep("submit", str(spec), "--out", str(sweep))
    assert first.returncode == 1, first.stdout + first.stderr
    status = json.loads(ghostsweep("status", str(sweep), "--json").stdout)
    states = {t["trial_id"]: t for t in status["trials"]}
    failed = {i for i, t in states.items() if t["state"] == "failed"}
    assert failed == {i for i in states if i.startswith("ghost_resnet20")}
    assert all("iteration 15" in states[i]["reason"] for i in failed), states
    assert {states[i]["state"] for i in states.keys() - failed} == {"done"}

    partial = ghostsweep("report", str(sweep))
    assert partial.returncode == 0 and "0/2 (failed seeds 0, 1)" in partial.stdout
    before = rows(sweep)
    assert before["resnet20"]["seeds_done"] == 2
    untouched = {i: (sweep / "trials" / i / "result.json").read_bytes() for i in states.keys() - failed}

    rerun = ghostsweep("rerun", str(sweep), "--failed")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    report = ghostsweep("report", str(sweep))
    assert report.returncode == 0 and re.search(r"^ *resnet20 +2/2 ", report.stdout, re.M), report.stdout
    after = rows(sweep)
    assert {row["seeds_done"] for row in after.values()} == {2} and len(after) == 2
    assert after["resnet20"]["final_test_acc"] == before["resnet20"]["final_test_acc"]
    assert {i: (sweep / "trials" / i / "result.json").read_bytes() for i in untouched} == untouched
    for trial_id in failed:  # resumed from the checkpoint at iteration 10, not restarted
        trial_dir = sweep / "trials" / trial_id
        assert json.loads((trial_dir / "attempts.json").read_text())["attempt"] == 2
        assert json.loads((trial_dir / "result.json").read_text())["status"] == "done"
    for trial_id in untouched:
        assert json.loads((sweep / "trials" / trial_id / "attempts.json").read_text())["attempt"] == 1
    assert (sweep / "report.html").read_text().count("<svg") == len(PLOTS)
