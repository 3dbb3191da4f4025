"""`ghostsweep extend` and the spec's `report:` section, on synthetic sweeps with known accuracies.

The new trials run on the local backend with the fake trial of test_sweep_local.py, so nothing trains.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
from scipy.stats import t
from test_sweep_local import fake_env

from ghostsweep.orchestrator.cli import main
from ghostsweep.orchestrator.spec.sweepspec import load_spec
from ghostsweep.orchestrator.sweepdir.directory import EXTENSIONS_FILE, SweepDir, TrialEntry, describe_trials
from ghostsweep.trials.config import TrialConfig
from ghostsweep.trials.trialdir import CONFIG_FILE, Outcome, TrialResult, write_result

SPEC = """
name: precise
grids:
  - model: [resnet20, ghost_resnet20]
seeds: {seeds}
recipe: {{iterations: 10, milestones: [5], eval_interval: 5}}
resources: {{cpus_per_trial: 1}}
backend: {{name: local, options: {{max_parallel: 2}}}}
{report}
"""
# resnet20: std 0.5; ghost_resnet20: std 0.1 (within ±0.5 pp); ghost − resnet per seed 0.4, 0.0, −0.4: std 0.4
ACCURACIES = {"resnet20": [91.0, 91.5, 92.0], "ghost_resnet20": [91.4, 91.5, 91.6]}
TARGET = 0.5
GHOST = TrialConfig(model="ghost_resnet20").variant  # its row's label


def seeds_needed(std: float, target: float) -> int:
    """The fewest n whose t-interval half-width t(0.975, n − 1)·std/√n is at most `target` (scipy.stats)."""
    return next(n for n in range(2, 1000) if t.ppf(0.975, n - 1) * std / math.sqrt(n) <= target)


def make_sweep(tmp_path: Path, accuracies: dict[str, list[float]], seeds: int = 3,
               report: str = f"report: {{target_halfwidth_pp: {TARGET}}}") -> tuple[Path, SweepDir]:
    """A sweep directory as `submit` lays it out, its trials done with the given final test accuracies by seed."""
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(SPEC.format(seeds=seeds, report=report))
    sweep = SweepDir(tmp_path / "sweep")
    sweep.materialize(load_spec(spec_path))
    index = sweep.index()
    for trial_id in index.trial_ids:
        trial = index.trials[trial_id]
        values = accuracies[trial.model]
        if trial.seed < len(values):
            write_result(sweep.trial_dir(trial_id), TrialResult(
                status=Outcome.DONE, trial_id=trial_id, variant=trial.variant, model=trial.model,
                seed=trial.seed, final_test_acc=values[trial.seed]))
    return spec_path, sweep


def snapshot(sweep: SweepDir) -> dict[str, str]:
    return {str(p.relative_to(sweep.root)): p.read_text() for p in sorted(sweep.root.rglob("*")) if p.is_file()}


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def fake_trials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers the local backend starts run test_sweep_local's fake trial (final test accuracy 90 + seed + 1)."""
    for key in ("PYTHONPATH", "GHOSTSWEEP_TRIAL_RUNNER", "FAKE_TRIAL_S", "GHOSTSWEEP_DATA_DIR"):
        monkeypatch.setenv(key, fake_env()[key])


def rows_by_model(sweep: SweepDir) -> dict[str, list[tuple[str, TrialEntry]]]:
    index = sweep.index()
    rows: dict[str, list[tuple[str, TrialEntry]]] = {}
    for trial_id in index.trial_ids:
        rows.setdefault(index.trials[trial_id].model, []).append((trial_id, index.trials[trial_id]))
    return rows


