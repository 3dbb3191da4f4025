"""`ghostsweep plan --format table|json|csv`: whole trial ids, output scripts can read, CPU specs in CPU-hours."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from ghostsweep import model
from ghostsweep.orchestrator.cli import main
from ghostsweep.orchestrator.spec import plan
from ghostsweep.orchestrator.spec.sweepspec import load_spec
from ghostsweep.trials.config import TrialConfig

REPO = Path(__file__).resolve().parents[1]
PAPER, SMOKE = REPO / "sweeps/paper.yaml", REPO / "sweeps/smoke.yaml"


def _plan(spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> str:
    assert main(["plan", str(spec), "--out", str(tmp_path / "sweep"), *flags]) == 0
    assert not (tmp_path / "sweep").exists()  # plan writes nothing
    return capsys.readouterr().out


def test_json_lists_every_trial_and_the_totals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = json.loads(_plan(PAPER, tmp_path, capsys, "--format", "json"))
    ids = [trial.trial_id() for trial in load_spec(PAPER).trials]
    assert [trial["trial_id"] for trial in document["trials"]] == ids and len(ids) == 85
    assert {trial["unit"] for trial in document["trials"]} == {"GPU-h"}
    assert document["totals"]["GPU-h"] == pytest.approx(sum(t["hours"] for t in document["trials"]))
    assert round(document["totals"]["GPU-h"], 1) == 63.4  # docs/throughput.md's projection for paper.yaml
    assert sum(variant["trials"] for variant in document["variants"]) == 85 and len(document["variants"]) == 17
    assert document["gpu_device"] == "NVIDIA H200" and document["cpu_device"] is None
    assert document["submit_would_start"] is None  # no sweep directory yet


def test_csv_has_one_row_per_trial(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = list(csv.DictReader(io.StringIO(_plan(PAPER, tmp_path, capsys, "--format", "csv"))))
    assert [row["trial_id"] for row in rows] == [trial.trial_id() for trial in load_spec(PAPER).trials]
    assert rows[0]["variant"] == "resnet20" and float(rows[0]["hours"]) > 0 and rows[0]["state"] == ""


@pytest.mark.parametrize("width", [80, 40])
def test_table_never_cuts_trial_ids(width: int) -> None:
    """Each trial's line holds its whole id (the id `rerun --trial` takes) at any terminal width, never cut with
    '…'; a terminal narrower than the line wraps it."""
    spec = load_spec(PAPER)
    out = io.StringIO()
    plan.print_plan(spec, Path("/nonexistent"), Console(file=out, width=width))
    lines = out.getvalue().splitlines()
    header = next(index for index, line in enumerate(lines) if line.split()[:2] == ["#", "trial"])
    rows = [line.split() for line in lines[header + 1:header + 1 + len(spec.trials)]]
    assert [row[1] for row in rows] == [trial.trial_id() for trial in spec.trials]
    assert [row[0] for row in rows] == [str(number) for number in range(1, 86)]
    assert "…" not in out.getvalue()
    assert max(len(line) for line in lines[header:header + 86]) <= 80  # paper.yaml's table fits 80 columns


def test_cpu_spec_is_planned_in_cpu_hours_on_this_cpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = _plan(SMOKE, tmp_path, capsys)
    assert "CPU-hours on this machine's CPU" in table and plan.detected_cpu() in " ".join(table.split())
    assert "GPU-hours" not in table and "H200" not in table
    document = json.loads(_plan(SMOKE, tmp_path, capsys, "--format", "json"))
    assert {trial["unit"] for trial in document["trials"]} == {"CPU-h"} and document["gpu_device"] is None
    assert document["cpu_device"] == plan.detected_cpu()


def test_cpu_hours_scale_by_macs_from_the_measured_model() -> None:
    """The measured model takes its measured rate; another takes it scaled by the ratio of MACs."""
    measured = TrialConfig(model=plan.CPU_REFERENCE_MODEL)
    images = measured.recipe.iterations * measured.recipe.batch_size + (
        measured.recipe.iterations // measured.recipe.eval_interval * measured.data.val_size
        + measured.data.test_size) / plan.EVAL_SPEEDUP
    assert plan.estimate_cpu_hours(measured) == pytest.approx(images / plan.CPU_REFERENCE_IMAGES_PER_S / 3600)
    resnet = TrialConfig(model="resnet20")
    ratio = model.complexity("resnet20").macs / model.complexity(plan.CPU_REFERENCE_MODEL).macs
    assert plan.estimate_cpu_hours(resnet) / plan.estimate_cpu_hours(measured) == pytest.approx(ratio)


def test_rows_of_one_variant_are_told_apart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """fast-vs-faithful.yaml's six trials are all resnet20: each trial's line and the per-row table name the
    settings that differ (the report's and W&B's row label), and json/csv carry the label as `row`."""
    spec = REPO / "sweeps/fast-vs-faithful.yaml"
    table = _plan(spec, tmp_path, capsys)
    lines = table.splitlines()
    assert lines[1].endswith("GPU-h  row: differs in")
    fast = "runtime.channels_last=True runtime.compile=cudagraphs runtime.precision=bf16"
    faithful = "runtime.channels_last=False runtime.compile=off runtime.precision=fp32"
    assert [line.endswith(faithful) for line in lines[2:8]] == [True] * 3 + [False] * 3
    assert [line.endswith(fast) for line in lines[2:8]] == [False] * 3 + [True] * 3
    assert "2 report rows" in table
    document = json.loads(_plan(spec, tmp_path, capsys, "--format", "json"))
    assert [trial["row"] for trial in document["trials"]] == [f"resnet20 {faithful}"] * 3 + [f"resnet20 {fast}"] * 3
    assert [(row["row"], row["trials"]) for row in document["rows"]] == [
        (f"resnet20 {faithful}", 3), (f"resnet20 {fast}", 3)]
    assert [(variant["variant"], variant["trials"]) for variant in document["variants"]] == [("resnet20", 6)]
    rows = list(csv.DictReader(io.StringIO(_plan(spec, tmp_path, capsys, "--format", "csv"))))
    assert rows[3]["row"] == f"resnet20 {fast}"


def test_a_sweep_whose_rows_are_its_variants_has_no_differs_column(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = _plan(PAPER, tmp_path, capsys)
    assert "differs in" not in table and "17 report rows" in table
