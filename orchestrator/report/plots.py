"""The report's figures: accuracy against params and MACs, the forest plot of every Δ, the learning curves, and
the published ablation curves beside ours.

Each is drawn once and saved as SVG with its text kept as text (inlined in report.html), and as PNG only for W&B
(`report --wandb`): rasterizing is a third of the drawing time.
matplotlib is imported only when a report is drawn.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import textwrap
from dataclasses import dataclass
from typing import Any, Literal

from ghostsweep.model.registry import model_info
from ghostsweep.orchestrator.report.decisions import MIN_PAIRS, DifferenceMethod
from ghostsweep.orchestrator.report.model import Comparison, Report, RowSummary
from ghostsweep.orchestrator.report.references import ABLATION_SYMBOLS
from ghostsweep.trials.trialdir import CURVE_METRIC

PLOTS = ("accuracy-vs-params", "accuracy-vs-macs", "differences", "learning-curves", "ablations")


@dataclass(frozen=True)
class Plot:
    """One figure: SVG (text kept as text) for report.html, and PNG for W&B when asked for."""

    caption: str
    svg: str
    png: bytes | None


FIGURE_WIDTH_IN = 12.0  # at a 1200 px page, 1 pt = 1.39 px: 10 pt text shows at 14 px
STYLE = {
    "svg.fonttype": "none", "svg.hashsalt": "ghostsweep", "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"], "font.size": 11, "axes.titlesize": 12,
    "axes.titleweight": "bold", "axes.labelsize": 11, "xtick.labelsize": 10, "ytick.labelsize": 10,
    "legend.fontsize": 10, "figure.titlesize": 12, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.alpha": 0.3, "figure.constrained_layout.use": True,
    "text.parse_math": False, "text.usetex": False,  # labels are anyone's text: `$\\nope{$` is no formula
}
SOURCE_MARKERS = ("D", "s", "^", "v", "P", "X")
MAX_LEGEND_SERIES = 12  # beyond this many of our series a legend is a wall of text
MAX_FOREST_ROWS = 40  # a forest plot taller than a few screens helps nobody; the table has every comparison
CLAIM_COLOR = "#cf222e"
FLAG = "⚠"  # beside a row or comparison whose seeds did not all run alike (the rows table says how)
FLAG_CAPTION = (f" {FLAG} marks a row whose provenance is flagged (its seeds ran under mixed code, libraries or "
                "devices, or from a dirty tree): the rows table says which.")


def render_plots(report: Report, raster: bool = True) -> dict[str, Plot]:
    """Every plot in `PLOTS`, each series in one colour across plots; a plot without data says so. `raster`:
    a PNG of each as well (what W&B shows), else `Plot.png` is None."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {row.group: _series(row) for row in report.rows}
    colors = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(dict.fromkeys(series.values()))}
    color_of = {group: colors[name] for group, name in series.items()}
    with plt.rc_context(STYLE):
        figures = {
            "accuracy-vs-params": lambda: _accuracy_vs_size(report, "params", "parameters (millions)", color_of),
            "accuracy-vs-macs": lambda: _accuracy_vs_size(report, "macs", "multiply–accumulates per image (millions)",
                                                          color_of),
            "differences": lambda: _forest(report, color_of),
            "learning-curves": lambda: _learning_curves(report, color_of),
            "ablations": lambda: _ablations(report),
        }
        return {name: _save(*draw(), raster) for name, draw in figures.items()}


def _series(row: RowSummary) -> str:
    """A row's line in the size plots: its family plus what the variant and the settings add
    (`ghost_resnet-conv-keep`), so that depths of one kind join up."""
    extra = row.label[len(row.variant):].strip()
    return row.family + row.variant[len(row.model):] + (f" {extra}" if extra else "")


