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
from ghostsweep.orchestrator.report.build import build_report
from ghostsweep.orchestrator.report.records import records_from_sweep
from ghostsweep.orchestrator.spec.sweepspec import load_spec
from ghostsweep.orchestrator.submission.extend import apply_extension, plan_until_halfwidth, report_options
from ghostsweep.orchestrator.sweepdir.directory import EXTENSIONS_FILE, SweepDir, TrialEntry, describe_trials
from ghostsweep.trials.config import TrialConfig
from ghostsweep.trials.trialdir import CONFIG_FILE, Outcome, QueuedRecord, TrialResult, write_queued, write_result

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
# resnet20: std 0.3; ghost_resnet20: std 0.05 (within ±0.5 pp); ghost − resnet per seed 0.25, 0, −0.25: std 0.25
ACCURACIES = {"resnet20": [91.2, 91.5, 91.8], "ghost_resnet20": [91.45, 91.5, 91.55]}
TARGET = 0.5
GHOST = TrialConfig(model="ghost_resnet20").variant  # its row's label


def seeds_needed(std: float, target: float) -> int:
    """The fewest n whose t-interval half-width t(0.975, n − 1)·std/√n is at most `target` (scipy.stats)."""
    return next(n for n in range(2, 1000) if t.ppf(0.975, n - 1) * std / math.sqrt(n) <= target)


def stein_total(std: float, target: float, pilot: int = 3) -> int:
    """Stein's n: ⌈(t(0.975, n0 − 1)·s0/h)²⌉, at least the pilot's n0 (scipy.stats)."""
    return max(pilot, math.ceil((t.ppf(0.975, pilot - 1) * std / target) ** 2))


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
    row_needs = stein_total(0.3, TARGET)  # resnet20's own pilot spread, Stein's n with t(2)
    pair_needs = stein_total(0.25, TARGET)  # ghost − resnet paired: ghost_resnet20 needs it, not its own 0.05
    assert (row_needs, pair_needs) == (7, 5)
    assert seeds_needed(0.3, TARGET) == 4  # the old rule, fewer seeds and a 0.90-0.93 coverage (test_decisions)
    resnet_seeds, ghost_seeds = list(range(3, row_needs)), list(range(3, pair_needs))

    before = snapshot(sweep)
    code, out, err = run_cli(capsys, "extend", str(sweep.root), "--until-halfwidth", str(TARGET), "--dry-run")
    assert code == 0, err
    assert "+ seeds 3, 4, 5, 6: Stein's two-stage procedure (n and the interval's spread and df from the pilot " \
        "seeds): pilot of 3 seeds, std 0.30 pp, t(2) = 4.30: 7 seeds in all (for ±0.5 pp)" in out
    assert f"+ seeds 3, 4: {GHOST} − resnet20: paired Δ: Stein's two-stage procedure" in out
    assert "dry run: 6 trial(s) would be added" in out
    assert snapshot(sweep) == before

    old_ids = sweep.trial_ids()
    code, out, err = run_cli(capsys, "extend", str(sweep.root), "--until-halfwidth", str(TARGET))
    assert code == 0, out + err
    assert "submitting 6 trial(s) to local" in out

    (extension,) = json.loads((sweep.root / EXTENSIONS_FILE).read_text())
    assert (extension["mode"], extension["target_halfwidth_pp"], extension["max_seeds"]) == (
        "until-halfwidth", TARGET, 20)
    assert "n chosen to reach a precision by Stein's two-stage procedure" in extension["note"]
    assert "never until significant" in extension["note"]
    rows = {row["label"]: row for row in extension["rows"]}
    assert rows["resnet20"]["added_seeds"] == resnet_seeds and rows["resnet20"]["two_stage"]["total"] == row_needs
    assert rows["resnet20"]["std"] == pytest.approx(0.3) and rows["resnet20"]["seeds_before"] == 3
    assert rows[GHOST]["added_seeds"] == ghost_seeds and rows[GHOST]["two_stage"]["total"] == 3  # ±0.12 suffices
    assert rows[GHOST]["two_stage"]["pilot_std"] == pytest.approx(0.05)  # recorded all the same: it fixes the pilot
    assert rows[GHOST]["std"] == pytest.approx(0.05) and rows[GHOST]["halfwidth"] < TARGET
    (comparison,) = extension["comparisons"]
    assert (comparison["pairs_wanted"], comparison["n_pairs"]) == (pair_needs, 3)
    assert comparison["two_stage"]["pilot_std"] == pytest.approx(0.25)

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
    # resnet20's seeds were chosen by Stein's procedure: its CI is the mean of all 7 ± t(2)·s0/√7 (fake trials
    # give 90 + seed + 1 for the added seeds); the row's notes name the procedure.
    resnet = next(row for row in report["rows"] if row["label"] == "resnet20")
    finals = [*ACCURACIES["resnet20"], *(91.0 + seed for seed in resnet_seeds)]
    half = t.ppf(0.975, 2) * 0.3 / math.sqrt(7)
    assert resnet["final_test_acc"]["halfwidth"] == pytest.approx(half)
    assert resnet["final_test_acc"]["ci_low"] == pytest.approx(sum(finals) / 7 - half)
    assert any("Stein's two-stage procedure" in note for note in resnet["notes"])

    # A second extension is appended; with a wider target nothing more is needed.
    code, out, err = run_cli(capsys, "extend", str(sweep.root), "--until-halfwidth", "50")
    assert code == 0 and "nothing to add" in out, out + err
    assert len(json.loads((sweep.root / EXTENSIONS_FILE).read_text())) == 1


