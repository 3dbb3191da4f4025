"""Report aggregation math, verdicts, missing seeds, and both W&B paths."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from ghostsweep.orchestrator.report import TrialRecord, build_report, summary_stats, verdict, write_report
from ghostsweep.orchestrator.report_wandb import log_report, records_from_wandb

RECORDED_RUNS = Path(__file__).parent / "data/wandb_runs.json"


@pytest.mark.parametrize("values", [[93.1, 92.8, 93.4, 92.9, 93.3], [91.0, 92.5], [88.25, 90.0, 89.5]])
def test_summary_stats_match_numpy_and_scipy(values):
    got = summary_stats(values)
    sample = np.array(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=sample.mean(), scale=stats.sem(sample))
    assert got["n"] == len(values)
    assert got["mean"] == pytest.approx(sample.mean(), abs=1e-12)
    assert got["std"] == pytest.approx(sample.std(ddof=1), abs=1e-12)
    assert (got["ci_low"], got["ci_high"]) == (pytest.approx(low, abs=1e-9), pytest.approx(high, abs=1e-9))
    assert (got["min"], got["max"]) == (sample.min(), sample.max())


def test_one_seed_has_no_interval_and_none_has_no_mean():
    assert summary_stats([92.0])["std"] is None and summary_stats([92.0])["ci_low"] is None
    assert summary_stats([])["mean"] is None


def test_verdicts():
    ours = summary_stats([93.1, 92.8, 93.4, 92.9, 93.3])  # CI about [92.78, 93.42]
    assert verdict(ours, 93.0, missing=0) == "consistent"
    assert verdict(ours, 93.57, missing=0).startswith("paper above our CI by 0.1")
    assert verdict(ours, 92.7, missing=0).startswith("paper below our CI by 0.0")
    assert verdict(ours, 93.0, missing=1) == "incomplete: 1 seed(s) missing"


def record(model: str, seed: int, acc: float | None, group: str = "g") -> TrialRecord:
    done = acc is not None
    result = {"final_test_acc": acc, "best_val_test_acc": acc, "params": 853018, "macs": 125485696,
              "wall_time_s": 3600.0, "device": "NVIDIA H200", "world_size": 1} if done else {}
    return TrialRecord(trial_id=f"{model}-s{seed}", group=group, label=model, variant=model, model=model,
                       first_layer=None, block_norm=None, seed=seed, iterations=64_000, done=done,
                       result=result, curve=[(32_000, 80.0 + seed), (64_000, 90.0 + seed)] if done else [])


def test_missing_seeds_are_marked_not_silently_averaged(tmp_path):
    report = build_report("t", [record("resnet56", 0, 93.1), record("resnet56", 1, 92.9),
                                record("resnet56", 2, None)])
    (row,) = report["rows"]
    assert (row["seeds_done"], row["seeds_planned"], row["missing_seeds"]) == (2, 3, [2])
    assert {ref["source"] for ref in row["references"]} == {"ghostnet", "he2016", "akamaster"}
    assert all(ref["verdict"] == "incomplete: 1 seed(s) missing" for ref in row["references"])
    assert row["gpu_hours"] == pytest.approx(2.0)
    paths = write_report(report, tmp_path)
    markdown = paths["md"].read_text()
    assert "2/3 (missing seeds 2)" in markdown and "He et al., Deep Residual Learning" in markdown
    assert markdown.count("He et al., Deep Residual Learning") == 1  # each source kept once
    assert json.loads(paths["json"].read_text())["rows"][0]["final_test_acc"]["n"] == 2


class RecordedRun(SimpleNamespace):
    def scan_history(self, keys: list[str]) -> list[dict]:
        return [{k: row[k] for k in keys if k in row} for row in self.history]


class RecordedApi:
    """wandb.Api stand-in that serves recorded runs (see tests/data/wandb_runs.json for their provenance)."""

    def runs(self, path: str) -> list[RecordedRun]:
        assert path == "ghost-lab/ghostsweep-paper"
        return [RecordedRun(**run) for run in json.loads(RECORDED_RUNS.read_text())["runs"]]


def test_report_from_recorded_wandb_runs():
    title, records, settings = records_from_wandb("ghost-lab/ghostsweep-paper", api=RecordedApi())
    report = build_report(title, records, settings)
    rows = {row["label"]: row for row in report["rows"]}
    assert set(rows) == {"resnet56", "ghost_resnet56-conv-keep"}
    assert rows["resnet56"]["seeds_planned"] == 3 and rows["resnet56"]["missing_seeds"] == [2]
    ghost = rows["ghost_resnet56-conv-keep"]["final_test_acc"]
    assert (ghost["n"], ghost["mean"]) == (2, pytest.approx((92.51 + 92.77) / 2))
    assert report["trials"][0]["curve"][-1] == (64000, 93.12)
    with pytest.raises(ValueError, match="ENTITY/PROJECT"):
        records_from_wandb("no-slash", api=RecordedApi())


def test_wandb_flag_logs_table_and_plots_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    report = build_report("t", [record("resnet56", 0, 93.1), record("resnet56", 1, 92.9)], {"project": "p"})
    where = log_report(report, write_report(report, tmp_path / "out"))
    run_dir = Path(where)
    assert run_dir.name.startswith("offline-run-") and any(run_dir.glob("*.wandb"))
    media = [p.name for p in run_dir.rglob("*") if p.is_file() and "media" in p.parts]
    assert {name.split("_")[0] for name in media} == {"accuracy-vs-params", "learning-curves", "table"}, media
