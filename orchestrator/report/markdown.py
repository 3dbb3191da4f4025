"""report.md: the answer, the tables, the extensions, notes and sources, as Markdown."""

from __future__ import annotations

import re

from ghostsweep.orchestrator.report.model import Report
from ghostsweep.orchestrator.report.tables import (
    Table,
    extension_lines,
    multiplicity_line,
    provenance_lines,
    report_notes,
    text_tables,
)

# Labels come from sweep.json or W&B, anyone's to edit: in report.md a control character (a newline) would end a
# table row or list item, and `<tag`, `</`, `<!`, `<?` or `&name;` would be raw HTML (our own text has none).
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]+")
RAW_HTML = re.compile(r"<(?=[A-Za-z/!?])|&(?=#?\w+;)")


def _text(text: str) -> str:
    """Text of the report as Markdown shows it, as it is: one line, no raw HTML."""
    return RAW_HTML.sub(lambda match: "&lt;" if match[0] == "<" else "&amp;", CONTROL_CHARACTERS.sub(" ", text))


def markdown_table(table: Table) -> list[str]:
    lines = [f"## {_text(table.title)}", "", table.intro, "", "| " + " | ".join(table.columns) + " |",
             "|" + "---|" * len(table.columns)]
    cells_of = (" | ".join(_text(cell).replace("|", "\\|") for cell in cells) for cells in table.rows)
    return lines + [f"| {cells} |" for cells in cells_of] + [""]


def to_markdown(report: Report) -> str:
    lines = [f"# Reproduction report: {_text(report.title)}", ""]
    if answer := report.answer:
        lines += ["## The answer", "", *(f"- {_text(sentence)}" for sentence in answer), ""]
        if report.family_size:
            lines += [multiplicity_line(report), ""]
    if provenance := provenance_lines(report):
        lines += [provenance[0], *(f"- {line}" for line in provenance[1:]), ""]
    for table in text_tables(report):
        lines += markdown_table(table)
    if extensions := extension_lines(report):
        lines += ["Seeds added (`ghostsweep extend`):", *(f"- {_text(line)}" for line in extensions), ""]
    if notes := report_notes(report):
        lines += ["Notes:", *(f"- {_text(note)}" for note in notes), ""]
    lines += ["Sources:", *(f"- **{key}**: {s.title}; {s.where}" for key, s in report.sources.items())]
    return "\n".join(lines) + "\n"
