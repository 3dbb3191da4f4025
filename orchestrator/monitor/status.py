"""`ghostsweep status`: counts per state, per-trial progress and ETA, failure reasons."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rich.cells import chop_cells
from rich.console import Console, ConsoleOptions, Group
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from ghostsweep.orchestrator.sweepdir.directory import SweepIndex, TrialEntry
from ghostsweep.orchestrator.sweepdir.state import TrialState
from ghostsweep.trials.provenance import UNKNOWN
from ghostsweep.trials.trialdir import TrialStatus

QUIET = (TrialStatus.DONE, TrialStatus.PENDING, TrialStatus.QUEUED)  # no table row without --all
COLUMNS = ("trial", "state", "progress", "ETA", "job", "node", "final / reason")
# A reason, node or job id comes from a trial's files, anyone's to edit: a control character (an escape sequence)
# would restyle the terminal, retitle its window or move its cursor, so each is shown as one that is not (as the
# report shows labels: orchestrator/report/terminal.py).
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_TABLE_ROWS = 200  # more rows are printed as plain aligned lines (_plain_lines)


def eta_seconds(state: TrialState, trial: TrialEntry) -> float | None:
    """Remaining seconds at the trial's current speed, from its heartbeat."""
    progress = state.progress
    if state.state != TrialStatus.RUNNING or progress is None or not progress.images_per_s:
        return None
    remaining = progress.iterations - progress.iteration
    return max(0.0, remaining * trial.batch_size / progress.images_per_s)


def summarize(states: list[TrialState], index: SweepIndex) -> dict[str, Any]:
    """Machine-readable status: counts and one record per trial."""
    counts = Counter(s.state for s in states)
    trials: list[dict[str, Any]] = []
    for state in states:
        iteration = None if state.progress is None else state.progress.iteration
        if state.state == TrialStatus.DONE and state.result is not None and state.result.iterations is not None:
            iteration = state.result.iterations  # the last heartbeat may predate the final iterations
        trials.append({
            "trial_id": state.trial_id, "state": state.state, "reason": state.reason, "job_id": state.job_id,
            "node": state.node, "attempt": state.attempt,
            "iteration": iteration,
            "iterations": index.trials[state.trial_id].iterations,
            "eta_s": eta_seconds(state, index.trials[state.trial_id]),
            "final_test_acc": state.result.final_test_acc if state.state == TrialStatus.DONE else None,
            "final_val_acc": state.result.final_val_acc if state.state == TrialStatus.DONE else None,
        })
    return {"name": index.name, "as_of": time.time(), "counts": {s: counts.get(s, 0) for s in TrialStatus},
            "trials": trials, "eta_s": sweep_eta_seconds(states, trials), "code_versions": code_versions(states)}


def code_versions(states: list[TrialState]) -> dict[str, int]:
    """How many done trials each code version produced, most first: more than one and the report flags the rows
    that mix them (`rerun --stale` reruns the others)."""
    versions = Counter((s.result.code_version if s.result is not None else None) or UNKNOWN
                       for s in states if s.state == TrialStatus.DONE)
    return dict(versions.most_common())


def sweep_eta_seconds(states: list[TrialState], trials: list[dict[str, Any]]) -> float | None:
    """Rough time to finish: the running trials, then waves of queued ones as long as done trials took."""
    running_etas = [t["eta_s"] for t in trials if t["eta_s"] is not None]
    walls = [s.result.wall_time_s for s in states
             if s.state == TrialStatus.DONE and s.result is not None and s.result.wall_time_s]
    if not running_etas:
        return None
    queued = sum(s.state == TrialStatus.QUEUED for s in states)
    if queued and not walls:
        return None
    waves = -(-queued // len(running_etas))
    return max(running_etas) + waves * (sum(walls) / len(walls) if walls else 0.0)


def render(states: list[TrialState], index: SweepIndex, warnings: list[str], show_all: bool) -> Group:
    """Counts line, then a table of the trials worth looking at (all with `show_all`)."""
    summary = summarize(states, index)
    counts = "  ".join(f"{state} {n}" for state, n in summary["counts"].items() if n)
    header = Text(f"{index.name}: {len(states)} trials  {counts}")
    if summary["eta_s"] is not None:
        waiting = " and the queued ones at the running parallelism" if summary["counts"][TrialStatus.QUEUED] else ""
        header.append(f"  ETA {duration(summary['eta_s'])} (the running trials{waiting})")
    shown = [t for t in summary["trials"] if show_all or t["state"] not in QUIET]
    rows = [_cells(trial) for trial in shown]
    parts: list[Any] = [header, *(Text(f"warning: {w}", style="yellow") for w in warnings)]
    if versions := summary["code_versions"]:
        parts.append(Text("done by code version: " + ", ".join(f"{v} {n}" for v, n in versions.items()),
                          style="yellow" if len(versions) > 1 else ""))
    if len(rows) > MAX_TABLE_ROWS:
        parts.append(_plain_lines(rows))
    elif rows:
        table = Table(box=None, pad_edge=False)
        for column in COLUMNS:
            table.add_column(column, no_wrap=column != COLUMNS[-1], overflow="fold")
        for cells in rows:
            table.add_row(*map(Text, cells))  # Text, not markup: a reason may hold "[/x]" (a path, a traceback)
        parts.append(table)
    parts.append(Text(time.strftime("as of %Y-%m-%d %H:%M:%S", time.localtime()), style="dim"))
    return Group(*parts)


def _cells(trial: dict[str, Any]) -> tuple[str, ...]:
    """One trial's row: id, state, progress, ETA, job, node, final numbers or reason."""
    progress = "" if trial["iteration"] is None else f"{trial['iteration']}/{trial['iterations']}"
    eta = "" if trial["eta_s"] is None else duration(trial["eta_s"])
    outcome = final_numbers(trial["final_test_acc"], trial["final_val_acc"]) or trial["reason"] or ""
    return tuple(map(printable, (trial["trial_id"], trial["state"], progress, eta, trial["job_id"] or "",
                                 trial["node"] or "", outcome)))


def printable(text: str) -> str:
    """The text with each control character shown as one that is not."""
    return CONTROL_CHARACTERS.sub("\N{REPLACEMENT CHARACTER}", text)


def _plain_lines(rows: list[tuple[str, ...]]) -> PlainLines:
    """The table as plain aligned lines, ids whole: a rich table of 10,000 rows takes seconds to lay out."""
    rows = [COLUMNS, *rows]
    widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS) - 1)]
    return PlainLines(["  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)),
                                  row[-1]]).rstrip() for row in rows])


@dataclass(frozen=True)
class PlainLines:
    """Lines printed as they are; one wider than the console is folded onto the next line, never cut."""

    lines: list[str]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Segment]:
        width = max(1, options.max_width)
        for line in self.lines:
            for piece in chop_cells(line, width) or [""]:
                yield Segment(piece)
                yield Segment.line()


def final_numbers(test_acc: float | None, val_acc: float | None) -> str:
    """A done trial's final accuracies, as `status` and `submit` show them."""
    return "  ".join(f"{name} {value:.2f}%" for name, value in (("test", test_acc), ("val", val_acc))
                     if value is not None)


def duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
