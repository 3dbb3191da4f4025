"""Provenance in the answer (issue 28): which code, libraries and device produced each row's seeds, a flag on a
row that mixes them, a warning before `extend` mixes them, and `rerun --stale` to undo it. Real tiny trials: the
"commit in between" is the runner's own hook, $GHOSTSWEEP_CODE_VERSION (trials/provenance.py), so that result.json
records it exactly as it records a git commit."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ghostsweep.orchestrator.report.build import build_report
from ghostsweep.orchestrator.report.model import Report
from ghostsweep.orchestrator.report.plots import render_plots
from ghostsweep.orchestrator.report.records import TrialRecord
from ghostsweep.orchestrator.report.tables import ablation_table, comparison_rows
from ghostsweep.orchestrator.report.wandb_io import numeric_tables
from ghostsweep.orchestrator.report.wandb_report import report_definition
from ghostsweep.trials.checkpoint import CRASH_ENV
from ghostsweep.trials.provenance import CODE_VERSION_ENV, torch_build
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


def ghostsweep(*args: object, code: str, data: Path, exit_code: int = 0,
               **env: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {CODE_VERSION_ENV: code, "GHOSTSWEEP_DATA_DIR": str(data), "OMP_NUM_THREADS": "1",
                        "WANDB_MODE": "disabled", "GHOSTSWEEP_TRIAL_CACHE": "off"} | env
    done = subprocess.run([sys.executable, "-m", "ghostsweep.orchestrator.cli", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == exit_code, done.stdout + done.stderr
    return done


def _report(sweep: Path, data: Path) -> tuple[dict, str, str]:
    ghostsweep("report", sweep, code="any", data=data)
    return (json.loads((sweep / "report.json").read_text()), (sweep / "report.md").read_text(),
            (sweep / "report.html").read_text())


@pytest.fixture(scope="module")
def done_sweep(tmp_path_factory: pytest.TempPathFactory, cifar10_dir: Path) -> Path:
    """A uniform sweep of real tiny trials (2 rows x 2 seeds) run once under code c0ffee000001; tests copy it."""
    root = tmp_path_factory.mktemp("provenance")
    (root / "spec.yaml").write_text(SPEC)
    ghostsweep("submit", root / "spec.yaml", "--out", root / "sweep", code="c0ffee000001", data=cifar10_dir)
    return root / "sweep"


def copy_of(sweep: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy)
    return copy


def edit_result(sweep: Path, trial_prefix: str, **fields: object) -> None:
    """Hand-edit one trial's result.json (fields set to None are removed, as an older result lacks them)."""
    (path,) = sweep.glob(f"trials/{trial_prefix}-*/result.json")
    result = json.loads(path.read_text()) | fields
    path.write_text(json.dumps({key: value for key, value in result.items() if value is not None}))


def test_extend_after_a_commit_is_flagged_and_rerun_stale_makes_rows_uniform(done_sweep: Path, tmp_path: Path,
                                                                           cifar10_dir: Path) -> None:
    sweep = copy_of(done_sweep, tmp_path)

    # A uniform sweep: one provenance line, no flag.
    report, markdown, page = _report(sweep, cifar10_dir)
    assert markdown.count("Provenance: every done seed ran with code c0ffee000001;") == 1
    line = next(line for line in markdown.splitlines() if "Provenance: every done seed" in line)
    assert "device cpu" in line and "CUDA" not in line and "cuDNN" not in line  # torch's build, unused on the CPU
    assert "⚠" not in markdown and "⚠" not in page and "Provenance: every done seed" in page
    assert all(row["provenance"]["mixed"] == [] and row["provenance"]["flag"] is None for row in report["rows"])
    assert report["rows"][0]["provenance"]["code"] == {"c0ffee000001": [0, 1]}

    # A commit in between, then extend: warned before submitting, flagged after.
    extended = ghostsweep("extend", sweep, "--seeds", "3", code="beef00000002", data=cifar10_dir)
    assert "these trials run code beef00000002, but 4 done trial(s) ran other code (c0ffee000001: 4)" in \
        extended.stderr and f"ghostsweep rerun {sweep} --stale` once these are done" in extended.stderr
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


