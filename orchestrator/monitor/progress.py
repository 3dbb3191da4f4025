"""What `submit` shows while its trials run: one bar of iterations over every trial (rate, ETA), a line per
running trial (iteration, loss and accuracy, node), and job ids as soon as the backend has them.

Read from the trials' own files (progress.json heartbeats, metrics.jsonl rows, results), so it is the same for
every backend, in a thread beside the backend's blocking `submit`. On a terminal it is a live display; when
stdout is a file or a pipe it prints plain lines instead: events (job, start, evaluation, end) and a total
every `PLAIN_TOTAL_EVERY_S`.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ghostsweep.orchestrator.backends.base import Submission
from ghostsweep.orchestrator.monitor.status import duration, final_numbers, printable
from ghostsweep.orchestrator.sweepdir.directory import SweepDir
from ghostsweep.orchestrator.sweepdir.state import TrialState, read_state
from ghostsweep.trials.trialdir import METRICS_FILE, TrialStatus, read_metrics

REFRESH_S = 2.0
RATE_WINDOW_S = 600.0  # the rate (so the ETA) over the last 10 minutes: evaluations and start-ups included
PLAIN_TOTAL_EVERY_S = 60.0
STAMP_MARGIN_S = 60.0  # a trial folder changed less than this ago is re-read at every refresh


@dataclass
class TrialView:
    """One trial as the display last saw it."""

    trial_id: str
    iterations: int
    iteration: int = 0
    state: TrialStatus = TrialStatus.QUEUED
    node: str | None = None
    row: dict[str, Any] | None = None  # the latest metrics.jsonl row
    detail: str = ""  # a done trial's final accuracy, a failed one's reason
    stamp: int = -1  # the trial folder's mtime (ns) when last read: every file in it is replaced by a rename


@dataclass
class SweepTotals:
    """Iterations over every trial and their recent rate."""

    done: int
    total: int
    rate: float | None  # iterations per second over RATE_WINDOW_S; None before any progress
    counts: collections.Counter[TrialStatus]

    @property
    def eta_s(self) -> float | None:
        return (self.total - self.done) / self.rate if self.rate else None

    def describe(self) -> str:
        percent = 100.0 * self.done / self.total if self.total else 100.0
        rate = f"{self.rate:.2f} it/s" if self.rate else "– it/s"
        eta = f"ETA {duration(self.eta_s)}" if self.eta_s is not None and self.done < self.total else ""
        trials = ", ".join(f"{self.counts[state]} {state}" for state in TrialStatus if self.counts[state])
        return "  ".join(part for part in (f"{self.done:,}/{self.total:,} iterations ({percent:.0f}%)", rate, eta,
                                           f"trials: {trials}") if part)


@dataclass
class SubmitProgress:
    """Use as a context manager around the backend's `submit`; `job_started` is the backend's job-id hook."""

    sweep: SweepDir
    trial_ids: Sequence[str]
    live: bool = True  # False for a backend that returns once queued: job ids only
    console: Console = field(default_factory=Console)
    views: dict[str, TrialView] = field(init=False)
    _jobs: queue.SimpleQueue[tuple[list[str], str]] = field(init=False, default_factory=queue.SimpleQueue)
    _reported: set[str] = field(init=False, default_factory=set)
    _samples: collections.deque[tuple[float, int]] = field(init=False, default_factory=collections.deque)
    _stop: threading.Event = field(init=False, default_factory=threading.Event)
    _last_plain_total: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        trials = self.sweep.index().trials
        self.views = {t: TrialView(t, trials[t].iterations) for t in self.trial_ids}

    def job_started(self, trial_ids: Sequence[str], job_id: str) -> None:
        """Thread-safe: the display prints it at its next refresh."""
        self._jobs.put((list(trial_ids), job_id))

    def __enter__(self) -> SubmitProgress:
        self._refresh()  # the starting point: resumed trials' iterations are not counted as this run's rate
        target = self._run_live if self.live and self.console.is_terminal else self._run_plain
        self._thread = threading.Thread(target=target, name="submit-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        if self.live and self.console.is_terminal:  # the live display is gone: its last totals stay
            self.console.print(self.totals().describe(), markup=False, highlight=False)

    def print_jobs(self, submissions: Sequence[Submission]) -> None:
        """Job ids the backend returned without reporting them through the hook (e.g. a whole array at once)."""
        for submission in submissions:
            if submission.trial_id not in self._reported:
                print(f"  {submission.trial_id} -> {submission.job_id}", flush=True)

    def _run_live(self) -> None:
        with Live(self._render(), console=self.console, transient=True, auto_refresh=False) as live:
            while True:
                stopping = self._stop.wait(REFRESH_S)
                for line in self._drain_jobs():
                    live.console.print(line, markup=False, highlight=False)
                for line in self._refresh():
                    if not line.startswith(" "):  # starts and ends stay on screen; evaluations show in the table
                        live.console.print(line, markup=False, highlight=False)
                live.update(self._render(), refresh=True)
                if stopping:
                    return

    def _run_plain(self) -> None:
        while True:
            stopping = self._stop.wait(REFRESH_S)
            lines = self._drain_jobs() + (self._refresh() if self.live else [])
            now = time.monotonic()
            if self.live and (stopping or now - self._last_plain_total >= PLAIN_TOTAL_EVERY_S):
                lines.append(self.totals().describe())
                self._last_plain_total = now
            for line in lines:
                print(line, flush=True)
            if stopping:
                return

    def _drain_jobs(self) -> list[str]:
        lines = []
        while not self._jobs.empty():
            trial_ids, job_id = self._jobs.get()
            self._reported.update(trial_ids)
            lines += [f"  {trial_id} -> {job_id}" for trial_id in trial_ids]
        return lines

    def _refresh(self) -> list[str]:
        """Re-read every unfinished trial's files; one line per event since the last refresh."""
        events = []
        for view in self.views.values():
            trial_dir = self.sweep.trial_dir(view.trial_id)
            try:
                stamp = trial_dir.stat().st_mtime_ns
                if view.state == TrialStatus.DONE or self._unchanged(view, stamp):
                    continue
                state = read_state(trial_dir)
                rows = read_metrics(trial_dir / METRICS_FILE) if state.progress else []
            except (OSError, ValueError):  # a file mid-rewrite by a foreign writer, or corrupt: next time
                continue
            view.stamp = stamp
            events += self._update(view, state, rows[-1] if rows else None)
        self._samples.append((time.monotonic(), sum(v.iteration for v in self.views.values())))
        while self._samples[-1][0] - self._samples[0][0] > RATE_WINDOW_S:
            self._samples.popleft()
        return events

    @staticmethod
    def _unchanged(view: TrialView, stamp: int) -> bool:
        """Nothing to re-read: the folder's mtime is the one last read and old enough that a write in the same
        clock tick (coarse on some shared filesystems) is ruled out. A running trial is always read: its lease
        goes stale without a write."""
        settled = stamp < (time.time() - STAMP_MARGIN_S) * 1e9
        return stamp == view.stamp and settled and view.state != TrialStatus.RUNNING

    @staticmethod
    def _update(view: TrialView, state: TrialState, row: dict[str, Any] | None) -> list[str]:
        events = []
        view.node = printable(state.node) if state.node else view.node
        if state.state == TrialStatus.DONE and state.result is not None:
            view.iteration = view.iterations
            view.detail = final_numbers(state.result.final_test_acc, state.result.final_val_acc)
        elif state.progress is not None:
            view.iteration = max(state.progress.iteration, row["iteration"] if row else 0)
        if state.state in (TrialStatus.FAILED, TrialStatus.PREEMPTED):
            view.detail = printable(state.reason or "")
        if state.state != view.state:
            if state.state == TrialStatus.RUNNING:
                events.append(f"started  {view.trial_id} on {view.node or '?'}")
            elif state.state in (TrialStatus.DONE, TrialStatus.FAILED, TrialStatus.PREEMPTED):
                events.append(f"{state.state:9}{view.trial_id}: {view.detail}".rstrip(": "))
            view.state = state.state
        if row is not None and row != view.row:
            view.row = row
            if state.state == TrialStatus.RUNNING:
                events.append(f"  {view.trial_id}: {describe_row(row, view.iterations)}")
        return events

    def totals(self) -> SweepTotals:
        rate = None
        if len(self._samples) > 1:
            (start, first), (end, last) = self._samples[0], self._samples[-1]
            rate = (last - first) / (end - start) if last > first and end > start else None
        views = self.views.values()
        return SweepTotals(sum(v.iteration for v in views), sum(v.iterations for v in views), rate,
                           collections.Counter(v.state for v in views))

    def _render(self) -> Group:
        totals = self.totals()
        bar = Table.grid(padding=(0, 1))
        bar.add_row(ProgressBar(total=max(totals.total, 1), completed=totals.done, width=40),
                    Text(totals.describe()))
        running = [v for v in self.views.values() if v.state == TrialStatus.RUNNING]
        table = Table(box=None, pad_edge=False, show_header=bool(running))
        for column in ("running trial", "iteration", "loss / accuracy", "node"):
            table.add_column(column, no_wrap=True)
        room = max(1, self.console.height - 4)
        for view in running[:room]:
            numbers = describe_row(view.row, view.iterations, with_iteration=False) if view.row else ""
            iteration = f"{view.iteration}/{view.iterations}"
            if view.iteration == view.iterations:
                iteration += " (final evaluation)"
            table.add_row(escape(view.trial_id), iteration, numbers,
                          escape(view.node or ""))
        parts: list[Any] = [bar, table]
        if len(running) > room:
            parts.append(Text(f"… and {len(running) - room} more running"))
        return Group(*parts)


def describe_row(row: dict[str, Any], iterations: int, with_iteration: bool = True) -> str:
    """A metrics.jsonl row in words: iteration, train loss and accuracy, validation and test accuracy."""
    parts = [f"iteration {row.get('iteration')}/{iterations}"] if with_iteration else []
    if row.get("train_loss") is not None:
        parts.append(f"loss {row['train_loss']:.3f}")
    parts += [f"{name} {row[key]:.1f}%" for key, name in (("train_acc", "train"), ("val_acc", "val"),
                                                        ("test_acc", "test")) if row.get(key) is not None]
    return "  ".join(parts)