def test_until_halfwidth_adds_the_seeds_the_spread_needs_and_pairs_comparisons(tmp_path, capsys, fake_trials):
    spec_path, sweep = make_sweep(tmp_path, ACCURACIES)
    assert sweep.index().target_halfwidth_pp == TARGET
    row_needs = seeds_needed(0.5, TARGET)  # resnet20's own spread
    pair_needs = seeds_needed(0.4, TARGET)  # ghost − resnet paired: ghost_resnet20 needs it, not its own 0.1
    assert (row_needs, pair_needs) == (7, 5)
    resnet_seeds, ghost_seeds = list(range(3, row_needs)), list(range(3, pair_needs))

    before = snapshot(sweep)
    code, out, err = run_cli(capsys, "extend", str(sweep.root), "--until-halfwidth", str(TARGET), "--dry-run")
    assert code == 0, err
    assert "+ seeds 3, 4, 5, 6: ±1.24 pp over 3 seeds needs 7 for ±0.5" in out
    assert f"+ seeds 3, 4: {GHOST} − resnet20: ±0.99 pp over 3 pairs needs 5 for ±0.5" in out
    assert "dry run: 6 trial(s) would be added" in out
    assert snapshot(sweep) == before

    old_ids = sweep.trial_ids()
    code, out, err = run_cli(capsys, "extend", str(sweep.root), "--until-halfwidth", str(TARGET))
    assert code == 0, out + err
    assert "submitting 6 trial(s) to local" in out

    (extension,) = json.loads((sweep.root / EXTENSIONS_FILE).read_text())
    assert (extension["mode"], extension["target_halfwidth_pp"], extension["max_seeds"]) == (
        "until-halfwidth", TARGET, 20)
    assert "n chosen to reach a precision" in extension["note"] and "never until significant" in extension["note"]
    rows = {row["label"]: row for row in extension["rows"]}
    assert rows["resnet20"]["added_seeds"] == resnet_seeds and rows["resnet20"]["seeds_needed"] == row_needs
    assert rows["resnet20"]["std"] == pytest.approx(0.5) and rows["resnet20"]["seeds_before"] == 3
    assert rows[GHOST]["added_seeds"] == ghost_seeds
    assert rows[GHOST]["std"] == pytest.approx(0.1) and rows[GHOST]["halfwidth"] < TARGET
    (comparison,) = extension["comparisons"]
    assert (comparison["seeds_needed"], comparison["pairs_wanted"], comparison["n_pairs"]) == (pair_needs, 5, 3)

    # The new trials: a row's config.json with the next seeds, in the row's report group, appended to sweep.json.
    index = sweep.index()
    new_ids = list(index.trial_ids[len(old_ids):])
    assert list(index.trial_ids[:len(old_ids)]) == old_ids and new_ids == extension["trial_ids"]
    for model, seeds in (("resnet20", resnet_seeds), ("ghost_resnet20", ghost_seeds)):
        members = rows_by_model(sweep)[model]
        first = members[0][1]
        added = [(i, e) for i, e in members if i in new_ids]
        assert [e.seed for _, e in added] == seeds
        for trial_id, entry in added:
            config = json.loads((sweep.trial_dir(trial_id) / CONFIG_FILE).read_text())
            trial = TrialConfig.from_dict({k: v for k, v in config.items() if k != "trial_id"})
            assert trial_id == config["trial_id"] == trial.trial_id() == TrialConfig(
                model=model, seed=entry.seed, recipe=trial.recipe).trial_id()
            assert entry == replace(first, seed=entry.seed)
            assert describe_trials([trial])[trial_id].group == first.group
            assert json.loads((sweep.trial_dir(trial_id) / "result.json").read_text())["status"] == "done"

    # Submitting the same spec again keeps the added seeds and runs nothing.
    code, out, err = run_cli(capsys, "submit", str(spec_path), "--out", str(sweep.root))
    assert code == 0, err
    assert "nothing to submit" in out and f"{len(old_ids) + 6} trials" in out
    assert sweep.index().trial_ids == (*old_ids, *new_ids)

    # The report: the spec's target, the seeds now done, and the extension.
    code, out, err = run_cli(capsys, "report", str(sweep.root))
    assert code == 0, err
    report = json.loads((sweep.root / "report.json").read_text())
    assert report["target_halfwidth_pp"] == TARGET
    assert report["extensions"] == [extension]
    assert {row["label"]: row["seeds_done"] for row in report["rows"]} == {"resnet20": 7, GHOST: 5}
    assert report["comparisons"][0]["n_pairs"] == 5
    assert extension["note"] in (sweep.root / "report.md").read_text()

    # A second extension is appended; with a wider target nothing more is needed.
    code, out, err = run_cli(capsys, "extend", str(sweep.root), "--until-halfwidth", "50")
    assert code == 0 and "nothing to add" in out, out + err
    assert len(json.loads((sweep.root / EXTENSIONS_FILE).read_text())) == 1


