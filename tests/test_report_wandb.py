"""The report and W&B: runs group by report row, `--from-wandb` rebuilds the files' report, `--wandb` logs numbers.

No W&B server can run here, so `RecordedApi` stands in for `wandb.Api`: it serves run data made from exactly what
the runner logs (config.json's config plus the runner's extra keys, the result as summary, the eval rows as
history), or the hand-made legacy runs in tests/data/wandb_runs.json.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ghostsweep.orchestrator.report.build import build_report
from ghostsweep.orchestrator.report.files import write_report
from ghostsweep.orchestrator.report.model import Report
from ghostsweep.orchestrator.report.plots import PLOTS
from ghostsweep.orchestrator.report.records import records_from_sweep
from ghostsweep.orchestrator.report.wandb_io import log_report, numeric_tables, records_from_wandb
from ghostsweep.orchestrator.spec.sweepspec import parse_spec
from ghostsweep.orchestrator.sweepdir.directory import SweepDir
from ghostsweep.trials.config import TrialConfig
from ghostsweep.trials.trialdir import (
    CONFIG_FILE,
    METRICS_FILE,
    Outcome,
    TrialResult,
    atomic_write_lines,
    read_json,
    read_lines,
    read_result,
    write_result,
)
from ghostsweep.trials.wandb_log import filter_fields

LEGACY_RUNS = Path(__file__).parent / "data/wandb_runs.json"
PROJECT = "lab/ghostsweep"
SWEEP = "wb-check"
SEEDS = (0, 1, 2)
# resnet56 at three learning rates (0.05 and 0.2 are both off the default: plan order orients their comparison)
# and ghost_resnet56 with either stem: model, recipe and model-option comparisons, with the sources' claims.
GRIDS = [{"model": ["resnet56"], "recipe.lr": [0.05, 0.1, 0.2]},
         {"model": ["ghost_resnet56"], "first_layer": ["conv", "ghost"]}]
RUNNING = ("ghost_resnet56", 2)  # started, one evaluation so far, no result
INTERRUPTED = ("resnet56", 2)  # at lr 0.05: preempted after one evaluation
FAILED_BEFORE = ("resnet56", 1)  # at lr 0.2: a first run failed, the rerun (a new W&B run) is done
SIZES = {"resnet56": (853_018, 125_485_696), "ghost_resnet56": (430_000, 63_000_000)}  # params, MACs


def final_accuracy(trial: TrialConfig) -> float:
    """Known accuracies: a per-row level and a per-seed offset shared by the rows (same data order)."""
    level = {"resnet56": 91.6, "ghost_resnet56": 90.9}[trial.model] - 4 * abs(trial.recipe.lr - 0.1)
    level -= 0.3 if trial.resolved_model_options().get("first_layer") == "ghost" else 0.0
    return level + (0.21, -0.35, 0.08)[trial.seed] + 0.01 * trial.seed * len(trial.variant)


def eval_rows(trial: TrialConfig, count: int) -> list[dict[str, Any]]:
    """metrics.jsonl as the runner writes it, ending at the final accuracy."""
    final, step = final_accuracy(trial), trial.recipe.eval_interval
    return [{"iteration": step * (i + 1), "lr": trial.recipe.lr, "train_loss": 1.0 / (i + 1), "train_acc": 60.0 + i,
             "val_acc": final - 5.0 * (1 - i) + 0.1, "test_acc": final - 5.0 * (1 - i), "images_per_s": 4000.0,
             "elapsed_s": 30.0 * (i + 1)} for i in range(count)]


def result_of(trial: TrialConfig, rows: list[dict[str, Any]], status: Outcome) -> TrialResult:
    """result.json as the runner writes it after `rows`."""
    params, macs = SIZES[trial.model]
    last = rows[-1]
    done = status is Outcome.DONE
    return TrialResult(
        status=status, trial_id=trial.trial_id(), reason=None if done else f"{status.value} in a test",
        variant=trial.variant, model=trial.model, seed=trial.seed, final_val_acc=last["val_acc"],
        final_test_acc=last["test_acc"] if done else None, best_val_acc=last["val_acc"],
        best_val_test_acc=last["test_acc"] - 0.05 if done else None, best_val_iteration=last["iteration"],
        max_test_acc=max(row["test_acc"] for row in rows) if done else None, params=params, macs=macs,
        iterations=last["iteration"], wall_time_s=last["elapsed_s"], device="NVIDIA H200", world_size=1,
        attempt=1, compile="off", channels_last=False, precision="fp32", deterministic=True, depthwise="grouped",
        split_hash="3f1c2a9e", finished_at=1_700_000_000.0,
    )


def which(trial: TrialConfig) -> tuple[str, int]:
    return trial.model, trial.seed


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A materialized sweep whose trials have run: done, one running, one interrupted, one done on its rerun."""
    root = tmp_path_factory.mktemp("sweep")
    spec = parse_spec({"name": SWEEP, "seeds": len(SEEDS), "grids": GRIDS,
                       "recipe": {"iterations": 1000, "eval_interval": 500}})
    SweepDir(root).materialize(spec)
    for trial in spec.trials:
        trial_dir = SweepDir(root).trial_dir(trial.trial_id())
        lr, first_layer = trial.recipe.lr, trial.resolved_model_options().get("first_layer")
        if which(trial) == RUNNING and first_layer == "ghost":
            atomic_write_lines(trial_dir / METRICS_FILE, eval_rows(trial, 1))
        elif which(trial) == INTERRUPTED and lr == 0.05:
            rows = eval_rows(trial, 1)
            atomic_write_lines(trial_dir / METRICS_FILE, rows)
            write_result(trial_dir, result_of(trial, rows, Outcome.INTERRUPTED))
        else:
            rows = eval_rows(trial, 2)
            atomic_write_lines(trial_dir / METRICS_FILE, rows)
            write_result(trial_dir, result_of(trial, rows, Outcome.DONE))
    return root