def _accuracy_vs_size(report: Report, size: Literal["params", "macs"], axis_label: str, color_of: dict[str, Any],
                      ) -> tuple[Any, str]:
    """Our mean final test accuracy (95% CI) against params or MACs, a line per series, the papers' points."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    what = "params" if size == "params" else "MACs"
    caption = (f"CIFAR-10 test accuracy against {what}: ours is the mean final test accuracy over seeds with its "
               "95% t-interval (no bar: one seed), a line per model family and variant, the depth beside each "
               "point; black hollow markers are the published numbers as printed.")
    lines: dict[str, list[RowSummary]] = {}
    for row in report.rows:
        if getattr(row, size) and row.final_test_acc.mean is not None:
            lines.setdefault(_series(row), []).append(row)
    published: dict[str, set[tuple[float, float]]] = {}
    for row in report.rows:
        for ref in row.references:
            if getattr(ref, size):
                published.setdefault(ref.source, set()).add((getattr(ref, size), ref.test_acc))
    if not lines and not published:
        return _message(f"accuracy vs {what}: no finished trial with {what} recorded yet", caption)
    figure, axes = plt.subplots(figsize=(FIGURE_WIDTH_IN, 5.2))
    xs, handles = _our_series(axes, lines, size, color_of)
    ours = len(handles)
    markers = dict(zip(report.sources, SOURCE_MARKERS, strict=False))  # one marker per source in every plot
    for source, points in published.items():
        x, accuracies = zip(*sorted(points), strict=True)
        x = [value / 1e6 for value in x]
        xs += x
        title = (report.sources[source].title if source in report.sources else source).split(",")[0]
        handles.append(axes.scatter(x, accuracies, marker=markers.get(source, "o"), s=70, facecolors="none",
                                    edgecolors="black", linewidths=1.5, zorder=3,
                                    label=f"published: {source} ({title})"))
    if max(xs) / min(xs) > 8:
        _plain_log_axis(axes.xaxis)
        axis_label += ", log scale"
    axes.set(xlabel=axis_label, ylabel="CIFAR-10 test accuracy (%)",
             title=f"Accuracy vs {what}: ours (mean, 95% CI) and the papers")
    if len(lines) > MAX_LEGEND_SERIES:  # a sweep over a setting: one series per value, too many to name
        handles[MAX_LEGEND_SERIES:ours] = [Line2D([], [], ls="none", label=(
            f"… and {len(lines) - MAX_LEGEND_SERIES} more series (rows table)"))]
    figure.legend(handles=handles, loc="outside right upper", frameon=False)
    if any(row.provenance_flag for rows in lines.values() for row in rows):
        caption += FLAG_CAPTION
    return figure, caption


def _our_series(axes: Any, lines: dict[str, list[RowSummary]], size: Literal["params", "macs"],
                color_of: dict[str, Any]) -> tuple[list[float], list[Any]]:
    """Each series' mean final test accuracy with its 95% CI against size, the depth beside each point while the
    legend names every series; the x values drawn and the legend's handles."""
    xs, handles = [], []
    unnamed: dict[Any, list[list[float]]] = {}  # colour → x, mean, CI below and above of one-point series
    for position, (name, rows) in enumerate(lines.items()):
        rows.sort(key=lambda r: getattr(r, size))
        stats = [r.final_test_acc for r in rows]
        x = [getattr(r, size) / 1e6 for r in rows]
        xs += x
        low = [0.0 if s.ci_low is None else s.mean - s.ci_low for s in stats]
        high = [0.0 if s.ci_high is None else s.ci_high - s.mean for s in stats]
        color = color_of[rows[0].group]
        if len(rows) == 1 and position >= MAX_LEGEND_SERIES:  # a point the legend does not name is drawn below,
            points = unnamed.setdefault(color, [[], [], [], []])  # with the others of its colour: one artist, not 500
            for values, value in zip(points, (x[0], stats[0].mean, low[0], high[0]), strict=True):
                values.append(value)
            continue
        flag = f" {FLAG}" if any(row.provenance_flag for row in rows) else ""
        handles.append(axes.errorbar(x, [s.mean for s in stats], yerr=[low, high], marker="o", capsize=4, lw=1.8,
                                     ms=6, color=color, label=f"ours: {name}{flag}"))
        for row, xi, s in zip(rows, x, stats, strict=True) if len(lines) <= MAX_LEGEND_SERIES else ():
            axes.annotate(str(model_info(row.model).depth) + (f" {FLAG}" if row.provenance_flag else ""), (xi, s.mean),
                          xytext=(6, -12), textcoords="offset points", fontsize=9, color="#57606a")
    for color, (x, means, low, high) in unnamed.items():
        axes.errorbar(x, means, yerr=[low, high], marker="o", capsize=4, lw=1.8, ls="none", ms=6, color=color)
    return xs, handles


