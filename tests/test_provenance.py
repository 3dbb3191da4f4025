"""Provenance in the answer (issue 28): which code, libraries and device produced each row's seeds, a flag on a
row that mixes them, a warning before `extend` mixes them, and `rerun --stale` to undo it. Real tiny trials: the
"commit in between" is the runner's own hook, $GHOSTSWEEP_CODE_VERSION (trials/provenance.py), so that result.json
records it exactly as it records a git commit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ghostsweep.orchestrator.report.build import build_report
from ghostsweep.orchestrator.report.model import Report
from ghostsweep.orchestrator.report.records import TrialRecord
from ghostsweep.trials.provenance import CODE_VERSION_ENV
from ghostsweep.trials.trialdir import Outcome, TrialResult

SPEC = """
name: prov
grids:
  - model: [resnet8, ghost_resnet8]
seeds: 2
recipe: {iterations: 6, milestones: [4], eval_interval: 3, checkpoint_interval: 3, batch_size: 16}
data: {val_size: 200, test_size: 200}
runtime: {device: cpu}
resources: {gpus_per_trial: 0, cpus_per_trial: 1, mem_gb: 1, time_limit_min: 20}
backend: {name: local}
"""


def ghostsweep(*args: object, code: str, data: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {CODE_VERSION_ENV: code, "GHOSTSWEEP_DATA_DIR": str(data), "OMP_NUM_THREADS": "1",
                        "WANDB_MODE": "disabled", "GHOSTSWEEP_TRIAL_CACHE": "off"}
    done = subprocess.run([sys.executable, "-m", "ghostsweep.orchestrator.cli", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _report(sweep: Path, data: Path) -> tuple[dict, str, str]:
    ghostsweep("report", sweep, code="any", data=data)
    return (json.loads((sweep / "report.json").read_text()), (sweep / "report.md").read_text(),
            (sweep / "report.html").read_text())


def test_extend_after_a_commit_is_flagged_and_rerun_stale_makes_rows_uniform(tmp_path: Path,
                                                                           cifar10_dir: Path) -> None:
    (tmp_path / "spec.yaml").write_text(SPEC)
    sweep = tmp_path / "sweep"
    ghostsweep("submit", tmp_path / "spec.yaml", "--out", sweep, code="c0ffee000001", data=cifar10_dir)

    # A uniform sweep: one provenance line, no flag.
    report, markdown, page = _report(sweep, cifar10_dir)
    assert markdown.count("Provenance: every done seed ran with code c0ffee000001;") == 1
    assert "⚠" not in markdown and "⚠" not in page and "Provenance: every done seed" in page
    assert all(row["provenance"]["mixed"] == [] and row["provenance"]["flag"] is None for row in report["rows"])
    assert report["rows"][0]["provenance"]["code"] == {"c0ffee000001": [0, 1]}

    # A commit in between, then extend: warned before submitting, flagged after.
    extended = ghostsweep("extend", sweep, "--seeds", "3", code="beef00000002", data=cifar10_dir)
    assert "these trials run code beef00000002, but 4 done trial(s) ran other code (c0ffee000001: 4)" in \
        extended.stderr and f"ghostsweep rerun {sweep} --stale" in extended.stderr
    report, markdown, page = _report(sweep, cifar10_dir)
    for row in report["rows"]:
        assert row["provenance"]["code"] == {"c0ffee000001": [0, 1], "beef00000002": [2]}
        assert row["provenance"]["mixed"] == ["code"] and row["provenance"]["flag"] == "⚠ mixed code"
        assert all(ref["verdict"] == "not comparable" for ref in row["references"])
    (comparison,) = report["comparisons"]
    assert "resnet8 mixed code" in " ".join(comparison["provenance"])
    assert "⚠ provenance:" in report["answer"][0]
    assert "Provenance differs within the report (code); per row:" in markdown
    assert "code c0ffee000001 (seeds 0, 1), beef00000002 (seed 2)" in markdown
    assert markdown.count("⚠ mixed code") >= 4 and "⚠ mixed code" in page  # rows table, per-row lines, answer
    status = json.loads(ghostsweep("status", sweep, "--json", code="any", data=cifar10_dir).stdout)
    assert status["code_versions"] == {"c0ffee000001": 4, "beef00000002": 2}

    # rerun --stale retrains the old seeds afresh under the new code: every seed on one version again.
    rerun = ghostsweep("rerun", sweep, "--stale", code="beef00000002", data=cifar10_dir)
    assert "4 trial(s)" in rerun.stdout and "train afresh" in rerun.stdout
    assert len(list(sweep.glob("trials/*/result.json.stale-1"))) == 4
    assert len(list(sweep.glob("trials/*/checkpoint.pt.stale-1"))) == 4
    report, markdown, _ = _report(sweep, cifar10_dir)
    assert all(row["provenance"]["code"] == {"beef00000002": [0, 1, 2]} for row in report["rows"])
    assert "⚠" not in markdown and markdown.count("Provenance: every done seed ran with code beef00000002") == 1
    attempts = [json.loads(p.read_text())["iterations"] for p in sweep.glob("trials/*/result.json")]
    assert attempts == [6] * 6
    assert "nothing to rerun" in ghostsweep("rerun", sweep, "--stale", code="beef00000002-dirty",
                                            data=cifar10_dir).stdout  # a dirty tree of the same commit is not stale


def _record(seed: int, code: str | None, gpu: str = "NVIDIA H100") -> TrialRecord:
    result = TrialResult(status=Outcome.DONE, trial_id=f"r-s{seed}", final_test_acc=93.0 + seed / 10,
                         best_val_test_acc=93.0, params=853018, macs=125485696, wall_time_s=3600.0,
                         device="cuda:0 (NVIDIA H100)", gpu_model=gpu, world_size=1, code_version=code,
                         torch_version="2.5.1")
    return TrialRecord(trial_id=f"r-s{seed}", group="g", label="resnet56", variant="resnet56", model="resnet56",
                       first_layer=None, block_norm=None, seed=seed, iterations=64_000, done=True, result=result)


def test_a_dirty_tree_or_another_gpu_warns_but_stays_comparable() -> None:
    """Only a code version that differs within a row makes its judgements not comparable; the rest warn."""
    report = build_report("t", [_record(0, "abc-dirty"), _record(1, "abc"), _record(2, "abc", gpu="NVIDIA A100")])
    (row,) = report.rows
    assert row.provenance.flag == "⚠ mixed device, dirty tree" and row.provenance.mixed == ["device"]
    assert all(ref.verdict != "not comparable" or "code" not in ref.judgement.reason for ref in row.references)
    assert "device NVIDIA H100 (seeds 0, 1), NVIDIA A100 (seed 2)" in row.provenance.describe()


def test_seeds_of_two_commits_are_not_comparable() -> None:
    (row,) = build_report("t", [_record(0, "abc"), _record(1, "abc"), _record(2, "def")]).rows
    assert row.references and all(ref.verdict == "not comparable" for ref in row.references)
    assert all("different code versions (abc (2), def (1))" in ref.judgement.reason for ref in row.references)


def test_old_results_and_an_old_report_json_read_as_unknown() -> None:
    report = build_report("t", [_record(0, None), _record(1, None)])
    assert report.rows[0].provenance.code == {"unknown": [0, 1]}
    data = report.to_dict()
    for row in data["rows"]:
        del row["provenance"]  # a report.json written before provenance was shown
    assert Report.from_dict(data).rows[0].provenance is None


@pytest.mark.parametrize("version", ["c0ffee", ""])
def test_the_code_version_hook(version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from ghostsweep.trials.provenance import code_version

    monkeypatch.setenv(CODE_VERSION_ENV, version)
    assert (code_version() == "c0ffee") == bool(version)
