"""The reproduction report: one row per variant, seeds aggregated, beside the published numbers.

Per row: seeds done of planned; mean, sample std, 95% t-interval, min and max of the final test accuracy and
of the best-val checkpoint's test accuracy; params, MACs, compute hours; then each reference with the
difference and a verdict (the paper's value inside our interval: consistent). A row with missing seeds says
so in its verdict; its statistics cover only the seeds that are done and are labelled with their n.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ghostsweep.orchestrator.references import REFERENCES, references_for
from ghostsweep.orchestrator.state import read_state
from ghostsweep.orchestrator.sweepdir import SweepDir
from ghostsweep.trials.files import atomic_write_json, atomic_write_text

PAPER_ITERATIONS = 64_000
CURVE_METRIC = "val_acc"


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
    result: dict[str, Any] = field(default_factory=dict)
    curve: list[tuple[int, float]] = field(default_factory=list)  # (iteration, val_acc)


def records_from_sweep(sweep_dir: Path) -> tuple[str, list[TrialRecord], dict[str, Any]]:
    """Title, records in plan order and W&B settings, from the files of a sweep directory."""
    sweep = SweepDir(sweep_dir)
    index = sweep.index()
    records = []
    for trial_id in index["trial_ids"]:
        trial = index["trials"][trial_id]
        trial_dir = sweep.trial_dir(trial_id)
        state = read_state(trial_dir)
        records.append(TrialRecord(
            trial_id=trial_id, group=trial["group"], label=trial["label"], variant=trial["variant"],
            model=trial["model"], first_layer=trial["first_layer"], block_norm=trial["block_norm"],
            seed=trial["seed"], iterations=trial["iterations"], done=state.state == "done",
            result=state.result or {}, curve=_read_curve(trial_dir / "metrics.jsonl"),
        ))
    return index["name"], records, index.get("wandb", {})


def _read_curve(path: Path) -> list[tuple[int, float]]:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    rows = (json.loads(line) for line in lines if line.strip())
    return [(row["iteration"], row[CURVE_METRIC]) for row in rows if row.get(CURVE_METRIC) is not None]


def summary_stats(values: list[float]) -> dict[str, float | int | None]:
    """n, mean, sample std (ddof 1), 95% t-interval, min, max; std and interval need n >= 2."""
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "ci_low": None, "ci_high": None, "min": None, "max": None}
    mean = math.fsum(values) / n
    std = ci_low = ci_high = None
    if n >= 2:
        from scipy.special import stdtrit  # Student's t quantile; scipy.stats costs seconds to import

        std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
        half_width = float(stdtrit(n - 1, 0.975)) * std / math.sqrt(n)
        ci_low, ci_high = mean - half_width, mean + half_width
    return {"n": n, "mean": mean, "std": std, "ci_low": ci_low, "ci_high": ci_high, "min": min(values),
            "max": max(values)}


def verdict(stats: dict[str, Any], paper: float, missing: int) -> str:
    if missing:
        return f"incomplete: {missing} seed(s) missing"
    if stats["ci_low"] is None:
        return "no interval (n < 2)"
    if stats["ci_low"] <= paper <= stats["ci_high"]:
        return "consistent"
    if paper > stats["ci_high"]:
        return f"paper above our CI by {paper - stats['ci_high']:.2f} pp"
    return f"paper below our CI by {stats['ci_low'] - paper:.2f} pp"


def build_report(
    title: str, records: list[TrialRecord], wandb: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Everything the report shows, as plain data (this is report.json)."""
    groups: dict[str, list[TrialRecord]] = {}
    for record in records:
        groups.setdefault(record.group, []).append(record)
    rows = [_row(members) for members in groups.values()]
    used = {ref["source"] for row in rows for ref in row["references"]}
    sources = {ref.source.key: asdict(ref.source) for ref in REFERENCES if ref.source.key in used}
    return {
        "title": title, "generated_at": time.time(), "rows": rows, "sources": sources, "wandb": wandb or {},
        "trials": [{"trial_id": r.trial_id, "group": r.group, "seed": r.seed, "done": r.done,
                    "final_test_acc": r.result.get("final_test_acc"),
                    "best_val_test_acc": r.result.get("best_val_test_acc"), "curve": r.curve}
                   for r in records],
    }


