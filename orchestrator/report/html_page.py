"""report.html: one self-contained page, the answer first, then the plots (inline SVG), the tables, notes and
sources."""

from __future__ import annotations

import html
import time

from ghostsweep.orchestrator.report.model import Report
from ghostsweep.orchestrator.report.plots import Plot
from ghostsweep.orchestrator.report.tables import (
    NUMBER,
    VERDICT,
    Table,
    extension_lines,
    multiplicity_line,
    provenance_lines,
    report_notes,
    text_tables,
)

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
.ok{color:#1a7f37;font-weight:600}.off{color:#cf222e;font-weight:600}.unsure{color:#9a6700;font-weight:600}
.na{color:#57606a;font-weight:600}
"""


VERDICT_CLASSES = {"consistent": "ok", "not consistent": "off", "inconclusive": "unsure", "not comparable": "na"}


def _verdicts(text: str) -> str:
    """Escaped text with its verdict words coloured: green when consistent, red when not, amber when
    inconclusive, grey when not comparable."""
    return VERDICT.sub(lambda m: f'<span class="{VERDICT_CLASSES[m[1]]}">{m[1]}</span>', html.escape(text))


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


def _provenance_html(report: Report) -> str:
    """`tables.provenance_lines`: the first as a paragraph, the per-row ones as a list."""
    lines = provenance_lines(report)
    if not lines:
        return ""
    rows = "".join(f"<li>{html.escape(line)}</li>" for line in lines[1:])
    return f"<p class=intro>{html.escape(lines[0])}</p>" + (f"<ul>{rows}</ul>" if rows else "")


def _answer_html(report: Report) -> str:
    """The answer sentences, grouped by what the comparison varies, each led by its Δ label in bold."""
    if not report.comparisons:
        return "<p>No comparison yet: no two rows differ in one factor with seeds done. The rows are below.</p>"
    groups: dict[str, list[str]] = {}
    for comparison in report.comparisons:
        sentence = comparison.sentence
        label, rest = comparison.difference, sentence.removeprefix(comparison.difference)
        item = f"<b>{html.escape(label)}</b>{_verdicts(rest)}" if rest != sentence else _verdicts(sentence)
        groups.setdefault(comparison.factor, []).append(f"<li>{item}</li>")
    return "".join(  # the paper's question stays open; a long list of other comparisons folds away
        f"<details{' open' if factor == 'model' or len(items) <= 12 else ''}><summary>"
        f"{html.escape(FACTOR_TITLES.get(factor, factor))} ({len(items)})</summary><ul>{''.join(items)}</ul></details>"
        for factor, items in groups.items())


def to_html(report: Report, plots: dict[str, Plot]) -> str:
    """One self-contained page: the answer first, then the plots (inline SVG), the tables, notes and sources."""
    title = html.escape(report.title)
    generated = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(report.generated_at))
    done = sum(row.seeds_done for row in report.rows)
    planned = sum(row.seeds_planned for row in report.rows)
    figures = "".join(f'<figure id="{name}">{plot.svg}<figcaption>{html.escape(plot.caption)}</figcaption></figure>'
                      for name, plot in plots.items())
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in report_notes(report))
    extensions = "".join(f"<li>{html.escape(line)}</li>" for line in extension_lines(report))
    sources = "".join(f"<li><b>{html.escape(key)}</b>: {html.escape(s.title)}; {html.escape(s.where)}</li>"
                      for key, s in report.sources.items())
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>Reproduction report: {title}</title>"
        f"<meta name=viewport content='width=device-width,initial-scale=1'><style>{CSS}</style></head><body><main>"
        f"<h1>Reproduction report: {title}</h1><p class=meta>{len(report.rows)} rows, {done} of {planned} "
        f"trials done, {len(report.comparisons)} comparisons; generated {generated}. CIFAR-10 test accuracy in "
        f"%, differences in percentage points (pp).</p>"
        f"<section class=answer><h2>The answer</h2>{_answer_html(report)}"
        + (f"<p class=intro>{html.escape(multiplicity_line(report))}</p>" if report.family_size else "")
        + _provenance_html(report) + "</section>"
        f"<h2>Plots</h2>{figures}{''.join(_html_table(table) for table in text_tables(report))}"
        + (f"<h2>Seeds added (ghostsweep extend)</h2><ul>{extensions}</ul>" if extensions else "")
        + (f"<h2>Notes</h2><ul>{notes}</ul>" if notes else "")
        + f"<h2>Sources</h2><ul>{sources}</ul></main></body></html>\n"
    )
