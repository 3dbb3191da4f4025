"""The report's files: report.json (everything, numeric: `model.Report.to_dict`), report.md, report.html and the
plots, written by `write_report`; `reusable_report` reads report.json back when its inputs are unchanged, without
analysing or drawing (this module imports neither numpy, scipy nor matplotlib).

report.json: `schema_version`, `title`, `generated_at`, `target_halfwidth_pp`, `multiplicity` (the adjustment and
the family size), `answer` (one sentence per comparison), `rows` (per report group: seeds and their `outcomes`
(planned, done, failed, diverged), `final_test_acc` / `best_val_test_acc` / `max_test_acc` summaries with CI,
half-width, prediction interval and seeds needed (`two_stage`: the CI is Stein's); params, MACs, compute hours;
each published number with its `judgement`: verdict, margin, raw and adjusted p), `comparisons` (treatment −
reference, paired by seed, Welch beside it, the `method` rule 5 chose, size ratios, the sources' claims judged,
each row's seed outcomes and `lost_note`), `ablations` (each published ablation curve with our rows along it,
and its baseline), `extensions` (seeds added by `ghostsweep extend`), `sources`, `wandb`, `trials` (per trial:
seed, accuracies, learning curve).
A report of a sweep directory also holds `inputs_sha256`, the digest of what it was made from: `report` on an
unchanged sweep reuses the files and prints report.json again.
"""

from __future__ import annotations

import json
from pathlib import Path

from ghostsweep.orchestrator.report.html_page import to_html
from ghostsweep.orchestrator.report.markdown import to_markdown
from ghostsweep.orchestrator.report.model import Report
from ghostsweep.orchestrator.report.plots import PLOTS, render_plots
from ghostsweep.trials.files import MAX_JSON_BYTES, read_bounded
from ghostsweep.trials.trialdir import atomic_write_bytes, atomic_write_text


def report_paths(out_dir: Path) -> dict[str, Path]:
    """The files `write_report` writes: json, md, html, and per plot NAME the SVG (`NAME-svg`) and the PNG
    (`NAME`, with `--wandb` only)."""
    paths = {"json": out_dir / "report.json", "md": out_dir / "report.md", "html": out_dir / "report.html"}
    for name in PLOTS:
        paths[name], paths[f"{name}-svg"] = out_dir / f"report-{name}.png", out_dir / f"report-{name}.svg"
    return paths


TRIALS_KEY = ',\n  "trials": ['  # where report.json's last key starts: written by `report_json`, cut at by
# `reusable_report`, which needs everything but the trials


def reusable_report(out_dir: Path, inputs: str) -> Report | None:
    """report.json in `out_dir`, but for its `trials` (what the terminal shows; `trials` is None), when it was made
    from these inputs (`build.inputs_sha256`), in this `model.SCHEMA_VERSION`, and every file but the PNGs is still
    there; else None (a missing, unreadable or older report is made again)."""
    paths = report_paths(out_dir)
    if not all(path.is_file() for key, path in paths.items() if key not in PLOTS):
        return None
    try:
        text = (read_bounded(paths["json"], MAX_JSON_BYTES) or b"").decode("utf-8")  # not through a link
        trials = text.rfind(TRIALS_KEY)  # the last key, at the top level (the only one indented by 2)
        data = json.loads(text if trials < 0 else text[:trials] + "\n}")
    except (ValueError, OSError):
        return None
    if not isinstance(data, dict) or data.get("inputs_sha256") != inputs:
        return None
    try:
        return Report.from_dict(data)
    except ValueError:  # another schema_version (an older report.json): made again
        return None


def report_json(report: Report) -> str:
    """report.json's text: indented, but each trial (with its learning curve) on one line, so that a sweep of 10⁴
    trials is a few megabytes, written in a fraction of a second; each row's provenance on one line too. Strict JSON
    (no NaN): a trial's non-finite number was refused when read."""
    head = report.to_dict()
    trials = head.pop("trials", None)  # last, as in the report
    one_line = {}  # each row's provenance on one line, like a trial: a placeholder, replaced after indenting
    for number, row in enumerate(head["rows"]):
        if row["provenance"] is not None:
            placeholder = f"\0provenance {number}\0"
            one_line[json.dumps(placeholder)] = json.dumps(row["provenance"], allow_nan=False)
            row["provenance"] = placeholder
    text = json.dumps(head, indent=2, allow_nan=False)
    for placeholder, value in one_line.items():
        text = text.replace(placeholder, value)
    if trials is None:
        return text + "\n"
    lines = ",\n".join(f"    {json.dumps(trial, allow_nan=False)}" for trial in trials)
    tail = f"\n{lines}\n  ]\n}}\n" if lines else "]\n}\n"
    return text.removesuffix("\n}") + TRIALS_KEY + tail


def write_report(report: Report, out_dir: Path, raster: bool = True) -> dict[str, Path]:
    """report.json, report.md, a self-contained report.html (plots inlined as SVG), and each plot as
    report-NAME.svg and, when `raster` (W&B shows PNGs), report-NAME.png: `paths[NAME-svg]` is the SVG and
    `paths[NAME]` the PNG, for every NAME in `PLOTS`. Without `raster` an earlier report's PNGs are removed, so
    that none is older than its SVG."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = render_plots(report, raster)
    paths = report_paths(out_dir)
    atomic_write_text(paths["json"], report_json(report))
    atomic_write_text(paths["md"], to_markdown(report))
    atomic_write_text(paths["html"], to_html(report, plots))
    for name, plot in plots.items():
        if plot.png is None:
            paths[name].unlink(missing_ok=True)
        else:
            atomic_write_bytes(paths[name], plot.png)
        atomic_write_text(paths[f"{name}-svg"], plot.svg)
    return paths
