"""Report aggregation math, verdicts and missing seeds (the W&B paths: test_report_wandb.py)."""

from __future__ import annotations

import dataclasses
import html
import io
import json
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from scipy import stats

from ghostsweep.orchestrator.cli import main
from ghostsweep.orchestrator.report.analysis import RowInput, _pair, find_pairings, summarise
from ghostsweep.orchestrator.report.build import build_report
from ghostsweep.orchestrator.report.files import report_json, reusable_report, write_report
from ghostsweep.orchestrator.report.model import Report
from ghostsweep.orchestrator.report.plots import PLOTS, render_plots
from ghostsweep.orchestrator.report.records import TrialRecord, records_from_sweep
from ghostsweep.orchestrator.report.terminal import terminal_report
from ghostsweep.orchestrator.spec.sweepspec import load_spec
from ghostsweep.orchestrator.sweepdir.directory import SweepDir
from ghostsweep.trials.trialdir import METRICS_FILE, Outcome, TrialResult, atomic_write_lines, write_result


@pytest.mark.parametrize("values", [[93.1, 92.8, 93.4, 92.9, 93.3], [91.0, 92.5], [88.25, 90.0, 89.5]])
def test_summary_stats_match_numpy_and_scipy(values):
    got = summarise(dict(enumerate(values)), target=0.2)
    sample = np.array(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=sample.mean(), scale=stats.sem(sample))
    assert got.n == len(values)
    assert got.mean == pytest.approx(sample.mean(), abs=1e-12)
    assert got.std == pytest.approx(sample.std(ddof=1), abs=1e-12)
    assert (got.ci_low, got.ci_high) == (pytest.approx(low, abs=1e-9), pytest.approx(high, abs=1e-9))
    assert (got.min, got.max) == (sample.min(), sample.max())


def test_one_seed_has_no_interval_and_none_has_no_mean():
    assert summarise({0: 92.0}, 0.2).std is None and summarise({0: 92.0}, 0.2).ci_low is None
    assert summarise({}, 0.2).mean is None


def record(model: str, seed: int, acc: float | None, group: str = "g") -> TrialRecord:
    done = acc is not None
    result = TrialResult(status=Outcome.DONE, trial_id=f"{model}-s{seed}", final_test_acc=acc, best_val_test_acc=acc,
                         params=853018, macs=125485696, wall_time_s=3600.0, device="NVIDIA H200",
                         world_size=1) if done else None
    return TrialRecord(trial_id=f"{model}-s{seed}", group=group, label=model, variant=model, model=model,
                       first_layer=None, block_norm=None, seed=seed, iterations=64_000, done=done,
                       result=result, curve=[(32_000, 80.0 + seed), (64_000, 90.0 + seed)] if done else [])


def test_missing_seeds_are_marked_not_silently_averaged(tmp_path):
    report = build_report("t", [record("resnet56", 0, 93.1), record("resnet56", 1, 92.9),
                                record("resnet56", 2, None)])
    (row,) = report.rows
    assert (row.seeds_done, row.seeds_planned, row.missing_seeds) == (2, 3, [2])
    assert {ref.source for ref in row.references} == {"ghostnet", "he2016", "akamaster"}
    assert all(ref.verdict == "inconclusive" and ref.judgement.reason == "planned seed 2 not done yet"
               for ref in row.references)  # judged when every planned seed is done (or lost)
    assert report.family_size == 0
    assert row.gpu_hours == pytest.approx(2.0)
    paths = write_report(report, tmp_path)
    markdown = paths["md"].read_text()
    assert "2/3 (missing seeds 2)" in markdown and "He et al., Deep Residual Learning" in markdown
    assert markdown.count("He et al., Deep Residual Learning") == 1  # each source kept once
    assert json.loads(paths["json"].read_text())["rows"][0]["final_test_acc"]["n"] == 2