def _record(seed: int, code: str | None, gpu: str = "NVIDIA H100", model: str = "resnet56",
            group: str = "g") -> TrialRecord:
    result = TrialResult(status=Outcome.DONE, trial_id=f"{group}-s{seed}", final_test_acc=93.0 + seed / 10,
                         best_val_test_acc=93.0, params=853018, macs=125485696, wall_time_s=3600.0,
                         device=f"cuda:0 ({gpu})", gpu_model=gpu, world_size=1, code_version=code,
                         torch_version="2.5.1")
    return TrialRecord(trial_id=f"{group}-s{seed}", group=group, label=model, variant=model, model=model,
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


def test_before_submitting_other_libraries_or_a_dirty_tree_warn_even_on_a_dry_run(done_sweep: Path, tmp_path: Path,
                                                                                   cifar10_dir: Path) -> None:
    """torch and CUDA as result.json records them (`torch.__version__`, `torch.version.cuda`) against this
    environment's; a result that did not record them is no evidence; `extend --dry-run` warns as a run would."""
    sweep = copy_of(done_sweep, tmp_path)
    edit_result(sweep, "resnet8-s1", torch_version="2.5.1+cu124", cuda_version="12.4")
    edit_result(sweep, "resnet8-s0", torch_version=None, cuda_version=None)  # an older result
    build = torch_build()
    dry = ghostsweep("extend", sweep, "--seeds", "3", "--dry-run", code="c0ffee000001", data=cifar10_dir)
    assert "dry run: 2 trial(s) would be added" in dry.stdout and not (sweep / "extensions.json").exists()
    assert f"these trials run torch {build.version} (this environment's), but 1 done trial(s) ran 2.5.1+cu124 (1)" \
        in dry.stderr and "submit from the done trials' environment" in dry.stderr
    cuda = f"these trials run CUDA {build.cuda} (this environment's), but 1 done trial(s) ran 12.4 (1)"
    assert (cuda in dry.stderr) == (build.cuda is not None)  # a CPU-only torch has no CUDA to compare
    assert "code" not in dry.stderr and "unknown" not in dry.stderr

    dirty = ghostsweep("extend", sweep, "--seeds", "3", "--dry-run", code="c0ffee000001-dirty", data=cifar10_dir)
    assert "these trials run code c0ffee000001-dirty: uncommitted changes" in dirty.stderr
    assert "Commit the changes first" in dirty.stderr
    other = ghostsweep("extend", sweep, "--seeds", "3", "--dry-run", code="beef00000002", data=cifar10_dir)
    assert f"`ghostsweep rerun {sweep} --stale` once these are done (it retrains those 4 afresh" in other.stderr


def test_mixed_libraries_and_devices_are_flagged_beside_every_number(done_sweep: Path, tmp_path: Path,
                                                                      cifar10_dir: Path) -> None:
    """A row of two torch versions, a row of CPU and GPU seeds: the comparisons table flags Δ beside its numbers,
    the answer names each row's flag once (no between-row listing of what the flags say), and report.json's
    trials and the W&B tables say what produced each number."""
    sweep = copy_of(done_sweep, tmp_path)
    edit_result(sweep, "resnet8-s1", torch_version="2.5.1+cu124")
    edit_result(sweep, "ghost_resnet8-conv-keep-s0", device="cuda:0 (NVIDIA H100 80GB HBM3)",
                gpu_model="NVIDIA H100 80GB HBM3")
    report, markdown, page = _report(sweep, cifar10_dir)
    flag = "⚠ provenance: ghost_resnet8-conv-keep mixed device; resnet8 mixed torch"
    (answer,) = report["answer"]
    assert answer.endswith(f"; {flag}.") and "differs between the rows" not in answer
    (table_line,) = [line for line in markdown.splitlines() if line.startswith("| ghost_resnet8-conv-keep − resnet8")]
    assert f"pairs < 3) {flag} |" in table_line  # beside the chosen Δ
    assert page.count(flag) == 2  # the answer and the comparisons table
    trials = {trial["trial_id"].rsplit("-", 1)[0]: trial for trial in report["trials"]}
    assert trials["resnet8-s1"]["torch_version"] == "2.5.1+cu124"
    assert trials["ghost_resnet8-conv-keep-s0"]["device"] == "NVIDIA H100 80GB HBM3"
    assert {trial["code_version"] for trial in trials.values()} == {"c0ffee000001"}
    assert trials["resnet8-s0"]["device"] == "cpu" and trials["resnet8-s0"]["torch_version"] == torch_build().version
    tables = numeric_tables(Report.from_dict(report))
    assert tables["comparisons"][0]["provenance"] == flag.removeprefix("⚠ provenance: ")
    assert [row["provenance_flag"] for row in tables["rows"]] == ["⚠ mixed torch", "⚠ mixed device"]


def test_the_plots_mark_a_row_of_mixed_code_and_its_comparison() -> None:
    """resnet56's seeds ran under two commits, ghost_resnet56's under one: its point and legend entry in the size
    plots, its learning curve and the comparison's line in the differences plot carry ⚠, and each caption says
    what ⚠ means; ghost_resnet56 alone is unmarked."""
    records = [_record(0, "abc"), _record(1, "abc"), _record(2, "def")]
    records += [_record(seed, "abc", model="ghost_resnet56", group="h") for seed in range(3)]
    for record in records:
        record.settings, record.curve = {"model": record.model}, [(500, 50.0 + record.seed), (1000, 60.0)]
    plots = render_plots(build_report("t", records), raster=False)
    marked = {name: re.findall(r">([^<>]*⚠[^<>]*)<", plot.svg) for name, plot in plots.items()}
    assert marked == {"accuracy-vs-params": ["56 ⚠", "ours: resnet ⚠"], "accuracy-vs-macs": ["56 ⚠", "ours: resnet ⚠"],
                      "differences": ["ghost_resnet56 − resnet56 ⚠"], "learning-curves": ["3 seeds ⚠"],
                      "ablations": []}
    for name in ("accuracy-vs-params", "accuracy-vs-macs", "learning-curves"):
        assert "⚠ marks a row whose provenance is flagged" in plots[name].caption
    assert "⚠ marks a comparison" in plots["differences"].caption
    uniform = render_plots(build_report("t", records[3:]), raster=False)
    assert not any("⚠" in plot.svg + plot.caption for plot in uniform.values())


def _ablation_records(code_of: dict[tuple[str, int], str]) -> list[TrialRecord]:
    """vgg16 and Ghost-VGG-16 at s = 2, 3, 4 (GhostNet's ratio curve), 2 seeds each, code c0ffee but where named."""
    records = []
    for group, model, ratio in (("vgg16", "vgg16", None), ("s2", "ghost_vgg16", 2), ("s3", "ghost_vgg16", 3),
                                ("s4", "ghost_vgg16", 4)):
        for seed in range(2):
            record = _record(seed, code_of.get((group, seed), "c0ffee"), model=model, group=group)
            record.settings = {} if ratio is None else {"model_options.ratio": ratio}
            records.append(record)
    return records


def test_ablation_cells_and_the_wandb_report_carry_the_flag(tmp_path: Path) -> None:
    """The ablation table flags the value whose row mixes code, and its baseline; the W&B tables of published
    numbers and claims carry the flags; the W&B Report states the provenance under its answer."""
    report = build_report("t", _ablation_records({("s3", 1): "beef", ("vgg16", 0): "beef"}))
    (ablation,) = report.ablations
    cells = {line[0]: line[3] for line in ablation_table(ablation).rows}
    assert cells["s=3"].endswith("⚠ mixed code") and cells["vgg16 (no Ghost)"].endswith("⚠ mixed code")
    assert "⚠" not in cells["s=2"] + cells["s=4"]
    assert Report.from_dict(report.to_dict()).ablations[0].points[1].provenance_flag == "⚠ mixed code"
    tables = numeric_tables(report)
    flags = {(row["label"], row["provenance_flag"]) for row in tables["references"]}
    assert ("vgg16", "⚠ mixed code") in flags and ("ghost_vgg16", None) in flags
    claims = [claim for claim in tables["claims"] if claim["provenance"]]
    assert claims and all("vgg16 mixed code" in claim["provenance"] for claim in claims)
    assert all(claim["verdict"] == "not comparable" for claim in claims)
    answer = report_definition(report, tmp_path / "report.html").blocks[2].text
    assert "Provenance differs within the report (code); per row:" in "".join(map(str, answer))


def test_a_difference_between_two_uniform_rows_is_named_with_both_values() -> None:
    records = [_record(seed, "c0ffee") for seed in range(2)]
    records += [_record(seed, "c0ffee", model="ghost_resnet56", group="h", gpu="NVIDIA A100") for seed in range(2)]
    for record in records:
        record.settings = {"model": record.model}
    report = build_report("t", records)
    (comparison,) = report.comparisons
    assert comparison.provenance == ["device differs between the rows (NVIDIA A100 vs NVIDIA H100)"]
    assert comparison_rows(report)[0][2].endswith("⚠ provenance: device differs between the rows "
                                                  "(NVIDIA A100 vs NVIDIA H100)")


def test_a_trial_resumed_under_other_code_records_both_and_is_stale(tmp_path: Path, cifar10_dir: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Lost at iteration 6 under one commit (the checkpoint of 3 survives), resumed under another: result.json
    names both, its row is flagged even with one seed, and `rerun --stale` would retrain it."""
    from ghostsweep.orchestrator.cli.rerun import stale_trials
    from ghostsweep.orchestrator.submission.sweep import collect_states
    from ghostsweep.orchestrator.sweepdir.directory import SweepDir

    spec = SPEC.replace("[resnet8, ghost_resnet8]", "[resnet8]").replace("seeds: 2", "seeds: 1")
    (tmp_path / "spec.yaml").write_text(spec.replace("iterations: 6", "iterations: 9"))
    sweep = tmp_path / "sweep"
    ghostsweep("submit", tmp_path / "spec.yaml", "--out", sweep, code="c0ffee000001", data=cifar10_dir,
               exit_code=1, **{CRASH_ENV: "6"})
    ghostsweep("rerun", sweep, code="beef00000002-dirty", data=cifar10_dir)
    (result,) = [json.loads(path.read_text()) for path in sweep.glob("trials/*/result.json")]
    assert (result["code_version"], result["iterations"]) == ("c0ffee000001 then beef00000002-dirty", 9)
    report, markdown, _ = _report(sweep, cifar10_dir)
    assert report["rows"][0]["provenance"]["flag"] == "⚠ mixed code, dirty tree"
    assert "code c0ffee000001 then beef00000002-dirty;" in markdown
    monkeypatch.setenv(CODE_VERSION_ENV, "beef00000002")
    assert len(stale_trials(collect_states(SweepDir(sweep))[0])) == 1
