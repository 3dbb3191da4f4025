"""The reproduction report: read a finished (or unfinished) sweep, conclude, and write it down.

Reading: one `TrialRecord` per trial, from a sweep directory (`records_from_sweep`) or from W&B runs
(`report_wandb.records_from_wandb`). Concluding: `orchestrator/report/analysis.py` (statistics in `stats.py`).
Writing: report.json (everything, numeric), report.md, report.html, and the terminal table.

report.json: `title`, `generated_at`, `target_halfwidth_pp`, `answer` (one sentence per comparison),
`rows` (per report group: seeds, `final_test_acc` / `best_val_test_acc` / `max_test_acc` summaries with CI,
half-width, prediction interval and seeds needed; params, MACs, compute hours; each published number judged by
its kind), `comparisons` (treatment − reference, paired by seed, Welch beside it, size ratios, the sources'
claims), `ablations` (each published ablation curve with our rows along it, and its baseline), `extensions`
(seeds added by `ghostsweep extend`), `sources`, `wandb`, `trials` (per trial: seed, accuracies, learning curve).
A report of a sweep directory also holds `inputs_sha256`, the digest of what it was made from: `report` on an
unchanged sweep reuses the files and prints report.json again (`reusable_report`).
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import textwrap
import time
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from ghostsweep.model.registry import model_info
from ghostsweep.orchestrator import report as report_package
from ghostsweep.orchestrator.report.analysis import DEFAULT_TARGET_HALFWIDTH_PP, Metric, RowInput, analyse
from ghostsweep.orchestrator.report.plots import PLOTS, Plot, render_plots
from ghostsweep.orchestrator.report.references import CONTEXT, REFERENCES
from ghostsweep.orchestrator.sweepdir.cache import TrialRead, read_trials
from ghostsweep.orchestrator.sweepdir.directory import SweepDir, trial_settings
from ghostsweep.trials.config import TrialConfig
from ghostsweep.trials.files import source_digest
from ghostsweep.trials.trialdir import (
    TrialResult,
    TrialStatus,
    atomic_write_text,
)


@dataclass
class TrialRecord:
    """One trial as the report sees it, whether read from a sweep directory or from W&B."""

    trial_id: str
    group: str
    label: str
    variant: str
    model: str
    first_layer: str | None
    block_norm: str | None
    seed: int
    iterations: int
    done: bool
    result: TrialResult | None = None  # None before the trial (or its W&B run) has ended
    curve: list[tuple[int, float]] = field(default_factory=list)  # (iteration, val_acc)
    settings: dict[str, Any] = field(default_factory=dict)  # sweepdir.trial_settings: what rows are compared by


def records_from_sweep(sweep_dir: Path | SweepDir, reads: list[TrialRead] | None = None,
                       ) -> tuple[str, list[TrialRecord], dict[str, Any]]:
    """Title, records in plan order and W&B settings, from the files of a sweep directory: its `read_trials`
    with curves (settled trials through the read cache), or `reads` when the caller has them."""
    sweep = sweep_dir if isinstance(sweep_dir, SweepDir) else SweepDir(sweep_dir)
    index = sweep.index()
    records = []
    for trial_id, read in zip(index.trial_ids, reads or read_trials(sweep, curves=True), strict=True):
        trial, state = index.trials[trial_id], read.state
        records.append(TrialRecord(
            trial_id=trial_id, group=trial.group, label=trial.label, variant=trial.variant,
            model=trial.model, first_layer=trial.first_layer, block_norm=trial.block_norm,
            seed=trial.seed, iterations=trial.iterations, done=state.state == TrialStatus.DONE,
            result=state.result, curve=read.curve, settings=trial.settings,
        ))
    return index.name, records, index.wandb


@cache
def _defaults(model: str) -> dict[str, Any]:
    """Every setting at its default for this model: which of two compared rows is the reference."""
    return trial_settings(TrialConfig(model=model))


def _baseline_of(model: str) -> str | None:
    return model_info(model).baseline


def _row_input(members: list[TrialRecord]) -> RowInput:
    first = members[0]
    done = [m for m in members if m.done and m.result is not None and m.result.final_test_acc is not None]
    values: dict[Metric, dict[int, float]] = {metric: {} for metric in Metric}
    hours = {"GPU": 0.0, "CPU": 0.0}
    for member in done:
        result = member.result
        for metric in Metric:
            value = getattr(result, metric.value)
            if value is not None:
                values[metric][member.seed] = value
        kind = "CPU" if (result.device or "cpu") == "cpu" else "GPU"
        hours[kind] += (result.wall_time_s or 0.0) * (result.world_size or 1) / 3600
    return RowInput(
        group=first.group, label=first.label, variant=first.variant, model=first.model,
        settings=first.settings, defaults=_defaults(first.model), seeds_planned=[m.seed for m in members],
        values=values, params=next((m.result.params for m in done if m.result.params), None),
        macs=next((m.result.macs for m in done if m.result.macs), None), gpu_hours=hours["GPU"],
        cpu_hours=hours["CPU"], iterations=first.iterations,
    )


def build_report(
    title: str, records: list[TrialRecord], wandb: dict[str, Any] | None = None,
    target_halfwidth_pp: float = DEFAULT_TARGET_HALFWIDTH_PP, extensions: list[dict[str, Any]] | None = None,
    inputs_sha256: str | None = None,
) -> dict[str, Any]:
    """Everything the report shows, as plain data (this is report.json); `inputs_sha256` is recorded when given."""
    groups: dict[str, list[TrialRecord]] = {}
    for record in records:
        groups.setdefault(record.group, []).append(record)
    conclusions = analyse([_row_input(members) for members in groups.values()], _baseline_of, target_halfwidth_pp)
    for row in conclusions["rows"]:  # the plots group rows by family and Ghost options
        member = groups[row["group"]][0]
        row |= {"family": model_info(member.model).family, "first_layer": member.first_layer,
                "block_norm": member.block_norm}
    used = {ref["source"] for row in conclusions["rows"] for ref in row["references"]}
    sources = {ref.source.key: asdict(ref.source) for ref in REFERENCES if ref.source.key in used}
    return {
        "title": title, "generated_at": time.time(), **({"inputs_sha256": inputs_sha256} if inputs_sha256 else {}),
        **conclusions, "extensions": extensions or [],
        "sources": sources, "wandb": wandb or {},
        "trials": [{"trial_id": r.trial_id, "group": r.group, "seed": r.seed, "done": r.done,
                    **{m.value: None if r.result is None else getattr(r.result, m.value) for m in Metric},
                    "curve": r.curve}
                   for r in records],
    }


def inputs_sha256(sweep: SweepDir, reads: list[TrialRead], options: dict[str, Any]) -> str:
    """What a sweep's report is made from, digested: sweep.json (title, W&B settings, each trial's row and
    settings), `build_report`'s options, each trial's read (its `digest`: a remembered trial's is in the read
    cache, so an unchanged sweep is checked without building its records), and the code that turns them into a
    report. Equal digests make the same report (but for `generated_at`)."""
    digest = hashlib.sha256(sweep.index_path.read_bytes())
    digest.update(source_digest(report_package).encode())  # the code that makes a report: this package
    digest.update(json.dumps([options, [read.digest for read in reads]], separators=(",", ":")).encode())
    return digest.hexdigest()


def report_paths(out_dir: Path) -> dict[str, Path]:
    """The files `write_report` writes: json, md, html, and per plot NAME the SVG (`NAME-svg`) and the PNG
    (`NAME`, with `--wandb` only)."""
    paths = {"json": out_dir / "report.json", "md": out_dir / "report.md", "html": out_dir / "report.html"}
    for name in PLOTS:
        paths[name], paths[f"{name}-svg"] = out_dir / f"report-{name}.png", out_dir / f"report-{name}.svg"
    return paths


TRIALS_KEY = ',\n  "trials": ['  # where report.json's last key starts: written by `report_json`, cut at by
# `reusable_report`, which needs everything but the trials


def reusable_report(out_dir: Path, inputs: str) -> dict[str, Any] | None:
    """report.json in `out_dir`, but for its `trials` (what the terminal shows), when it was made from these
    inputs (`inputs_sha256`) and every file but the PNGs is still there; else None (a missing, unreadable or
    older report is made again)."""
    paths = report_paths(out_dir)
    if not all(path.is_file() for key, path in paths.items() if key not in PLOTS):
        return None
    try:
        text = paths["json"].read_text(encoding="utf-8")
        trials = text.rfind(TRIALS_KEY)  # the last key, at the top level (the only one indented by 2)
        report = json.loads(text if trials < 0 else text[:trials] + "\n}")
    except (ValueError, OSError):
        return None
    return report if isinstance(report, dict) and report.get("inputs_sha256") == inputs else None



def report_json(report: dict[str, Any]) -> str:
    """report.json's text: indented, but each trial (with its learning curve) on one line, so that a sweep of 10⁴
    trials is a few megabytes, written in a fraction of a second."""
    head = {key: value for key, value in report.items() if key != "trials"}
    if "trials" not in report:
        return json.dumps(head, indent=2) + "\n"
    trials = ",\n".join(f"    {json.dumps(trial)}" for trial in report["trials"])  # "trials" last, as in the report
    tail = f"\n{trials}\n  ]\n}}\n" if trials else "]\n}\n"
    return json.dumps(head, indent=2).removesuffix("\n}") + TRIALS_KEY + tail


def write_report(report: dict[str, Any], out_dir: Path, raster: bool = True) -> dict[str, Path]:
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
            paths[name].write_bytes(plot.png)
        atomic_write_text(paths[f"{name}-svg"], plot.svg)
    return paths


def _pct(stats: dict[str, Any]) -> str:
    if stats["mean"] is None:
        return "—"
    if stats["std"] is None:
        return f"{stats['mean']:.2f} (n=1)"
    return f"{stats['mean']:.2f} ± {stats['std']:.2f} [{stats['ci_low']:.2f}, {stats['ci_high']:.2f}]"


def _range(stats: dict[str, Any]) -> str:
    return "—" if stats["min"] is None else f"{stats['min']:.2f}–{stats['max']:.2f}"


def _millions(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value / 1e6:.{digits}f}M"


def _hours(row: dict[str, Any]) -> str:
    parts = [f"{row[f'{kind.lower()}_hours']:.2f} {kind}-h" for kind in ("GPU", "CPU")
             if row[f"{kind.lower()}_hours"]]
    return ", ".join(parts) or "—"


def _seeds(row: dict[str, Any]) -> str:
    text = f"{row['seeds_done']}/{row['seeds_planned']}"
    missing = ", ".join(map(str, row["missing_seeds"]))
    return f"{text} (missing seeds {missing})" if missing else text


def _precision(stats: dict[str, Any]) -> str:
    if stats["halfwidth"] is None:
        return "—"
    needed = "more than 1000" if stats["seeds_needed"] is None else str(stats["seeds_needed"])
    return f"±{stats['halfwidth']:.2f} (needs {needed})"


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.2f}"


@dataclass(frozen=True)
class Table:
    """One table of the report, rendered alike as Markdown, HTML and rich."""

    title: str
    intro: str
    columns: tuple[str, ...]
    rows: list[list[str]]
    grouped: bool = False  # consecutive rows with the same first cell belong to one row of the report
    terminal: tuple[int, ...] | None = None  # the columns the terminal shows (None: all), so that ~150 columns hold it
    per_row: bool = False  # one entry per line (or group): the terminal shows the first `--rows` entries


TABLE_COLUMNS = (
    "variant", "seeds done / planned", "final test % mean ± std [95% CI]", "CI half-width (seeds for target)",
    "best-val test % mean ± std [95% CI]", "final min–max", "params", "MACs", "compute",
)


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    """Our numbers per row."""
    return [[
        row["label"], _seeds(row), _pct(row["final_test_acc"]), _precision(row["final_test_acc"]),
        _pct(row["best_val_test_acc"]), _range(row["final_test_acc"]), _millions(row["params"], 3),
        _millions(row["macs"], 1), _hours(row),
    ] for row in report["rows"]]


METRIC_NAMES = {Metric.FINAL: "final", Metric.BEST_VAL: "best-val", Metric.MAX_OVER_EVALS: "max over evals"}
PUBLISHED_COLUMNS = (
    "variant", "source", "published test %", "what the number is", "ours test % (which)", "ours − paper (pp)",
    "verdict (by the method the kind calls for)",
)


def published_rows(report: dict[str, Any]) -> list[list[str]]:
    """Each published number beside ours, one line per row and source."""
    return [[
        row["label"], ref["source"],
        f"{ref['test_acc']:.2f}" + ("" if ref["test_acc_std"] is None else f" ± {ref['test_acc_std']:.2f}"),
        ref["kind"] + (f", n={ref['runs']}" if ref["runs"] else ""),
        "—" if ref["ours_mean"] is None else f"{ref['ours_mean']:.2f} ({METRIC_NAMES[Metric(ref['metric'])]})",
        _signed(ref["ours_minus_paper"]), ref["verdict"],
    ] for row in report["rows"] for ref in row["references"]]


def _interval(interval: dict[str, Any] | None) -> str:
    if interval is None:
        return "—"
    p = "" if interval.get("p_value") is None else f", p={interval['p_value']:.3g}"
    return f"{interval['estimate']:+.2f} [{interval['low']:+.2f}, {interval['high']:+.2f}]{p}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


COMPARISON_COLUMNS = (
    "Δ = treatment − reference", "seed pairs", "paired Δ pp [95% CI], p", "Welch Δ pp [95% CI], p",
    "seeds for target", "params (treatment ÷ reference)", "MACs (treatment ÷ reference)",
    "published Δ pp (source)", "verdict on the published Δ",
)


def comparison_rows(report: dict[str, Any]) -> list[list[str]]:
    return [[
        c["difference"], str(c["n_pairs"]), _interval(c["paired"]), _interval(c["welch"]),
        "—" if c["seeds_needed"] is None else str(c["seeds_needed"]), _ratio(c["params_ratio"]),
        _ratio(c["macs_ratio"]), "; ".join(f"{claim['delta']:+.2f} ({claim['source']})" for claim in c["claims"])
        or "—", "; ".join(claim["verdict"] for claim in c["claims"]) or "—",
    ] for c in report["comparisons"]]


def report_tables(report: dict[str, Any]) -> list[Table]:
    """The rows, the published numbers beside them, and the comparisons (the last two when there are any)."""
    tables = [Table(
        "Rows", "CIFAR-10 test accuracy (%): mean ± sample std [95% t-interval of the mean] over the seeds that "
        f"are done; the seeds the observed spread needs for a ±{report['target_halfwidth_pp']:g} pp interval (the "
        "target).", TABLE_COLUMNS, table_rows(report), terminal=(0, 1, 2, 3, 4, 6, 7, 8), per_row=True)]
    if published := published_rows(report):
        tables.append(Table(
            "Published numbers", "Each published number is judged by the method its kind calls for (named in the "
            "verdict); ours − paper uses the accuracy that method compares (final, or the max over evaluations for "
            "a number selected on the test set).", PUBLISHED_COLUMNS, published, grouped=True, per_row=True))
    if report["comparisons"]:
        tables.append(Table(
            "Comparisons", "Δ = treatment − reference, in percentage points of CIFAR-10 test accuracy, paired by "
            "seed (the same seed gives both rows the same batches); Welch's unpaired interval beside it. A "
            "published Δ (two single runs) is judged against the 95% prediction interval for one unpaired pair of "
            "runs.", COMPARISON_COLUMNS, comparison_rows(report), terminal=(0, 1, 2, 4, 5, 6, 7, 8), per_row=True))
    tables += [ablation_table(ablation) for ablation in report.get("ablations", [])]
    if context := context_rows(report):
        tables.append(Table(
            "Context: the pruning baselines of the published table", "Published numbers of pruned networks we do "
            "not train, beside our row of the network each compresses; not judged.", CONTEXT_COLUMNS, context))
    return tables


ABLATION_SYMBOLS = {"ratio": "s", "cheap_kernel": "d"}  # the papers' letters for the Ghost module's options


def ablation_table(ablation: dict[str, Any]) -> Table:
    """A published ablation curve beside ours: the baseline first, then one line per option value."""
    symbol = ABLATION_SYMBOLS.get(ablation["option"], ablation["option"])
    rows = []
    if baseline := ablation["baseline"]:
        rows.append([f"{baseline['model']} (no Ghost)", baseline["label"] or "not in this sweep", str(baseline["n"]),
                     _pct(baseline), _millions(baseline["params"], 2), _millions(baseline["macs"], 1),
                     "—" if baseline["paper_test_acc"] is None else f"{baseline['paper_test_acc']:.1f}",
                     _millions(baseline["paper_params"], 1), _millions(baseline["paper_macs"], 0), "—", "—"])
    for point in ablation["points"]:
        paper = point["paper_test_acc"]
        rows.append([
            f"{symbol}={point['value']}", point["label"] or "not in this sweep", str(point["n"]), _pct(point),
            _millions(point["params"], 2), _millions(point["macs"], 1), "—" if paper is None else f"{paper:.1f}",
            _millions(point["paper_params"], 1), _millions(point["paper_macs"], 0),
            _signed(point["ours_minus_paper"]), point["verdict"] or "—",
        ])
    return Table(
        f"Ablation: {symbol} on {ablation['model']}", f"{ablation['source']} {ablation['where']}: our final test "
        "accuracy (mean ± std [95% CI]) at each value beside the published one, judged as in the published-numbers "
        "table; the baseline first. The plot 'ablations' draws the same.", ABLATION_COLUMNS, rows,
        terminal=(0, 2, 3, 4, 5, 6, 9, 10))


ABLATION_COLUMNS = (
    "value", "row", "seeds", "final test % mean ± std [95% CI]", "params", "MACs", "published test %",
    "published params", "published MACs", "ours − paper (pp)", "verdict",
)
CONTEXT_COLUMNS = ("method", "compresses", "published params", "published MACs", "published test %",
                   "ours: the uncompressed network, final test %")


def context_rows(report: dict[str, Any]) -> list[list[str]]:
    """The published pruning baselines of every model the report has a row of."""
    first_row = {}
    for row in report["rows"]:
        first_row.setdefault(row["model"], row)
    return [[ref.method, ref.base_model, _millions(ref.params, 2), _millions(ref.macs, 0), f"{ref.test_acc:.1f}",
             f"{first_row[ref.base_model]['label']}: {_pct(first_row[ref.base_model]['final_test_acc'])}"]
            for ref in CONTEXT if ref.base_model in first_row]


def _notes(report: dict[str, Any]) -> list[str]:
    notes = [f"{row['label']}: {note}" for row in report["rows"] for note in row["notes"]]
    return notes + [f"{row['label']}, {ref['source']}: {note}" for row in report["rows"]
                    for ref in row["references"] for note in ref["notes"]]


def _extensions(report: dict[str, Any]) -> list[str]:
    """How n was chosen: one line per `ghostsweep extend`, oldest first."""
    return [time.strftime("%Y-%m-%d", time.gmtime(e["at"])) + f": {e['note']}" for e in report["extensions"]]


def _markdown_table(table: Table) -> list[str]:
    lines = [f"## {table.title}", "", table.intro, "", "| " + " | ".join(table.columns) + " |",
             "|" + "---|" * len(table.columns)]
    return lines + ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in table.rows] + [""]


def to_markdown(report: dict[str, Any]) -> str:
    lines = [f"# Reproduction report: {report['title']}", ""]
    if report["answer"]:
        lines += ["## The answer", "", *(f"- {sentence}" for sentence in report["answer"]), ""]
    for table in report_tables(report):
        lines += _markdown_table(table)
    if extensions := _extensions(report):
        lines += ["Seeds added (`ghostsweep extend`):", *(f"- {line}" for line in extensions), ""]
    if notes := _notes(report):
        lines += ["Notes:", *(f"- {note}" for note in notes), ""]
    sources = report["sources"].items()
    lines += ["Sources:", *(f"- **{key}**: {s['title']}; {s['where']}" for key, s in sources)]
    return "\n".join(lines) + "\n"


TERMINAL_ROWS = 40  # report rows the terminal's per-row tables show by default (`report --rows`); 0: all


def terminal_report(report: dict[str, Any], rows: int = TERMINAL_ROWS) -> Any:
    """What `ghostsweep report` prints (a rich renderable): the answer, then the tables; the files hold the
    plots, notes and sources. The answer and the tables of rows and comparisons show their first `rows` entries
    (0: all; 500 rows of a 10⁴-trial sweep are for the files) and say how many more the files have."""
    from rich import box
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table as RichTable
    from rich.text import Text

    def styled(text: str, label: str = "") -> Text:
        out = Text.assemble((label, "bold"), text.removeprefix(label))
        for match in VERDICT.finditer(out.plain):
            out.stylize("green" if match[1] == "consistent" else "red", match.start(1), match.end(1))
        return out

    parts: list[Any] = [Text(f"Reproduction report: {report['title']}", style="bold"), Text(),
                        Text("The answer", style="bold underline")]
    if not report["answer"]:
        parts.append(Text("No comparison yet: no two rows differ in one factor with seeds done."))
    answers = list(zip(report["comparisons"], report["answer"], strict=False))
    for comparison, sentence in answers[:rows or None]:
        label = comparison["difference"] if sentence.startswith(comparison["difference"]) else ""
        parts.append(Text("• ").append_text(styled(sentence, label)))
    if rows and len(answers) > rows:
        parts.append(_more(len(answers) - rows))
    for table in report_tables(report):
        caption = table.intro + (" Some columns are left out here: report.md and report.html have them all."
                                 if table.terminal else "")
        out = RichTable(title=escape(table.title), caption=escape(caption), box=box.SIMPLE_HEAD, show_edge=False,
                        title_justify="left", caption_justify="left", title_style="bold underline",
                        header_style="bold")
        shown = table.terminal or range(len(table.columns))
        lines, left_out = _first_rows(table, rows)
        for j in shown:  # a column of numbers never wraps: its header is wrapped to the numbers' width instead
            cells = [cells[j] for cells in lines]
            if all(NUMBER.match(cell) for cell in cells):
                header = table.columns[j].replace(" − ", "\xa0−\xa0")  # "ours − paper" stays on one line
                width = max([len(cell) for cell in cells] + [len(word) for word in header.split(" ")] + [8])
                out.add_column(escape(textwrap.fill(header, width).replace("\xa0", " ")), no_wrap=True)
            else:  # labels keep one line up to 30 characters
                out.add_column(escape(table.columns[j]), min_width=min(max(map(len, cells), default=0), 30),
                               overflow="fold")
        for i, cells in enumerate(lines):
            repeated = table.grouped and i and cells[0] == lines[i - 1][0]
            last = table.grouped and (i + 1 == len(lines) or lines[i + 1][0] != cells[0])
            out.add_row(Text("" if repeated else cells[0], style="bold"), *(styled(cells[j]) for j in shown[1:]),
                        end_section=last)
        parts += [Text(), out]
        if left_out:
            parts.append(_more(left_out))
    return Group(*parts)


def _more(left_out: int) -> Any:
    from rich.text import Text

    return Text(f"… and {left_out} more in report.md and report.html (`ghostsweep report --rows 0` prints them all)",
                style="dim")


def _first_rows(table: Table, rows: int) -> tuple[list[list[str]], int]:
    """The table's lines about its first `rows` report rows (a row's lines share their first cell), and how many
    rows are left out; every line when `rows` is 0 or the table is not per row."""
    if not table.per_row or not rows:
        return table.rows, 0
    starts = [i for i, cells in enumerate(table.rows) if not i or cells[0] != table.rows[i - 1][0]]
    if len(starts) <= rows:
        return table.rows, 0
    return table.rows[:starts[rows]], len(starts) - rows


NUMBER = re.compile(r"[\d±+\-−—]")  # a cell that starts like a number stays on one line
VERDICT = re.compile(r"\b(not consistent|consistent|paper(?:'s Δ)? (?:above|below))\b")
FACTOR_TITLES = {"model": "Ghost model − its baseline", "model_options": "Model options", "runtime": "Runtime",
                 "recipe": "Recipe", "data": "Data"}
CSS = """
body{margin:0;background:#f3f4f6;color:#1f2328;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,
"DejaVu Sans",sans-serif}
main{max-width:1280px;margin:0 auto;padding:28px 48px 48px;background:#fff;min-height:100vh}
h1{font-size:28px;margin:0}h2{font-size:22px;margin:36px 0 8px;border-bottom:1px solid #d8dee4;padding-bottom:4px}
.meta,figcaption,.intro{color:#57606a;font-size:14px}
.answer{background:#eef4ff;border-left:5px solid #2f6feb;border-radius:6px;padding:6px 24px 14px;margin-top:20px}
.answer h2{border:0;margin-top:10px}
summary{font-weight:600;color:#57606a;margin-top:12px;cursor:pointer}
.answer ul{margin:4px 0;padding-left:20px}.answer li{margin:4px 0}
figure{margin:20px 0 32px}figure svg{display:block;width:100%;height:auto}
table{border-collapse:collapse;width:100%;font-size:14px;margin:8px 0}
th{background:#f0f2f5;text-align:left;vertical-align:bottom;font-weight:600}
td,th{border-bottom:1px solid #e1e4e8;padding:5px 8px;vertical-align:top}
td{font-variant-numeric:tabular-nums}td.label{font-weight:600}td.n{white-space:nowrap}
.scroll{overflow-x:auto}
.ok{color:#1a7f37;font-weight:600}.off{color:#cf222e;font-weight:600}
"""


def _verdicts(text: str) -> str:
    """Escaped text with its verdict words coloured: green when consistent, red when not."""
    return VERDICT.sub(lambda m: f'<span class="{"ok" if m[1] == "consistent" else "off"}">{m[1]}</span>',
                       html.escape(text))


def _html_table(table: Table) -> str:
    """A grouped table shows its first cell once per group (rowspan); numbers do not wrap, words do."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = []
    for i, cells in enumerate(table.rows):
        first = ""
        if not (table.grouped and i and cells[0] == table.rows[i - 1][0]):
            span = 1
            while table.grouped and i + span < len(table.rows) and table.rows[i + span][0] == cells[0]:
                span += 1
            first = f"<td class=label rowspan={span}>{html.escape(cells[0])}</td>"
        body.append("<tr>" + first + "".join(f"<td{' class=n' if NUMBER.match(cell) else ''}>{_verdicts(cell)}</td>"
                                             for cell in cells[1:]) + "</tr>")
    return (f"<h2>{html.escape(table.title)}</h2><p class=intro>{html.escape(table.intro)}</p>"
            f"<div class=scroll><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


def _answer_html(report: dict[str, Any]) -> str:
    """The answer sentences, grouped by what the comparison varies, each led by its Δ label in bold."""
    if not report["answer"]:
        return "<p>No comparison yet: no two rows differ in one factor with seeds done. The rows are below.</p>"
    groups: dict[str, list[str]] = {}
    for comparison, sentence in zip(report["comparisons"], report["answer"], strict=False):
        label, rest = comparison["difference"], sentence.removeprefix(comparison["difference"])
        item = f"<b>{html.escape(label)}</b>{_verdicts(rest)}" if rest != sentence else _verdicts(sentence)
        groups.setdefault(comparison["factor"], []).append(f"<li>{item}</li>")
    return "".join(  # the paper's question stays open; a long list of other comparisons folds away
        f"<details{' open' if factor == 'model' or len(items) <= 12 else ''}><summary>"
        f"{html.escape(FACTOR_TITLES.get(factor, factor))} ({len(items)})</summary><ul>{''.join(items)}</ul></details>"
        for factor, items in groups.items())


def to_html(report: dict[str, Any], plots: dict[str, Plot]) -> str:
    """One self-contained page: the answer first, then the plots (inline SVG), the tables, notes and sources."""
    title = html.escape(report["title"])
    generated = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(report["generated_at"]))
    done = sum(row["seeds_done"] for row in report["rows"])
    planned = sum(row["seeds_planned"] for row in report["rows"])
    figures = "".join(f'<figure id="{name}">{plot.svg}<figcaption>{html.escape(plot.caption)}</figcaption></figure>'
                      for name, plot in plots.items())
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in _notes(report))
    extensions = "".join(f"<li>{html.escape(line)}</li>" for line in _extensions(report))
    sources = "".join(f"<li><b>{html.escape(key)}</b>: {html.escape(s['title'])}; {html.escape(s['where'])}</li>"
                      for key, s in report["sources"].items())
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>Reproduction report: {title}</title>"
        f"<meta name=viewport content='width=device-width,initial-scale=1'><style>{CSS}</style></head><body><main>"
        f"<h1>Reproduction report: {title}</h1><p class=meta>{len(report['rows'])} rows, {done} of {planned} "
        f"trials done, {len(report['comparisons'])} comparisons; generated {generated}. CIFAR-10 test accuracy in "
        f"%, differences in percentage points (pp).</p>"
        f"<section class=answer><h2>The answer</h2>{_answer_html(report)}</section>"
        f"<h2>Plots</h2>{figures}{''.join(_html_table(table) for table in report_tables(report))}"
        + (f"<h2>Seeds added (ghostsweep extend)</h2><ul>{extensions}</ul>" if extensions else "")
        + (f"<h2>Notes</h2><ul>{notes}</ul>" if notes else "")
        + f"<h2>Sources</h2><ul>{sources}</ul></main></body></html>\n"
    )