@pytest.mark.parametrize("seeds", [2, 3])
def test_the_differences_plot_draws_the_interval_the_rule_chose(tmp_path, seeds):
    """With 2 pairs rule 5 chooses Welch on all seeds: the plot must draw that interval, not the paired one it set
    aside (they differ), and from 3 pairs the paired one."""
    title, records, wandb = records_from_sweep(finished_sweep(tmp_path).root)
    report = build_report(title, [r for r in records if r.seed < seeds], wandb)
    (comparison,) = report.comparisons
    chosen, other = (comparison.welch, comparison.paired) if seeds == 2 else (comparison.paired, comparison.welch)
    assert comparison.interval == chosen and chosen != other
    svg = render_plots(report, raster=False)["differences"].svg
    assert f"[{chosen.low:+.2f}, {chosen.high:+.2f}]" in svg and f"[{other.low:+.2f}, {other.high:+.2f}]" not in svg
    welch, paired = "our Δ, Welch (95% CI)", "our Δ, paired by seed (95% CI)"
    assert (welch in svg, paired in svg) == ((True, False) if seeds == 2 else (False, True))


SPEC = """
name: looks
grids:
  - model: [resnet56, ghost_resnet56]
seeds: 3
recipe: {iterations: 30, milestones: [20], eval_interval: 10}
backend: {name: local}
"""
ACCURACY = {"resnet56": (92.9, 93.3, 93.0), "ghost_resnet56": (92.6, 92.9, 92.5)}
SIZE = {"resnet56": (853_018, 125_485_696), "ghost_resnet56": (438_000, 65_300_000)}


def finished_sweep(tmp_path: Path) -> SweepDir:
    """A sweep directory as `submit` lays it out, every trial done with a known accuracy and a learning curve."""
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(SPEC)
    sweep = SweepDir(tmp_path / "sweep")
    sweep.materialize(load_spec(spec_path))
    index = sweep.index()
    for trial_id in index.trial_ids:
        trial = index.trials[trial_id]
        final = ACCURACY[trial.model][trial.seed]
        params, macs = SIZE[trial.model]
        atomic_write_lines(sweep.trial_dir(trial_id) / METRICS_FILE,
                           [{"iteration": i, "val_acc": final - 30 / i} for i in (10, 20, 30)])
        write_result(sweep.trial_dir(trial_id), TrialResult(
            status=Outcome.DONE, trial_id=trial_id, variant=trial.variant, model=trial.model,
            seed=trial.seed, final_test_acc=final, best_val_test_acc=final, max_test_acc=final + 0.1,
            params=params, macs=macs, wall_time_s=60.0, device="cpu", world_size=1))
    return sweep


AXIS_LABELS = ("parameters (millions)", "multiply–accumulates per image (millions)", "CIFAR-10 test accuracy (%)",
               "Δ CIFAR-10 test accuracy (pp) = treatment − reference", "training iteration (thousands)",
               "validation accuracy (%)")


def test_html_opens_with_the_answer_and_inlines_every_plot_as_svg_text(tmp_path):
    report = build_report(*records_from_sweep(finished_sweep(tmp_path).root))
    paths = write_report(report, tmp_path / "out")
    page = paths["html"].read_text()
    assert page.index("The answer") < page.index("<svg") and report.answer[0].split(":")[0] in page
    assert page.count("<svg") == len(PLOTS) and all(f'<figure id="{name}">' in page for name in PLOTS)
    assert not re.search(r"""<(?:img|script|link|iframe)\b|\bsrc=|(?:href=|url\()["']?https?:""", page)  # no assets
    for label in AXIS_LABELS:  # text stays text (svg.fonttype none), so labels are readable and searchable
        assert f">{html.escape(label)}" in page, label
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))  # several inline SVGs never share an id
    assert "ghostnet" in page and "published Δ" in page  # the paper's claim is marked in the forest plot
    for name in PLOTS:  # W&B logs the PNGs; the SVGs are the vector copies
        assert paths[name].read_bytes().startswith(b"\x89PNG")
        assert paths[f"{name}-svg"].read_text().startswith("<svg")
    assert "\n| variant | seeds done / planned |" in paths["md"].read_text()  # report.md stays Markdown


def test_report_prints_tables_not_markdown(tmp_path, capsys):
    sweep = finished_sweep(tmp_path)
    (sweep.root / "report-differences.png").write_bytes(b"an earlier report --wandb's")
    assert main(["report", str(sweep.root)]) == 0
    assert not list(sweep.root.glob("*.png"))  # PNGs only for W&B (`--wandb`); none older than its SVG is left
    assert len(list(sweep.root.glob("report-*.svg"))) == len(PLOTS)
    out = capsys.readouterr().out
    assert out.index("The answer") < out.index("Rows") < out.index("Published numbers") < out.index("Comparisons")
    assert "ghost_resnet56-conv-keep − resnet56: " in out
    assert "| variant |" not in out and not any(line.startswith("|") for line in out.splitlines())
    assert "ours − paper" in out and "Δ = treatment − reference" in out  # what minus what, in the headers
    assert re.search(r"^ resnet56 +3/3 +93\.07 ± 0\.21", out, re.MULTILINE), out
    assert f"wrote {sweep.root / 'report.html'}" in out


