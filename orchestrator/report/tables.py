"""The report's tables as text cells, rendered alike by `markdown`, `html_page` and `terminal`: our rows, the
published numbers judged, the comparisons, the ablation curves and the context of pruning baselines."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from ghostsweep.model.arithmetic import COUNT_CONVENTION
from ghostsweep.model.registry import model_options
from ghostsweep.orchestrator.report.decisions import (
    DIFFERENCE_MARGIN_FLOOR_PP,
    LEVEL_MARGIN_PP,
    MIN_PAIRS,
    NEGLIGIBLE_SPREAD_PP,
    DifferenceMethod,
    Judgement,
    SeedOutcomes,
    Verdict,
)
from ghostsweep.orchestrator.report.model import (
    AblationCurve,
    Comparison,
    JudgedAblationDifference,
    MeanWithInterval,
    Metric,
    Provenance,
    Report,
    RowSummary,
    Summary,
    verdict_phrase,
)
from ghostsweep.orchestrator.report.references import ABLATION_SYMBOLS, CONTEXT
from ghostsweep.orchestrator.report.stats import Interval

NUMBER = re.compile(r"[\d±+\-−—]")  # a cell that starts like a number stays on one line
VERDICT = re.compile(r"\b(not consistent|not comparable|inconclusive|consistent)\b")  # longest first
VERDICT_STYLES = {Verdict.CONSISTENT: "green", Verdict.NOT_CONSISTENT: "red", Verdict.INCONCLUSIVE: "yellow",
                  Verdict.NOT_COMPARABLE: "dim"}  # how the terminal colours each verdict word


def _pct(stats: MeanWithInterval) -> str:
    if stats.mean is None:
        return "—"
    if stats.std is None:
        return f"{stats.mean:.2f} (n=1)"
    return f"{stats.mean:.2f} ± {stats.std:.2f} [{stats.ci_low:.2f}, {stats.ci_high:.2f}]"


def _range(summary: Summary) -> str:
    return "—" if summary.min is None else f"{summary.min:.2f}–{summary.max:.2f}"


def _millions(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value / 1e6:.{digits}f}M"


def _hours(row: RowSummary) -> str:
    parts = [f"{hours:.2f} {kind}-h" for kind, hours in (("GPU", row.gpu_hours), ("CPU", row.cpu_hours)) if hours]
    return ", ".join(parts) or "—"


def _seeds(outcomes: SeedOutcomes) -> str:
    """done/planned, then the seeds not done: pending ("missing"), failed, diverged."""
    parts = [f"{what} seeds {', '.join(map(str, seeds))}" for what, seeds in (
        ("missing", outcomes.pending), ("failed", outcomes.failed), ("diverged", outcomes.diverged)) if seeds]
    text = f"{len(outcomes.done)}/{len(outcomes.planned)}"
    return f"{text} ({'; '.join(parts)})" if parts else text


def _precision(summary: Summary) -> str:
    if summary.halfwidth is None:
        return "—"
    needed = "more than 1000" if summary.seeds_needed is None else str(summary.seeds_needed)
    return f"±{summary.halfwidth:.2f} (needs {needed})"


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.2f}"


def _interval_text(interval: Interval | None) -> str:
    """`+0.12 [-0.05, +0.29], p=0.16`: an interval as one table cell."""
    if interval is None:
        return "—"
    p = "" if interval.p_value is None else f", p={interval.p_value:.3g}"
    return f"{interval.estimate:+.2f} [{interval.low:+.2f}, {interval.high:+.2f}]{p}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


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


def _with_flag(cell: str, flag: str | None) -> str:
    """A number with its provenance warning beside it (mixed code, libraries or devices; a dirty tree)."""
    return f"{cell} {flag}" if flag else cell


def table_rows(report: Report) -> list[list[str]]:
    """Our numbers per row."""
    return [[
        row.label, _seeds(row.outcomes), _with_flag(_pct(row.final_test_acc), row.provenance_flag),
        _precision(row.final_test_acc),
        _pct(row.best_val_test_acc), _range(row.final_test_acc), _millions(row.params, 3), _millions(row.macs, 1),
        _hours(row),
    ] for row in report.rows]


METRIC_NAMES = {Metric.FINAL: "final", Metric.BEST_VAL: "best-val", Metric.MAX_OVER_EVALS: "max over evals"}
PUBLISHED_COLUMNS = (
    "variant", "source", "published test %", "what the number is", "ours test % (which)", "ours − paper (pp)",
    "verdict at the margin (p raw→adjusted)", "the tests",
)


def published_rows(report: Report) -> list[list[str]]:
    """Each published number beside ours, one line per row and source."""
    return [[
        row.label, ref.source,
        f"{ref.test_acc:.2f}" + ("" if ref.test_acc_std is None else f" ± {ref.test_acc_std:.2f}"),
        ref.kind.value + (f", n={ref.runs}" if ref.runs else ""),
        "—" if ref.ours_mean is None else f"{ref.ours_mean:.2f} ({METRIC_NAMES[ref.metric]})",
        _signed(ref.ours_minus_paper), verdict_phrase(ref.judgement), judgement_tests(ref.judgement),
    ] for row in report.rows for ref in row.references]


def judgement_tests(judgement: Judgement) -> str:
    """What the verdict rests on: the method, the intervals against the margin, and what would decide it."""
    if judgement.p_difference is None:
        return "—"
    decide = f"; {judgement.to_decide}" if judgement.to_decide else ""
    return f"{judgement.method}: {judgement.final_reason or judgement.reason}{decide}"


COMPARISON_COLUMNS = (
    "Δ = treatment − reference", "seed pairs", "Δ pp [95% CI], p (by the rule)", "paired Δ pp [95% CI], p",
    "Welch Δ pp [95% CI], p", "seeds done / planned (treatment; reference)", "seeds for target",
    "params (treatment ÷ reference)", "MACs (treatment ÷ reference)", "published Δ pp (source)",
    "verdict on the published Δ (p raw→adjusted)",
)


def _chosen(comparison: Comparison) -> str:
    """Δ by the interval rule 5 chose, and which (why, when it is not the paired one)."""
    if comparison.method is DifferenceMethod.NONE:
        return "—"
    paired = comparison.method is DifferenceMethod.PAIRED
    why = "paired" if paired else f"Welch: {comparison.n_pairs} pairs < {MIN_PAIRS}"
    if comparison.spread_negligible:
        return f"{comparison.interval.estimate:+.2f}, no interval: spread < {NEGLIGIBLE_SPREAD_PP} pp ({why})"
    return f"{_interval_text(comparison.interval)} ({why})"


def comparison_rows(report: Report) -> list[list[str]]:
    """Our Δ per comparison (the chosen one flagged where the rows' seeds ran differently), and the published Δs."""
    return [[
        c.difference, str(c.n_pairs), _with_flag(_chosen(c), c.provenance_flag),
        _interval_text(c.paired), _interval_text(c.welch),
        f"{_seeds(c.treatment_seeds)}; {_seeds(c.reference_seeds)}",
        "—" if c.seeds_needed is None else str(c.seeds_needed), _ratio(c.params_ratio), _ratio(c.macs_ratio),
        "; ".join(f"{claim.delta:+.2f} ({claim.source})" for claim in c.claims) or "—",
        "; ".join(verdict_phrase(claim.judgement) for claim in c.claims) or "—",
    ] for c in report.comparisons]


def provenance_lines(report: Report) -> list[str]:
    """What produced the report's seeds, under the answer: one line when every row ran alike, else one per row
    (a mixed row flagged); none for a report.json from before provenance was recorded."""
    known = [row for row in report.rows if row.provenance is not None]
    if not known:
        return []
    merged = Provenance.merged([row.provenance for row in known if row.provenance is not None])
    if not merged.mixed:
        return [f"Provenance: every done seed ran with {merged.describe()}" + (
            f" ({merged.flag})." if merged.flag else ".")]
    return [f"Provenance differs within the report ({', '.join(merged.mixed)}); per row:", *(
        f"{row.label}: {row.provenance.describe()}" + (f" {row.provenance.flag}" if row.provenance.flag else "")
        for row in known if row.provenance is not None)]


def multiplicity_line(report: Report) -> str:
    """Under the answer: that its verdicts are adjusted, and over how many."""
    return (f"Verdicts are Holm-adjusted over the report's {report.family_size} tested judgements (raw → adjusted p "
            "beside each; the tables say more).")


def verdict_rules(report: Report) -> str:
    """The verdicts in two sentences, with the report's margins and adjustment: the tables' intros say it."""
    return (f"Consistent: our seeds place ours − published within the margin (±{LEVEL_MARGIN_PP:g} pp for an "
            f"accuracy, the Δ's own size but at least ±{DIFFERENCE_MARGIN_FLOOR_PP:g} pp for a published Δ) by an "
            "equivalence test; not consistent: the difference test rejects 0 and equivalence fails; inconclusive: "
            "neither decides (with the seeds that would decide it, or why none can); not comparable: the published "
            f"recipe differs from the row's (how, beside it), no test. {report.multiplicity}")


def text_tables(report: Report) -> list[Table]:
    """The report's tables as text: the rows, the published numbers beside them and the comparisons (the last two
    when there are any), the ablation curves, and the context."""
    tables = [Table(
        "Rows", "CIFAR-10 test accuracy (%): mean ± sample std [95% t-interval of the mean] over the seeds that "
        f"are done; the seeds the observed spread needs for a ±{report.target_halfwidth_pp:g} pp interval (the "
        "target).", TABLE_COLUMNS, table_rows(report), terminal=(0, 1, 2, 3, 4, 6, 7, 8), per_row=True)]
    if published := published_rows(report):
        tables.append(Table(
            "Published numbers", "Each published number is judged by the method its kind calls for (named in the "
            "tests); ours − paper uses our final accuracy, the kind every published number is. "
            f"{verdict_rules(report)}", PUBLISHED_COLUMNS, published,
            grouped=True, terminal=(0, 1, 2, 3, 4, 5, 6), per_row=True))
    if report.comparisons:
        tables.append(Table(
            "Comparisons", "Δ = treatment − reference, in percentage points of CIFAR-10 test accuracy, paired by "
            f"seed (the same seed gives both rows the same batches) from {MIN_PAIRS} pairs on, else Welch's "
            "interval on all seeds: the rule is fixed before the data (with 2 pairs the paired t has 1 df); both "
            "intervals are in the files. "
            "Failed and diverged seeds are named: Δ is over the seeds that survived. A published Δ (two single "
            "runs) is judged against ours, unpaired.", COMPARISON_COLUMNS, comparison_rows(report),
            terminal=(0, 1, 2, 5, 6, 9, 10), per_row=True))
    tables += [ablation_table(ablation) for ablation in report.ablations]
    if context := context_rows(report):
        tables.append(Table(
            "Context: the pruning baselines of the published table", "Published numbers of pruned networks we do "
            "not train, beside our row of the network each compresses; not judged.", CONTEXT_COLUMNS, context))
    return tables


def ablation_table(ablation: AblationCurve) -> Table:
    """A published ablation curve beside ours: the baseline first, then one line per option value."""
    symbol = ABLATION_SYMBOLS.get(ablation.option, ablation.option)
    rows = []
    if baseline := ablation.baseline:
        rows.append([f"{baseline.model} (no Ghost)", baseline.label or "not in this sweep", str(baseline.n),
                     _with_flag(_pct(baseline), baseline.provenance_flag), _millions(baseline.params, 2),
                     _millions(baseline.macs, 1),
                     "—" if baseline.paper_test_acc is None else f"{baseline.paper_test_acc:.1f}",
                     _millions(baseline.paper_params, 1), _millions(baseline.paper_macs, 0), "—", "—", "—"])
    reference_value = model_options(ablation.model)[ablation.option]
    for point in ablation.points:
        paper = point.paper_test_acc
        rows.append([
            f"{symbol}={point.value}", point.label or "not in this sweep", str(point.n),
            _with_flag(_pct(point), point.provenance_flag),
            _millions(point.params, 2), _millions(point.macs, 1), "—" if paper is None else f"{paper:.1f}",
            _millions(point.paper_params, 1), _millions(point.paper_macs, 0), _signed(point.ours_minus_paper),
            point.verdict_phrase or "—",
            "reference" if point.value == reference_value else _ablation_difference(point.difference),
        ])
    return Table(
        f"Ablation: {symbol} on {ablation.model}", f"{ablation.source} {ablation.where}: our final test "
        "accuracy (mean ± std [95% CI]) at each value beside the published one, judged as in the published-numbers "
        f"table; the baseline first. The paper's differences are claims too: each value's Δ against {symbol}="
        f"{reference_value} (ours by the comparisons' rule, paired from {MIN_PAIRS} pairs; the paper's of two single "
        "runs), judged unpaired as a published Δ. The plot 'ablations' draws the same.",
        (*ABLATION_COLUMNS, f"Δ vs {symbol}={reference_value} (ours / paper) — verdict"), rows,
        terminal=(0, 2, 3, 4, 5, 6, 9, 10, 11))


def _ablation_difference(difference: JudgedAblationDifference | None) -> str:
    """`-0.20 [-0.41, +0.01], p=0.06 (paired) / -0.2 — consistent at ±0.20 pp (...)`: ours (by the method rule 5
    chose) / the paper's — the verdict, one table cell."""
    if difference is None:
        return "—"
    how = {DifferenceMethod.PAIRED: "paired", DifferenceMethod.WELCH: "Welch"}.get(difference.method)
    ours = _interval_text(difference.ours)
    if difference.ours is not None and difference.spread_negligible:
        ours = f"{difference.ours.estimate:+.2f} ({how}; no interval: spread < {NEGLIGIBLE_SPREAD_PP} pp)"
    elif how:
        ours += f" ({how})"
    return f"{ours} / {difference.published_delta:+.1f} — {verdict_phrase(difference.judgement)}"


ABLATION_COLUMNS = (
    "value", "row", "seeds", "final test % mean ± std [95% CI]", "params", "MACs", "published test %",
    "published params", "published MACs", "ours − paper (pp)", "verdict",
)
CONTEXT_COLUMNS = ("method", "compresses", "published params", "published MACs", "published test %",
                   "ours: the uncompressed network, final test %")


def context_rows(report: Report) -> list[list[str]]:
    """The published pruning baselines of every model the report has a row of."""
    first_row: dict[str, RowSummary] = {}
    for row in report.rows:
        first_row.setdefault(row.model, row)
    return [[ref.method, ref.base_model, _millions(ref.params, 2), _millions(ref.macs, 0), f"{ref.test_acc:.1f}",
             f"{first_row[ref.base_model].label}: {_pct(first_row[ref.base_model].final_test_acc)}"]
            for ref in CONTEXT if ref.base_model in first_row]


def report_notes(report: Report) -> list[str]:
    """How params and MACs are counted, the rows' notes, their published numbers' notes (a count that differs from
    the printed one among them), then the comparisons' lost seeds, each led by what it is about."""
    notes = [f"Counts (params, MACs) follow the papers' convention: {COUNT_CONVENTION}"] if report.rows else []
    notes += [f"{row.label}: {note}" for row in report.rows for note in row.notes]
    notes += [f"{row.label}, {ref.source}: {note}" for row in report.rows for ref in row.references
              for note in ref.notes]
    return notes + [f"{c.difference}: {c.lost_note}" for c in report.comparisons if c.lost_note]


def extension_lines(report: Report) -> list[str]:
    """How n was chosen: one line per `ghostsweep extend`, oldest first."""
    return [time.strftime("%Y-%m-%d", time.gmtime(e["at"])) + f": {e['note']}" for e in report.extensions]