def test_seeds_takes_every_row_to_n_and_is_a_no_op_below(tmp_path, capsys, fake_trials):
    spec_path, sweep = make_sweep(tmp_path, ACCURACIES, seeds=2, report="")
    assert sweep.index().target_halfwidth_pp == 0.2  # references.DEFAULT_TARGET_HALFWIDTH_PP
    code, out, err = run_cli(capsys, "extend", str(sweep.root), "--seeds", "4")
    assert code == 0, out + err
    extension = sweep.extensions()[0].data
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
    assert out.count("+ seeds 1, 2: 1 seeds done: taken to 3, the pilot to plan from") == 2, out
    assert "dry run: 4 trial(s) would be added" in out


def test_max_seeds_caps_the_need(tmp_path, capsys):
    _, sweep = make_sweep(tmp_path, ACCURACIES)
    code, out, err = run_cli(capsys, "extend", str(sweep.root), "--until-halfwidth", "0.05", "--max-seeds", "4",
                             "--dry-run")
    assert code == 0, err
    assert stein_total(0.3, 0.05) > 4
    assert "+ seeds 3: Stein's two-stage procedure" in out and "4 seeds in all (capped at 4: ±" in out


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


def test_a_seed_lost_for_good_is_replaced_and_a_seed_that_failed_once_is_waited_for(tmp_path, capsys):
    """resnet20 seed 2 diverged (training is deterministic: a rerun diverges again) and ghost_resnet20 seed 2 failed
    twice: extend stops waiting for them and says so; a seed that failed once (a crashed node) is rerun instead."""
    _, sweep = make_sweep(tmp_path, {"resnet20": [91.2, 91.5], "ghost_resnet20": [91.45, 91.5]})
    rows = rows_by_model(sweep)
    (diverged, _), (twice, _) = rows["resnet20"][2], rows["ghost_resnet20"][2]
    write_result(sweep.trial_dir(diverged), TrialResult(status=Outcome.FAILED, trial_id=diverged,
                                                        reason="diverged at iteration 7"))
    write_queued(sweep.trial_dir(twice), QueuedRecord("local", "1", 0.0, attempt=2))
    write_result(sweep.trial_dir(twice), TrialResult(status=Outcome.FAILED, trial_id=twice, reason="out of memory"))
    code, out, err = run_cli(capsys, "extend", str(sweep.root), "--seeds", "3", "--dry-run")
    assert code == 0, err
    assert ("resnet20: 3 seeds (2 done), ±1.91 pp, std 0.21, 1 lost for good -> + seeds 3: every row taken to 3 "
            "seeds; not waiting for seed 2 (diverged at iteration 7): counted as lost, a new seed in its place") in out
    assert "not waiting for seed 2 (failed 2 times: out of memory)" in out
    write_result(sweep.trial_dir(diverged), TrialResult(status=Outcome.FAILED, trial_id=diverged, reason="node lost"))
    write_result(sweep.trial_dir(twice), TrialResult(status=Outcome.DONE, trial_id=twice, final_test_acc=91.55))
    code, out, err = run_cli(capsys, "extend", str(sweep.root), "--seeds", "3", "--dry-run")
    assert code == 0 and "nothing to add" in out, out + err  # seed 2 failed once: `rerun` it, not replace it


def test_a_later_until_halfwidth_keeps_the_first_pilot(tmp_path: Path) -> None:
    """Stein's pilot is fixed by a row's first plan: after stage 2 ran, a second `--until-halfwidth` (here for a
    tighter target) reuses the pilot's n0 and s0 and only tops n up, rather than taking the seeds done, whose number
    s0 chose, as a new pilot; the comparison's paired pilot likewise. The report's interval uses that pilot."""
    _, sweep = make_sweep(tmp_path, ACCURACIES)
    apply_extension(sweep, plan_until_halfwidth(sweep, TARGET))
    stage_two = {"resnet20": [90.0, 93.0, 90.5, 92.5], "ghost_resnet20": [92.4, 90.6]}  # a much wider spread
    index = sweep.index()
    for model, values in stage_two.items():
        for (trial_id, entry), value in zip(rows_by_model(sweep)[model][3:], values, strict=True):
            write_result(sweep.trial_dir(trial_id), TrialResult(
                status=Outcome.DONE, trial_id=trial_id, variant=entry.variant, model=model, seed=entry.seed,
                final_test_acc=value))
    assert len(index.trial_ids) == 12

    later = plan_until_halfwidth(sweep, 0.3)
    rows = {row.label: row for row in later.rows}
    for label, std in (("resnet20", 0.3), (GHOST, 0.05)):
        plan = rows[label].two_stage
        assert (plan["pilot_n"], plan["pilot_std"]) == (3, pytest.approx(std)), label
        assert plan["total"] == stein_total(std, 0.3)
    assert rows["resnet20"].added_seeds == list(range(7, stein_total(0.3, 0.3)))
    (comparison,) = later.comparisons
    assert (comparison.two_stage["pilot_n"], comparison.two_stage["pilot_std"]) == (3, pytest.approx(0.25))
    assert comparison.pairs_wanted == stein_total(0.25, 0.3)

    title, records, wandb = records_from_sweep(sweep.root)
    report = build_report(title, records, wandb, **report_options(sweep))
    resnet = next(row for row in report.rows if row.label == "resnet20")
    assert resnet.final_test_acc.n == 7
    assert resnet.final_test_acc.halfwidth == pytest.approx(t.ppf(0.975, 2) * 0.3 / math.sqrt(7))