def _row(members: list[TrialRecord]) -> dict[str, Any]:
    first = members[0]
    done = [m for m in members if m.done and m.result.get("final_test_acc") is not None]
    final = summary_stats([m.result["final_test_acc"] for m in done])
    best = summary_stats([m.result["best_val_test_acc"] for m in done
                          if m.result.get("best_val_test_acc") is not None])
    missing = len(members) - final["n"]
    hours = {"GPU": 0.0, "CPU": 0.0}
    for member in done:
        kind = "CPU" if member.result.get("device", "cpu") == "cpu" else "GPU"
        hours[kind] += member.result.get("wall_time_s", 0.0) * member.result.get("world_size", 1) / 3600
    references = []
    for ref in references_for(first.model):
        if ref.test_acc is None:
            continue
        references.append({
            "source": ref.source.key, "test_acc": ref.test_acc, "test_acc_std": ref.test_acc_std,
            "params": ref.params, "macs": ref.macs, "note": ref.note,
            "difference": None if final["mean"] is None else final["mean"] - ref.test_acc,
            "verdict": verdict(final, ref.test_acc, missing),
        })
    notes = []
    if first.iterations != PAPER_ITERATIONS:
        notes.append(f"{first.iterations:,} iterations, not the papers' {PAPER_ITERATIONS:,}")
    return {
        "group": first.group, "label": first.label, "variant": first.variant, "model": first.model,
        "first_layer": first.first_layer, "block_norm": first.block_norm,
        "seeds_planned": len(members), "seeds_done": final["n"],
        "missing_seeds": sorted(m.seed for m in members if m not in done),
        "final_test_acc": final, "best_val_test_acc": best,
        "params": next((m.result["params"] for m in done if m.result.get("params")), None),
        "macs": next((m.result["macs"] for m in done if m.result.get("macs")), None),
        "gpu_hours": hours["GPU"], "cpu_hours": hours["CPU"], "references": references, "notes": notes,
    }


