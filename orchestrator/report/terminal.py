"""What `ghostsweep report` prints: the answer, then the tables, as a rich renderable (rich is imported when one
is made). The files hold the plots, notes and sources."""

from __future__ import annotations

import re
import textwrap
from typing import Any

from ghostsweep.orchestrator.report.decisions import Verdict
from ghostsweep.orchestrator.report.model import Report
from ghostsweep.orchestrator.report.tables import (
    NUMBER,
    VERDICT,
    VERDICT_STYLES,
    Table,
    multiplicity_line,
    provenance_lines,
    text_tables,
)

# Labels come from sweep.json or W&B, anyone's to edit: a control character (a newline, an escape sequence) would
# move the cursor or restyle the terminal. rich's Text never reads markup; titles and captions are escaped.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
TERMINAL_ROWS = 40  # report rows the terminal's per-row tables show by default (`report --rows`); 0: all


def terminal_report(report: Report, rows: int = TERMINAL_ROWS) -> Any:
    """The answer and the tables of rows and comparisons show their first `rows` entries (0: all; 500 rows of a
    10⁴-trial sweep are for the files) and say how many more the files have."""
    from rich.console import Group
    from rich.text import Text

    parts: list[Any] = [Text(f"Reproduction report: {_printable(report.title)}", style="bold"), Text(),
                        Text("The answer", style="bold underline")]
    if not report.comparisons:
        parts.append(Text("No comparison yet: no two rows differ in one factor with seeds done."))
    for comparison in report.comparisons[:rows or None]:
        parts.append(Text("• ").append_text(_styled(comparison.sentence, comparison.difference)))
    if rows and len(report.comparisons) > rows:
        parts.append(_more(len(report.comparisons) - rows))
    if report.family_size:
        parts.append(Text(multiplicity_line(report), style="dim"))
    parts += [Text(line, style="yellow" if "⚠" in line or "differs" in line else "dim")
              for line in provenance_lines(report)]
    for table in text_tables(report):
        lines, left_out = _first_rows(table, rows)
        parts += [Text(), _rich_table(table, lines)]
        if left_out:
            parts.append(_more(left_out))
    return Group(*parts)


def _printable(text: str) -> str:
    """The text with each control character shown as one that is not."""
    return CONTROL_CHARACTERS.sub("\N{REPLACEMENT CHARACTER}", text)


def _styled(text: str, label: str = "") -> Any:
    """The text with its leading `label` in bold and its verdict words coloured (`VERDICT_STYLES`)."""
    from rich.text import Text

    text, label = _printable(text), _printable(label)
    out = Text.assemble((label, "bold"), text.removeprefix(label))
    for match in VERDICT.finditer(out.plain):
        out.stylize(VERDICT_STYLES[Verdict(match[1])], match.start(1), match.end(1))
    return out


def _rich_table(table: Table, lines: list[list[str]]) -> Any:
    """`lines` of the table, in the columns the terminal shows; a column of numbers never wraps."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table as RichTable
    from rich.text import Text

    caption = table.intro + (" Some columns are left out here: report.md and report.html have them all."
                             if table.terminal else "")
    out = RichTable(title=escape(_printable(table.title)), caption=escape(caption), box=box.SIMPLE_HEAD,
                    show_edge=False, title_justify="left", caption_justify="left", title_style="bold underline",
                    header_style="bold")
    shown = table.terminal or range(len(table.columns))
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
        first = Text("" if repeated else _printable(cells[0]), style="bold")
        out.add_row(first, *(_styled(cells[j]) for j in shown[1:]), end_section=last)
    return out


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