def test_partial_and_empty_reports_render(tmp_path):
    one_seed = build_report("t", [record("resnet56", 0, 93.1), record("ghost_resnet56", 0, None, group="h")])
    nothing = build_report("t", [record("resnet56", 0, None)])
    for i, report in enumerate((one_seed, nothing)):
        paths = write_report(report, tmp_path / str(i))
        page = paths["html"].read_text()
        assert page.count("<svg") == len(PLOTS) and "No comparison yet" in page
        assert "differences: no two rows differ in one factor yet" in page
        assert all(paths[name].exists() for name in PLOTS)
        console = Console(width=160, record=True, file=io.StringIO())
        console.print(terminal_report(report))
        assert "Rows" in console.export_text()
    assert "learning curves: no evaluation recorded yet" in (tmp_path / "1" / "report.html").read_text()


def test_pairings_are_every_pair_that_differs_in_one_factor():
    """find_pairings tries only candidate pairs (so 500 rows are not 125,000 comparisons); it must find exactly
    the pairs that trying every pair finds, in the same order, over rows differing in model, options, recipe,
    runtime and missing keys."""
    rng = random.Random(13)
    defaults = {"model": "", "recipe.lr": 0.1, "recipe.iterations": 200, "runtime.compile": "off",
                "runtime.precision": "fp32", "model_options.first_layer": "conv", "model_options.ratio": 2}
    baseline_of = {"ghost_resnet20": "resnet20", "ghost_resnet56": "resnet56"}.get
    found = 0
    for _ in range(150):
        rows, seen = [], set()
        for _ in range(rng.randint(2, 24)):
            model = rng.choice(["resnet20", "ghost_resnet20", "resnet56", "ghost_resnet56"])
            settings = {"model": model, "recipe.lr": rng.choice([0.1, 0.05, 0.2]),
                        "recipe.iterations": rng.choice([100, 200]), "runtime.compile": rng.choice(["off", "default"]),
                        "runtime.precision": rng.choice(["fp32", "bf16"]),
                        "model_options.first_layer": rng.choice(["conv", "ghost"]),
                        "model_options.ratio": rng.choice([2, 3])}
            if rng.random() < 0.2:
                del settings["recipe.iterations"]
            if json.dumps(settings, sort_keys=True) in seen:
                continue
            seen.add(json.dumps(settings, sort_keys=True))
            rows.append(RowInput(group=str(len(rows)), label="", variant=model, model=model, settings=settings,
                                 defaults=defaults | {"model": model}, seeds_planned=[], values={}))
        every_pair = [_pair(a, b, baseline_of) or _pair(b, a, baseline_of)
                      for i, a in enumerate(rows) for b in rows[i + 1:]]
        expected = [(p.treatment.group, p.reference.group, p.factor, p.differing) for p in every_pair if p]
        assert [(p.treatment.group, p.reference.group, p.factor, p.differing)
                for p in find_pairings(rows, baseline_of)] == expected
        found += len(expected)
    assert found > 300  # the rows do pair, in every factor


REPORT_AND_IMPORTS = """
import sys
from ghostsweep.orchestrator.cli import main
assert main(["report", sys.argv[1]]) == 0
print("imported:", [name for name in ("scipy", "matplotlib", "numpy") if name in sys.modules])
"""


def report_in_a_process(sweep: SweepDir) -> str:
    """`ghostsweep report` in a fresh interpreter (this one has scipy and matplotlib imported), and what it imported."""
    return subprocess.run([sys.executable, "-P", "-c", REPORT_AND_IMPORTS, str(sweep.root)], capture_output=True,
                          text=True, check=True).stdout