def _ablations(report: Report) -> tuple[Any, str]:
    """One panel per published ablation curve our rows lie on: ours (mean, 95% CI) and the paper's points against
    the option's value, the baseline (no Ghost) as horizontal lines."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    caption = ("Ablations: CIFAR-10 test accuracy against a Ghost module option (s: ratio, d: cheap kernel), the "
               "others at the paper's values; ours is the mean final test accuracy with its 95% t-interval, the "
               "black hollow markers and dashed line the published curve, the horizontal lines the baseline "
               "without Ghost modules (solid: ours, dotted: published).")
    ablations = report.ablations
    if not ablations:
        return _message("ablations: no published ablation curve has two of this sweep's rows on it", caption)
    figure, grid = plt.subplots(1, len(ablations), figsize=(FIGURE_WIDTH_IN, 4.6), squeeze=False, sharey=True)
    for axes, ablation in zip(grid.flat, ablations, strict=True):
        symbol = ABLATION_SYMBOLS.get(ablation.option, ablation.option)
        ours = [p for p in ablation.points if p.mean is not None]
        low = [0.0 if p.ci_low is None else p.mean - p.ci_low for p in ours]
        high = [0.0 if p.ci_high is None else p.ci_high - p.mean for p in ours]
        axes.errorbar([p.value for p in ours], [p.mean for p in ours], yerr=[low, high], marker="o",
                      capsize=4, lw=1.8, ms=6, color="#2f6feb")
        paper = [p for p in ablation.points if p.paper_test_acc is not None]
        axes.plot([p.value for p in paper], [p.paper_test_acc for p in paper], ls="--", color="black",
                  marker="D", ms=7, mfc="none", lw=1)
        baseline = ablation.baseline
        if baseline is not None and baseline.mean is not None:
            axes.axhline(baseline.mean, color="#2f6feb", lw=1, alpha=0.6)
        if baseline is not None and baseline.paper_test_acc is not None:
            axes.axhline(baseline.paper_test_acc, color="black", lw=1, ls=":")
        axes.set_xticks(sorted({p.value for p in ablation.points}))
        axes.set(xlabel=f"{symbol} ({ablation.option})", title=f"{ablation.model}: {symbol}",
                 ylabel="CIFAR-10 test accuracy (%)")
        axes.tick_params(labelleft=True)
    handles = [Line2D([], [], marker="o", color="#2f6feb", lw=1.8, label="ours (mean, 95% CI)"),
               Line2D([], [], marker="D", mfc="none", color="black", ls="--", label="published"),
               Line2D([], [], color="#2f6feb", alpha=0.6, label="baseline, ours"),
               Line2D([], [], color="black", ls=":", label="baseline, published")]
    figure.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    return figure, caption


def _plain_log_axis(axis: Any) -> None:
    """A log axis ticked at 1, 2 and 5 per decade, as plain numbers (0.2, 0.5, 1) rather than powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.axes.set_xscale("log")
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def _forest(report: Report, color_of: dict[str, Any]) -> tuple[Any, str]:
    """Every comparison's Δ with its 95% CI, 0 marked, and each source's published Δ with the interval it is
    judged against."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    caption = ("Δ = treatment − reference (pp of CIFAR-10 test accuracy), one line per comparison: dot and bar are "
               f"our Δ and its 95% CI by the report's rule: paired by seed from {MIN_PAIRS} pairs on (filled), else "
               "Welch's unpaired interval on all seeds (hollow); red diamonds are the published Δ, the faint red "
               "band the 95% prediction interval for one "
               "unpaired pair of runs that it is judged against.")
    comparisons = report.comparisons[:MAX_FOREST_ROWS]  # the model comparisons come first
    if not comparisons:
        return _message("differences: no two rows differ in one factor yet", caption)
    if len(report.comparisons) > MAX_FOREST_ROWS:
        caption += f" The first {MAX_FOREST_ROWS} of {len(report.comparisons)} comparisons: all are in the table."
    n = len(comparisons)
    figure, axes = plt.subplots(figsize=(FIGURE_WIDTH_IN, 1.6 + 0.5 * n))
    axes.axvline(0, color="#57606a", lw=1, ls="--", zorder=1)
    methods_drawn: set[DifferenceMethod] = set()
    claims_used = False
    for i, c in enumerate(comparisons):
        y = n - 1 - i
        if i and c.factor != comparisons[i - 1].factor:
            axes.axhline(y + 0.5, color="#d0d7de", lw=1)
        methods_drawn |= _forest_line(axes, c, y, color_of.get(c.treatment, "black"))
        claims_used |= bool(c.claims)
    axes.set_yticks(range(n), [textwrap.fill(c.difference + (f" {FLAG}" if c.provenance else ""), 52)
                               for c in reversed(comparisons)])
    if any(c.provenance for c in comparisons):
        caption += (f" {FLAG} marks a comparison whose rows' seeds did not all run alike (mixed code, libraries or "
                    "devices, within or between the rows): the comparisons table says how.")
    axes.set_ylim(-0.7, n - 0.4)
    axes.grid(axis="y", visible=False)
    axes.set(xlabel="Δ CIFAR-10 test accuracy (pp) = treatment − reference",
             title="Differences: our Δ with its 95% CI against the published Δ")
    handles = []
    if DifferenceMethod.PAIRED in methods_drawn:
        handles.append(Line2D([], [], marker="o", color="black", lw=2, label="our Δ, paired by seed (95% CI)"))
    if DifferenceMethod.WELCH in methods_drawn:
        handles.append(Line2D([], [], marker="o", mfc="white", color="black", lw=2, label="our Δ, Welch (95% CI)"))
    if claims_used:
        handles += [Line2D([], [], marker="D", color=CLAIM_COLOR, ls="none", label="published Δ"),
                    Line2D([], [], color=CLAIM_COLOR, alpha=0.18, lw=7,
                           label="95% prediction interval for one pair of runs")]
    if handles:
        figure.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    return figure, caption


def _forest_line(axes: Any, comparison: Comparison, y: float, color: Any) -> set[DifferenceMethod]:
    """One comparison at height y: our Δ with the 95% CI its method gives (hollow: Welch's) and each source's Δ
    below it with its prediction interval. The method drawn, if any."""
    interval, welch = comparison.interval, comparison.method is DifferenceMethod.WELCH
    if interval is None:
        axes.annotate("not enough seeds for an interval", (0, y), xytext=(6, 0), textcoords="offset points",
                      va="center", fontsize=10, color="#57606a")
    else:
        est = interval.estimate
        axes.errorbar(est, y, xerr=[[est - interval.low], [interval.high - est]], fmt="o", ms=7,
                      capsize=4, lw=2, color=color, mfc="white" if welch else color, zorder=3)
        axes.annotate(f"{est:+.2f} [{interval.low:+.2f}, {interval.high:+.2f}]", (1, y),
                      xycoords=("axes fraction", "data"), xytext=(8, 0), textcoords="offset points",
                      va="center", fontsize=10)
    for k, claim in enumerate(comparison.claims):
        yc = y - 0.25 * (k + 1) / len(comparison.claims)
        if claim.prediction:
            axes.plot([claim.prediction.low, claim.prediction.high], [yc, yc], color=CLAIM_COLOR,
                      alpha=0.18, lw=7, solid_capstyle="butt", zorder=2)
        axes.plot(claim.delta, yc, marker="D", ms=7, color=CLAIM_COLOR, ls="none", zorder=4)
    return {comparison.method} if interval is not None else set()


def _learning_curves(report: Report, color_of: dict[str, Any]) -> tuple[Any, str]:
    """A small panel per variant: validation accuracy, mean line and min–max band over seeds."""
    import matplotlib.pyplot as plt

    caption = (f"Learning curves: {CURVE_METRIC} (validation accuracy, %) against training iteration, per variant; "
               "the line is the mean over seeds, the band their min–max.")
    curves = _mean_curves(report)
    if not curves:
        return _message("learning curves: no evaluation recorded yet", caption)
    title_pt = 6.5 * max(map(len, curves)) + 30  # an 11 pt title (~6.5 pt a character), and some space between
    columns = max(1, min(4, len(curves), int(FIGURE_WIDTH_IN * 72 // title_pt)))  # titles never overlap
    rows = math.ceil(len(curves) / columns)
    figure, grid = plt.subplots(rows, columns, figsize=(FIGURE_WIDTH_IN, 0.8 + 2.9 * rows), sharex=True,
                                sharey=True, squeeze=False)
    for axes, (variant, lines) in zip(grid.flat, curves.items(), strict=False):
        if len(lines) > MAX_LEGEND_SERIES // 2:  # more rows than a legend names: all bands as one artist, all
            _collective_curves(axes, lines, color_of)  # lines as another, not 2 per row (500 rows take seconds)
        else:
            for group, curve in lines.items():
                color = color_of.get(group, "black")
                x = [i / 1000 for i in curve.iterations]
                axes.fill_between(x, curve.low, curve.high, color=color, alpha=0.2, lw=0)
                name = curve.label[len(variant):].strip() or variant
                flag = f" {FLAG}" if curve.flagged else ""
                axes.plot(x, curve.mean, color=color, lw=1.6, label=f"{name} ({curve.seeds} seeds){flag}")
        axes.set_title(variant, fontsize=11)
        axes.tick_params(labelbottom=True, labelleft=True)
        if 1 < len(lines) <= MAX_LEGEND_SERIES // 2:
            axes.legend(fontsize=9, loc="lower right")
        else:  # one row: its seeds; many (a sweep over a setting): how many lines
            (first, *_) = lines.values()
            note = f"{first.seeds} seeds{f' {FLAG}' if first.flagged else ''}" if len(lines) == 1 \
                else f"{len(lines)} rows"
            axes.text(0.97, 0.06, note, transform=axes.transAxes, ha="right", fontsize=10, color="#57606a")
    for axes in list(grid.flat)[len(curves):]:
        axes.axis("off")
    figure.supxlabel("training iteration (thousands)")
    figure.supylabel("validation accuracy (%)")
    figure.suptitle("Learning curves: validation accuracy, mean (line) and min–max (band) over seeds",
                    fontweight="bold")
    if any(curve.flagged for lines in curves.values() for curve in lines.values()):
        caption += FLAG_CAPTION
    return figure, caption


def _collective_curves(axes: Any, lines: dict[str, Curve], color_of: dict[str, Any]) -> None:
    """Every row's min–max band and mean line, drawn as one polygon collection and one line collection."""
    from matplotlib.collections import LineCollection, PolyCollection

    bands, means, colors = [], [], []
    for group, curve in lines.items():
        x = [i / 1000 for i in curve.iterations]
        bands.append([*zip(x, curve.low, strict=True), *zip(reversed(x), reversed(curve.high), strict=True)])
        means.append(list(zip(x, curve.mean, strict=True)))
        colors.append(color_of.get(group, "black"))
    axes.add_collection(PolyCollection(bands, facecolors=colors, alpha=0.2, linewidths=0))
    axes.add_collection(LineCollection(means, colors=colors, linewidths=1.6))
    axes.autoscale_view()


@dataclass(frozen=True)
class Curve:
    """One row's curve over its seeds at each evaluated iteration."""

    label: str
    flagged: bool  # the row's provenance is flagged
    seeds: int
    iterations: list[int]
    mean: list[float]
    low: list[float]
    high: list[float]


def _mean_curves(report: Report) -> dict[str, dict[str, Curve]]:
    """Per variant, per row (group): the curve's mean, min and max over the seeds that evaluated there."""
    rows = {row.group: row for row in report.rows}
    by_group: dict[str, dict[int, list[float]]] = {}
    seeds: dict[str, set[int]] = {}
    for trial in report.trials or []:
        if not trial.curve:
            continue
        points = by_group.setdefault(trial.group, {})
        for iteration, value in trial.curve:
            points.setdefault(iteration, []).append(value)
        seeds.setdefault(trial.group, set()).add(trial.seed)
    curves: dict[str, dict[str, Curve]] = {}
    for group, points in by_group.items():
        iterations = sorted(points)
        curves.setdefault(rows[group].variant, {})[group] = Curve(
            rows[group].label, rows[group].provenance_flag is not None, len(seeds[group]), iterations,
            [sum(points[i]) / len(points[i]) for i in iterations],
            [min(points[i]) for i in iterations], [max(points[i]) for i in iterations],
        )
    return curves


def _message(text: str, caption: str) -> tuple[Any, str]:
    """A plot with nothing to show yet says so, so that every name in `PLOTS` always has a file."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(FIGURE_WIDTH_IN, 1.0))
    axes.axis("off")
    axes.text(0.5, 0.5, text, ha="center", va="center", fontsize=12, color="#57606a")
    return figure, caption


def _save(figure: Any, caption: str, raster: bool) -> Plot:
    """SVG for the page (its ids prefixed with a digest of the figure, so that several inline SVGs never share
    one; no fixed size, so that CSS sets it to the page width) and, when `raster`, PNG for W&B."""
    import matplotlib.pyplot as plt

    svg_buffer = io.BytesIO()
    figure.savefig(svg_buffer, format="svg", metadata={"Date": None})
    png = None
    if raster:
        png_buffer = io.BytesIO()
        figure.set_layout_engine("none")  # laid out once: the PNG reuses the SVG's positions
        figure.savefig(png_buffer, format="png", dpi=100)
        png = png_buffer.getvalue()
    plt.close(figure)
    svg = svg_buffer.getvalue().decode()
    prefix = "p" + hashlib.sha256(svg.encode()).hexdigest()[:6] + "-"
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r'(\bid="|url\(#|href="#)', rf"\g<1>{prefix}", svg)
    svg = re.sub(r'^<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 role="img"', svg, count=1)
    return Plot(caption, svg, png)