def write_report(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """report.json, report.md, the plots as PNG and a self-contained report.html (plots inlined)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = render_plots(report)
    paths = {"json": out_dir / "report.json", "md": out_dir / "report.md", "html": out_dir / "report.html"}
    atomic_write_json(paths["json"], report)
    atomic_write_text(paths["md"], to_markdown(report))
    atomic_write_text(paths["html"], to_html(report, plots))
    for name, png in plots.items():
        paths[name] = out_dir / f"report-{name}.png"
        paths[name].write_bytes(png)
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


def _reference_lines(row: dict[str, Any]) -> list[str]:
    lines = []
    for ref in row["references"]:
        difference = "" if ref["difference"] is None else f", ours {ref['difference']:+.2f}"
        lines.append(f"{ref['source']} {ref['test_acc']:.2f}{difference}: {ref['verdict']}")
    return lines or ["no published number"]


TABLE_COLUMNS = (
    "variant", "seeds", "final test % mean ± std [95% CI]", "best-val test % mean ± std [95% CI]",
    "final min–max", "params", "MACs", "compute", "papers (test %): verdict",
)


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    """The report table as strings, shared by Markdown, HTML and W&B."""
    return [[
        row["label"], _seeds(row), _pct(row["final_test_acc"]), _pct(row["best_val_test_acc"]),
        _range(row["final_test_acc"]), _millions(row["params"], 3), _millions(row["macs"], 1), _hours(row),
        "; ".join(_reference_lines(row)),
    ] for row in report["rows"]]


def to_markdown(report: dict[str, Any]) -> str:
    lines = [f"# Reproduction report: {report['title']}", "",
             "CIFAR-10 test accuracy (%); mean ± sample std [95% t-interval] over the seeds that are done. "
             "Verdict: the published value inside our interval is *consistent*.", "",
             "| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in table_rows(report)]
    notes = [f"- {row['label']}: {note}" for row in report["rows"] for note in row["notes"]]
    if notes:
        lines += ["", "Notes:", *notes]
    sources = report["sources"].items()
    lines += ["", "Sources:", *(f"- **{key}**: {s['title']}; {s['where']}" for key, s in sources)]
    return "\n".join(lines) + "\n"


def to_html(report: dict[str, Any], plots: dict[str, bytes]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in TABLE_COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells) + "</tr>"
                   for cells in table_rows(report))
    images = "".join(f'<h2>{name.replace("-", " ")}</h2><img alt="{name}" '
                     f'src="data:image/png;base64,{base64.b64encode(png).decode()}">'
                     for name, png in plots.items())
    sources = "".join(f"<li><b>{html.escape(key)}</b>: {html.escape(s['title'] + '; ' + s['where'])}</li>"
                      for key, s in report["sources"].items())
    notes = "".join(f"<li>{html.escape(row['label'])}: {html.escape(note)}</li>"
                    for row in report["rows"] for note in row["notes"])
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(report['title'])}</title>"
            f"<style>{style}</style></head><body><h1>Reproduction report: {html.escape(report['title'])}</h1>"
            "<p>CIFAR-10 test accuracy (%); mean ± sample std [95% t-interval] over the seeds done.</p>"
            f"<table><tr>{head}</tr>{body}</table><ul>{notes}</ul>{images}<h2>Sources</h2><ul>{sources}</ul>"
            "</body></html>\n")


def render_plots(report: dict[str, Any]) -> dict[str, bytes]:
    """Accuracy vs params (ours with 95% CI, the papers' points overlaid) and mean learning curves per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = {}
    figure, axes = plt.subplots(figsize=(7, 4.5))
    series: dict[str, list[dict[str, Any]]] = {}
    for row in report["rows"]:
        if row["params"] and row["final_test_acc"]["mean"] is not None:
            family = " ".join(filter(None, [row["model"].rstrip("0123456789"), row["first_layer"],
                                            row["block_norm"], row["label"][len(row["variant"]):].strip()]))
            series.setdefault(family, []).append(row)
    for family, rows in series.items():
        rows.sort(key=lambda r: r["params"])
        stats = [r["final_test_acc"] for r in rows]
        errors = [0.0 if s["ci_high"] is None else s["ci_high"] - s["mean"] for s in stats]
        axes.errorbar([r["params"] / 1e6 for r in rows], [s["mean"] for s in stats], yerr=errors, marker="o",
                      capsize=3, label=f"ours: {family}")
    markers = iter("sD^vP*")
    for source in report["sources"]:
        points = {(ref["params"], ref["test_acc"]) for row in report["rows"] for ref in row["references"]
                  if ref["source"] == source and ref["params"]}
        if points:
            xs, ys = zip(*sorted(points), strict=True)
            axes.scatter([x / 1e6 for x in xs], ys, marker=next(markers, "x"), facecolors="none",
                         edgecolors="black", label=f"paper: {source}")
    axes.set(xlabel="params (M)", ylabel="CIFAR-10 test accuracy (%)", title="accuracy vs params (95% CI)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    figure.subplots_adjust(left=0.1, right=0.97, bottom=0.12, top=0.92)
    plots["accuracy-vs-params"] = _png(figure)
    curves = _mean_curves(report)
    columns = min(4, max(1, len(curves)))
    rows_n = max(1, math.ceil(len(curves) / columns))
    figure, grid = plt.subplots(rows_n, columns, figsize=(3.2 * columns, 2.6 * rows_n), squeeze=False)
    for axes, (variant, lines) in zip(grid.flat, curves.items(), strict=False):
        for label, (iterations, mean, low, high) in lines.items():
            axes.plot(iterations, mean, label=label[len(variant):].strip() or None)
            axes.fill_between(iterations, low, high, alpha=0.25)
        axes.set_title(variant, fontsize=8)
        axes.tick_params(labelsize=7)
        if len(lines) > 1:
            axes.legend(fontsize=6)
    for axes in list(grid.flat)[len(curves):]:
        axes.axis("off")
    figure.suptitle(f"learning curves: {CURVE_METRIC} (mean, min–max over seeds) vs iteration", fontsize=9)
    figure.subplots_adjust(left=0.06, right=0.98, bottom=0.08, top=0.9, hspace=0.5, wspace=0.25)
    plots["learning-curves"] = _png(figure)
    return plots


Curve = tuple[list[int], list[float], list[float], list[float]]  # iterations, mean, min, max


def _mean_curves(report: dict[str, Any]) -> dict[str, dict[str, Curve]]:
    """Per variant, per row label: the curve's mean, min and max over seeds at each eval iteration."""
    rows = {row["group"]: row for row in report["rows"]}
    by_group: dict[str, dict[int, list[float]]] = {}
    for trial in report["trials"]:
        for iteration, value in trial["curve"]:
            by_group.setdefault(trial["group"], {}).setdefault(iteration, []).append(value)
    curves: dict[str, dict[str, Curve]] = {}
    for group, points in by_group.items():
        iterations = sorted(points)
        curves.setdefault(rows[group]["variant"], {})[rows[group]["label"]] = (
            iterations, [sum(points[i]) / len(points[i]) for i in iterations],
            [min(points[i]) for i in iterations], [max(points[i]) for i in iterations],
        )
    return curves


def _png(figure: Any) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    return buffer.getvalue()