def test_an_unchanged_sweep_keeps_its_report_and_a_changed_one_gets_a_new_one(tmp_path):
    sweep = finished_sweep(tmp_path)
    first = report_in_a_process(sweep)
    written = (sweep.root / "report.json").read_bytes()
    assert "\nwrote " in first and "imported: ['scipy', 'matplotlib', 'numpy']" in first
    again = report_in_a_process(sweep)
    assert "\nkept (its inputs are unchanged) " in again and "imported: []" in again  # no analysis, no drawing
    assert again.split("\nkept ")[0] == first.split("\nwrote ")[0]  # the same terminal report
    assert (sweep.root / "report.json").read_bytes() == written
    trial_id = sweep.trial_ids()[0]
    write_result(sweep.trial_dir(trial_id), TrialResult(status=Outcome.DONE, trial_id=trial_id, final_test_acc=91.0))
    assert "\nwrote " in report_in_a_process(sweep)  # a changed result
    assert json.loads((sweep.root / "report.json").read_text())["trials"][0]["final_test_acc"] == 91.0
    assert "\nkept " in report_in_a_process(sweep)
    (sweep.root / "report-differences.svg").unlink()
    assert "\nwrote " in report_in_a_process(sweep)  # a file gone
    assert (sweep.root / "report-differences.svg").is_file()


def test_the_terminal_shows_the_first_rows_and_says_how_many_more(tmp_path, capsys):
    sweep = finished_sweep(tmp_path)
    assert main(["report", str(sweep.root), "--rows", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("… and 1 more in report.md and report.html") == 2  # the rows and the published numbers
    assert "ghost_resnet56-conv-keep − resnet56: " in out  # the one comparison: its answer is the first entry
    assert main(["report", str(sweep.root), "--rows", "0"]) == 0
    assert "… and" not in capsys.readouterr().out
    assert main(["report", str(sweep.root), "--rows", "-1"]) == 2
    assert capsys.readouterr().err == "ghostsweep: error: --rows: must be >= 0 (0: all), got -1\n"


def test_report_json_keeps_one_trial_a_line(tmp_path):
    report = build_report(*records_from_sweep(finished_sweep(tmp_path).root))
    text = report_json(report)
    assert json.loads(text) == json.loads(json.dumps(report.to_dict()))
    lines = text.splitlines()
    start = lines.index('  "trials": [')
    assert [json.loads(line.strip().rstrip(",")) for line in lines[start + 1:-2]] == json.loads(json.dumps(
        [trial.to_dict() for trial in report.trials]))
    assert report_json(dataclasses.replace(report, trials=[])).endswith('"trials": []\n}\n')


def test_report_json_reads_back_to_the_same_bytes(tmp_path):
    """report.json is `Report.to_dict`: read back with `from_dict`, it is written again byte for byte (a reused
    report prints what the built one did)."""
    ablation = [record("vgg16", seed, 93.5 + seed / 10, group="vgg16") for seed in range(2)]
    for ratio in (2, 3, 4):  # along GhostNet's ratio curve: ablation points, a baseline, the model comparison
        for seed in range(2):
            ablation.append(record("ghost_vgg16", seed, 93.0 + ratio / 10 + seed / 10, group=f"s{ratio}"))
            ablation[-1].settings = {"model_options.ratio": ratio}
    reports = [build_report(*records_from_sweep(finished_sweep(tmp_path).root), inputs_sha256="abc"),
               build_report("t", [record("resnet56", 0, 93.1), record("ghost_resnet56", 0, None, group="h")]),
               build_report("t", ablation)]
    assert reports[2].ablations and reports[2].comparisons
    for report in reports:
        text = report_json(report)
        again = Report.from_dict(json.loads(text))
        assert again == report and report_json(again) == text


def test_a_report_json_of_an_older_schema_is_made_again(tmp_path):
    """report.json before schema 2 (no `schema_version`, verdicts as strings) with matching inputs: `report` makes
    it again instead of reading it back."""
    sweep = finished_sweep(tmp_path)
    assert main(["report", str(sweep.root)]) == 0
    path = sweep.root / "report.json"
    data = json.loads(path.read_text())
    assert data["schema_version"] == 2
    old = {key: value for key, value in data.items() if key not in ("schema_version", "multiplicity")}
    for row in old["rows"]:
        for ref in row["references"]:
            ref |= {"verdict": "consistent: inside our 95% prediction interval for one run", "consistent": True}
            del ref["judgement"]
    path.write_text(json.dumps(old, indent=2))
    assert reusable_report(sweep.root, data["inputs_sha256"]) is None
    assert main(["report", str(sweep.root)]) == 0
    assert json.loads(path.read_text())["schema_version"] == 2