def test_seeds_takes_every_row_to_n_and_is_a_no_op_below(tmp_path, capsys, fake_trials):
    spec_path, sweep = make_sweep(tmp_path, ACCURACIES, seeds=2, report="")
    assert sweep.index().target_halfwidth_pp == 0.2  # references.DEFAULT_TARGET_HALFWIDTH_PP
    code, out, err = run_cli(capsys, "extend", str(sweep.root), "--seeds", "4")
    assert code == 0, out + err
    (extension,) = sweep.extensions()
    assert (extension["mode"], extension["seeds"], extension["target_halfwidth_pp"]) == ("seeds", 4, None)
    assert extension["note"].startswith("n set in advance: every row taken to 4 seeds")
    assert {row["label"]: row["added_seeds"] for row in extension["rows"]} == {
        "resnet20": [2, 3], GHOST: [2, 3]}
    assert sorted(e.seed for _, e in rows_by_model(sweep)["resnet20"]) == [0, 1, 2, 3]

    before = snapshot(sweep)
    code, out, err = run_cli(capsys, "extend", str(sweep.root), "--seeds", "3")
    assert code == 0 and "nothing to add" in out, out + err
    assert snapshot(sweep) == before

    code, out, err = run_cli(capsys, "report", str(sweep.root))
    assert code == 0, err
    report = json.loads((sweep.root / "report.json").read_text())
    assert report["target_halfwidth_pp"] == 0.2 and report["extensions"] == [extension]


def test_a_row_without_a_spread_is_first_taken_to_three_seeds(tmp_path, capsys):
    _, sweep = make_sweep(tmp_path, ACCURACIES, seeds=1)
    code, out, err = run_cli(capsys, "extend", str(sweep.root), "--until-halfwidth", "0.3", "--dry-run")
    assert code == 0, err
    assert out.count("+ seeds 1, 2: 1 seeds done, no spread yet: taken to 3 to estimate it") == 2, out
    assert "dry run: 4 trial(s) would be added" in out


def test_max_seeds_caps_the_need(tmp_path, capsys):
    _, sweep = make_sweep(tmp_path, ACCURACIES)
    code, out, err = run_cli(capsys, "extend", str(sweep.root), "--until-halfwidth", "0.05", "--max-seeds", "4",
                             "--dry-run")
    assert code == 0, err
    needed = seeds_needed(0.5, 0.05)
    assert f"+ seeds 3: ±1.24 pp over 3 seeds needs {needed} for ±0.05, capped at 4" in out


BAD_EXTENDS = {
    "not a sweep": (["--seeds", "3"], "is not a sweep directory"),
    "zero half-width": (["--until-halfwidth", "0"], "--until-halfwidth: must be a number of percentage points > 0"),
    "negative half-width": (["--until-halfwidth", "-1"], "--until-halfwidth"),
    "max-seeds with --seeds": (["--seeds", "5", "--max-seeds", "9"], "--max-seeds: only with --until-halfwidth"),
    "zero seeds": (["--seeds", "0"], "--seeds: must be in [1, 1000]"),
    "max-seeds too small": (["--until-halfwidth", "0.2", "--max-seeds", "2"], "--max-seeds: must be in [3, 1000]"),
}


@pytest.mark.parametrize("case", sorted(BAD_EXTENDS))
def test_bad_extend_is_one_line_and_writes_nothing(case, tmp_path, capsys):
    _, sweep = make_sweep(tmp_path, ACCURACIES)
    flags, message = BAD_EXTENDS[case]
    target = tmp_path if case == "not a sweep" else sweep.root
    before = snapshot(sweep)
    code, out, err = run_cli(capsys, "extend", str(target), *flags)
    assert code == 2 and err.startswith("ghostsweep: error: ") and err.count("\n") == 1, err
    assert message in err
    assert snapshot(sweep) == before


@pytest.mark.parametrize(("section", "message"), [
    ("report: {target_halfwidth_pp: 0}", "report.target_halfwidth_pp: must be a number of percentage points > 0"),
    ("report: {target_halfwidth_pp: tight}", "report.target_halfwidth_pp: must be a number, got 'tight'"),
    ("report: {target: 0.2}", "unknown key 'report.target'; valid: target_halfwidth_pp"),
    ("report: [0.2]", "report: must be a mapping"),
])
def test_bad_report_section_is_one_line_naming_the_key(section, message, tmp_path, capsys):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(SPEC.format(seeds=2, report=section))
    code, _, err = run_cli(capsys, "submit", str(spec_path), "--out", str(tmp_path / "sweep"))
    assert code == 2 and err.startswith("ghostsweep: error: ") and err.count("\n") == 1, err
    assert message in err
    assert not (tmp_path / "sweep").exists()