def logged_run(trial_dir: Path, run_id: str, result: TrialResult | None = None,
               rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """What the runner logs for the trial in `trial_dir` (trials/runner.py: the WandbLogger call, _evaluate_and_log,
    _finish), as the public API returns it; `result` and `rows` stand for an earlier attempt's."""
    stored = read_json(trial_dir / CONFIG_FILE)
    stored.pop("trial_id")
    config = TrialConfig.from_dict(stored)  # as the worker reads config.json
    rows = read_lines(trial_dir / METRICS_FILE) if rows is None else rows
    result = read_result(trial_dir) if result is None else result
    history = [{"_step": row["iteration"], **{k: v for k, v in row.items() if k != "iteration" and v is not None}}
               for row in rows]
    summary = history[-1] | {"_runtime": rows[-1]["elapsed_s"], "_wandb": {"runtime": 1}}
    if result is not None:
        summary |= {k: v for k, v in result.to_dict().items() if v is not None}
    run = {
        "id": run_id, "name": config.trial_id(), "group": config.wandb.run_group(config.variant),
        "job_type": config.wandb.job_type,
        "state": "running" if result is None else "finished" if result.done else "failed",  # exit code 1: failed
        "config": config.to_dict() | filter_fields(config) | {
            "trial_id": config.trial_id(), "params": SIZES[config.model][0],
            "macs": SIZES[config.model][1], "split_hash": "3f1c2a9e", "world_size": 1, "device": "NVIDIA H200"},
        "summary": summary, "history": history,
    }
    return json.loads(json.dumps(run))  # what comes back from the API is JSON


def recorded_runs(sweep: Path) -> list[dict[str, Any]]:
    """The project's runs, newest first as the API lists them: every started trial's, a failed first run, another
    sweep's run and the report run."""
    runs = []
    for index, trial_id in enumerate(SweepDir(sweep).trial_ids()):
        trial_dir = SweepDir(sweep).trial_dir(trial_id)
        runs.append(logged_run(trial_dir, f"run{index:03d}"))
        config = TrialConfig.from_dict({k: v for k, v in read_json(trial_dir / CONFIG_FILE).items() if k != "trial_id"})
        if which(config) == FAILED_BEFORE and config.recipe.lr == 0.2:
            rows = read_lines(trial_dir / METRICS_FILE)[:1]
            runs.insert(0, logged_run(trial_dir, f"failed{index:03d}", result_of(config, rows, Outcome.FAILED), rows))
    other = logged_run(SweepDir(sweep).trial_dir(SweepDir(sweep).trial_ids()[0]), "other")
    other["config"]["wandb"]["sweep"], other["group"] = "another-sweep", "another-sweep/resnet56 recipe.lr=0.05"
    report_run = {"id": "report", "name": f"report-{SWEEP}", "group": SWEEP, "job_type": "report",
                  "state": "finished", "config": {"sweep": SWEEP}, "summary": {}, "history": []}
    return [report_run, other, *reversed(runs)]


class RecordedRun(SimpleNamespace):
    def scan_history(self, keys: list[str]) -> list[dict[str, Any]]:
        """As the public API: only the rows that have every key."""
        return [{k: row[k] for k in keys} for row in self.history if all(k in row for k in keys)]


class RecordedApi:
    """`wandb.Api` stand-in (no W&B server can run here) serving recorded run data for one project."""

    def __init__(self, runs: list[dict[str, Any]], project: str = PROJECT) -> None:
        self._runs, self._project = runs, project

    def runs(self, path: str) -> list[RecordedRun]:
        assert path == self._project
        return [RecordedRun(**run) for run in self._runs]


def without_time(report: Report) -> Report:
    """The report but for when it was made and where its W&B settings came from."""
    return dataclasses.replace(report, generated_at=0.0, wandb={})


def test_sweep_trials_carry_their_report_row_and_keep_their_ids(sweep: Path) -> None:
    index = SweepDir(sweep).index()
    for position, trial_id in enumerate(index.trial_ids):
        stored = read_json(SweepDir(sweep).trial_dir(trial_id) / CONFIG_FILE)
        assert stored.pop("trial_id") == trial_id
        config = TrialConfig.from_dict(stored)
        assert config.trial_id() == trial_id  # the W&B fields are not identity
        assert (config.wandb.sweep, config.wandb.row, config.wandb.position) == (
            SWEEP, index.trials[trial_id].label, position)
        assert config.wandb.run_group(config.variant) == f"{SWEEP}/{index.trials[trial_id].label}"
    assert TrialConfig(model="resnet56").wandb.run_group("resnet56") == "resnet56"  # `train` outside a sweep


def test_wandb_groups_are_the_report_rows(sweep: Path) -> None:
    """One W&B group per report row and one row per group: grouping in the UI never mixes rows."""
    index = SweepDir(sweep).index()
    runs = [run for run in recorded_runs(sweep) if run["config"].get("wandb", {}).get("sweep") == SWEEP]
    pairs = {(run["group"], index.trials[run["config"]["trial_id"]].group) for run in runs}
    groups, rows = zip(*pairs, strict=True)
    assert len(pairs) == len(set(groups)) == len(set(rows)) == 5
    assert set(groups) == {f"{SWEEP}/{label}" for label in (
        "resnet56 recipe.lr=0.05", "resnet56 recipe.lr=0.1", "resnet56 recipe.lr=0.2", "ghost_resnet56-conv-keep",
        "ghost_resnet56-ghost-keep")}


def test_from_wandb_rebuilds_the_files_report(sweep: Path) -> None:
    from_files = build_report(*records_from_sweep(sweep))
    title, records, settings = records_from_wandb(f"{PROJECT}/{SWEEP}", api=RecordedApi(recorded_runs(sweep)))
    from_wandb = build_report(title, records, settings)
    assert settings == {"entity": "lab", "project": "ghostsweep"}
    assert without_time(from_wandb) == without_time(from_files)
    # The sweep exercises what could differ: states, a rerun, row order, comparisons, claims.
    rows = {row.label: row for row in from_files.rows}
    assert rows["ghost_resnet56-ghost-keep"].missing_seeds == [2]
    assert rows["resnet56 recipe.lr=0.05"].missing_seeds == [2]
    assert rows["resnet56 recipe.lr=0.2"].seeds_done == 3
    differences = [c.difference for c in from_files.comparisons]
    assert "resnet56: recipe.lr=0.2 − recipe.lr=0.1" in differences  # each value against the default
    assert "resnet56: recipe.lr=0.2 − recipe.lr=0.05" not in differences
    assert len(from_files.comparisons) == 5 and any(c.claims for c in from_files.comparisons)


def test_from_wandb_keeps_sweeps_apart(sweep: Path) -> None:
    api = RecordedApi(recorded_runs(sweep))
    with pytest.raises(ValueError, match=f"several sweeps \\(another-sweep, {SWEEP}\\); pick one: {PROJECT}/SWEEP"):
        records_from_wandb(PROJECT, api=api)
    title, records, _ = records_from_wandb(f"{PROJECT}/another-sweep", api=api)
    assert title == "another-sweep" and len(records) == 1
    with pytest.raises(ValueError, match="no trial runs"):
        records_from_wandb(f"{PROJECT}/nothing-here", api=api)
    with pytest.raises(ValueError, match="ENTITY/PROJECT"):
        records_from_wandb("no-slash", api=api)


def test_report_from_legacy_wandb_runs() -> None:
    """Runs logged before trials carried their sweep and row: grouped by setting, labelled by the runs present."""
    legacy = json.loads(LEGACY_RUNS.read_text())["runs"]
    title, records, settings = records_from_wandb("ghost-lab/ghostsweep-paper",
                                                  api=RecordedApi(legacy, "ghost-lab/ghostsweep-paper"))
    report = build_report(title, records, settings)
    rows = {row.label: row for row in report.rows}
    assert title == "ghost-lab/ghostsweep-paper"
    assert set(rows) == {"resnet56", "ghost_resnet56-conv-keep"}
    assert rows["resnet56"].seeds_planned == 3 and rows["resnet56"].missing_seeds == [2]
    ghost = rows["ghost_resnet56-conv-keep"].final_test_acc
    assert (ghost.n, ghost.mean) == (2, pytest.approx((92.51 + 92.77) / 2))
    assert report.trials[0].curve[-1] == (64000, 93.12)


def test_numeric_tables_are_the_reports_numbers(sweep: Path) -> None:
    report = build_report(*records_from_sweep(sweep))
    tables = numeric_tables(report)
    assert [line["label"] for line in tables["rows"]] == [row.label for row in report.rows]
    for line, row in zip(tables["rows"], report.rows, strict=True):
        for stat, value in row.final_test_acc.to_dict().items():  # model.Summary: n, mean, std, ci_low, ...
            assert line[f"final_test_acc_{stat}"] == value
    for line, comparison in zip(tables["comparisons"], report.comparisons, strict=True):
        paired = comparison.paired
        assert (line["delta"], line["low"], line["high"], line["n_pairs"]) == (
            paired and paired.estimate, paired and paired.low, paired and paired.high, comparison.n_pairs)
    assert len(tables["claims"]) == sum(len(c.claims) for c in report.comparisons) > 0
    assert [line["sentence"] for line in tables["answer"]] == report.answer
    for name, lines in tables.items():  # every cell a number, a name or verdict, a flag, or empty
        assert lines, name
        assert all(isinstance(v, int | float | str | bool | None) for line in lines for v in line.values()), name
        assert all(len(line) == len(lines[0]) for line in lines), name
    numbers = [v for v in tables["rows"][0].values() if isinstance(v, float)]
    assert numbers and all(math.isfinite(v) for v in numbers)


def test_wandb_flag_logs_the_report_into_the_sweep_dir(sweep: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("WANDB_DIR", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    report = build_report(*records_from_sweep(sweep))
    run_dir = Path(log_report(report, write_report(report, sweep), sweep))
    assert run_dir.parent == sweep / "wandb" and run_dir.name.startswith("offline-run-")
    assert any(run_dir.glob("run-*.wandb")) and not any(elsewhere.iterdir())
    media = [p for p in run_dir.rglob("*") if p.is_file() and "media" in p.parts]
    logged = {p.name.split("_")[0] for p in media}
    assert logged == {"rows", "references", "comparisons", "claims", "answer", "html", *PLOTS}, logged
    table = json.loads(next(p for p in media if p.name.startswith("rows_")).read_text())
    expected = numeric_tables(report)["rows"]
    assert table["columns"] == list(expected[0])
    assert table["data"] == [list(line.values()) for line in expected]  # the numbers, not formatted strings
