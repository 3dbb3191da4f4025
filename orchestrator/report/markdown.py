"""report.md: the answer, the tables, the extensions, notes and sources, as Markdown."""

from __future__ import annotations

from ghostsweep.orchestrator.report.model import Report
from ghostsweep.orchestrator.report.tables import (
    Table,
    extension_lines,
    multiplicity_line,
    provenance_lines,
    report_notes,
    text_tables,
)


def markdown_table(table: Table) -> list[str]:
    lines = [f"## {table.title}", "", table.intro, "", "| " + " | ".join(table.columns) + " |",
             "|" + "---|" * len(table.columns)]
    return lines + ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in table.rows] + [""]


def to_markdown(report: Report) -> str:
    lines = [f"# Reproduction report: {report.title}", ""]
    if answer := report.answer:
        lines += ["## The answer", "", *(f"- {sentence}" for sentence in answer), ""]
        if report.family_size:
            lines += [multiplicity_line(report), ""]
    if provenance := provenance_lines(report):
        lines += [provenance[0], *(f"- {line}" for line in provenance[1:]), ""]
    for table in text_tables(report):
        lines += markdown_table(table)
    if extensions := extension_lines(report):
        lines += ["Seeds added (`ghostsweep extend`):", *(f"- {line}" for line in extensions), ""]
    if notes := report_notes(report):
        lines += ["Notes:", *(f"- {note}" for note in notes), ""]
    lines += ["Sources:", *(f"- **{key}**: {s.title}; {s.where}" for key, s in report.sources.items())]
    return "\n".join(lines) + "\n"
