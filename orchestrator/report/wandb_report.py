"""The W&B Report of a sweep (`report --wandb`), built with wandb-workspaces' reports API from the typed report.

One Report per sweep, updated in place: its id and URL are kept in SWEEP_DIR/wandb-report.json, and the next save
passes that id, so W&B overwrites the Report instead of making a copy. Its definition is built without a server:
the run set names no project until it is published (wandb-workspaces asks the server for a project's id when a run
set has one), so the whole definition, wandb-workspaces' own model as JSON, is written to
SWEEP_DIR/wandb-report.pending.json first and published from there, at once where a server answers, else by
`ghostsweep sync` on a machine that reaches one. The sweep's files (report.html) stay the source of truth.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

from ghostsweep.orchestrator.report.markdown import markdown_table
from ghostsweep.orchestrator.report.model import Report, verdict_phrase
from ghostsweep.orchestrator.report.tables import (
    Table,
    extension_lines,
    judgement_tests,
    multiplicity_line,
    provenance_lines,
    report_notes,
    text_tables,
)
from ghostsweep.orchestrator.report.wandb_io import report_run_mode
from ghostsweep.trials.files import MAX_JSON_BYTES, MAX_RECORD_BYTES, read_bounded, read_json
from ghostsweep.trials.trialdir import atomic_write_text

PENDING_FILE = "wandb-report.pending.json"
PUBLISHED_FILE = "wandb-report.json"
TRIAL_JOB_TYPE = "trial"
MAX_TITLE = 128  # wandb-workspaces' limit on a Report's title
# The curves each row's seeds draw as a mean with a ±1 std band (W&B groups the run set by the runs' group, which
# is the report row: `sweep/label`), and the summary the final-accuracy panel shows per row.
CURVES = (("test_acc", "test accuracy (%)"), ("val_acc", "validation accuracy (%)"), ("train_loss", "train loss"))
FINAL = "final_test_acc"


def report_definition(report: Report, html: Path) -> Any:
    """The W&B Report of `report` as a wandb-workspaces `Report`, built offline: the run set's entity and project
    are left for `publish` to fill (naming them makes wandb-workspaces ask the server for the project's id)."""
    import wandb_workspaces.reports.v2 as wr

    settings = report.wandb
    title = f"Reproduction report: {report.title}"[:MAX_TITLE]
    answer = [f"- {sentence}" for sentence in report.answer]
    if answer and report.family_size:
        answer += ["", multiplicity_line(report)]
    if provenance := provenance_lines(report):
        answer += [""] * bool(answer) + [provenance[0], *(f"- {line}" for line in provenance[1:])]
    runs = wr.Runset(
        name=f"{report.title}: trials, grouped by report row",
        filters=f"Config('sweep') = {json.dumps(report.title)} and JobType = '{TRIAL_JOB_TYPE}'",
        groupby=["group"],
    )
    panels = [wr.LinePlot(title=f"{name}: mean ± std over each row's seeds", x="Step", y=[metric],
                          groupby_aggfunc="mean", groupby_rangefunc="stddev") for metric, name in CURVES]
    panels.append(wr.BarPlot(title="final test accuracy (%) per row: mean ± std over seeds", metrics=[FINAL],
                             groupby_aggfunc="mean", groupby_rangefunc="stddev"))
    blocks: list[Any] = [
        wr.H1(title),
        wr.H2("The answer"),
        wr.MarkdownBlock("\n".join(answer) or "No answer yet: no row has a finished seed."),
        wr.P(f"The source of truth is the sweep's own report, {html} (with report.md and report.json beside it); "
             "this W&B Report is written from the same numbers by `ghostsweep report --wandb` and replaced in place "
             "on the next call."),
        wr.H2("Learning curves and final accuracy per report row"),
        wr.P("Each report row is one W&B group (sweep/row label) of the sweep's trial runs; every panel draws a "
             "group's mean with a band of ±1 sample std over its seeds."),
        wr.PanelGrid(runsets=[runs], panels=panels),
    ]
    tables = text_tables(report)
    if claims := claims_table(report):
        tables.insert(next((i + 1 for i, table in enumerate(tables) if table.title == "Comparisons"), len(tables)),
                      claims)
    blocks += [wr.MarkdownBlock("\n".join(markdown_table(table)).strip()) for table in tables]
    if extensions := extension_lines(report):
        blocks.append(wr.MarkdownBlock("\n".join(["Seeds added (`ghostsweep extend`):",
                                                  *(f"- {line}" for line in extensions)])))
    if notes := report_notes(report):
        blocks.append(wr.MarkdownBlock("\n".join(["Notes:", *(f"- {note}" for note in notes)])))
    if report.sources:
        blocks.append(wr.MarkdownBlock("\n".join(
            ["Sources:", *(f"- **{key}**: {source.title}; {source.where}" for key, source in report.sources.items())])))
    return wr.Report(project=settings.get("project", "ghostsweep"), entity=settings.get("entity") or "",
                     title=title, description=f"ghostsweep sweep {report.title!r}", blocks=blocks)


def claims_table(report: Report) -> Table | None:
    """The sources' claimed Δs, one line each with the test that judged it (the comparisons table gives only the
    verdicts); None when the report has no claim."""
    rows = [[comparison.difference, claim.source, f"{claim.delta:+.2f}", verdict_phrase(claim.judgement),
             judgement_tests(claim.judgement)] for comparison in report.comparisons for claim in comparison.claims]
    if not rows:
        return None
    return Table("Claims", "Each published Δ (two single runs) judged against ours, unpaired, by the test named "
                 "beside it.", ("Δ = treatment − reference", "source", "published Δ pp", "verdict (p raw→adjusted)",
                                "the tests"), rows)


def definition_json(definition: Any) -> str:
    """The definition as wandb-workspaces' own model (`ReportViewspec`), JSON: what the pending file holds."""
    return definition._to_model().model_dump_json(by_alias=True, exclude_none=True, indent=1)


def load_definition(text: str) -> Any:
    """A pending file's definition, read back through wandb-workspaces' model into its `Report`."""
    import wandb_workspaces.reports.v2 as wr
    from wandb_workspaces.reports.v2 import internal

    return wr.Report._from_model(internal.ReportViewspec.model_validate_json(text))


def write_pending(report: Report, html: Path, sweep_dir: Path) -> Path:
    """Write the Report's definition into the sweep folder, for `publish` now or `sync` later."""
    path = sweep_dir / PENDING_FILE
    atomic_write_text(path, definition_json(report_definition(report, html)))
    return path


def published(sweep_dir: Path) -> dict[str, Any] | None:
    """The sweep's W&B Report as last published (id, url, entity, project, when), or None; None too for a file that
    is not what `publish` writes (the sweep folder is anyone's to edit): the Report is then saved as a new one."""
    try:
        data = read_json(sweep_dir / PUBLISHED_FILE, MAX_RECORD_BYTES)
    except (ValueError, OSError):
        return None
    keys = ("id", "entity", "project")
    return data if isinstance(data, dict) and all(isinstance(data.get(key), str) for key in keys) else None


def publish(sweep_dir: Path) -> str | None:
    """Save the pending definition as the sweep's W&B Report (in place when it was published before) and return its
    URL; None when nothing is pending. The API key is wandb's own (environment or `wandb login`); the server is
    WANDB_BASE_URL's."""
    from wandb_workspaces.reports.v2 import PanelGrid
    from wandb_workspaces.reports.v2.interface import _get_api

    pending = sweep_dir / PENDING_FILE
    if not pending.exists():
        return None
    definition = load_definition((read_bounded(pending, MAX_JSON_BYTES) or b"").decode("utf-8"))
    definition.entity = definition.entity or _get_api().default_entity
    for block in definition.blocks:
        if isinstance(block, PanelGrid):
            for runs in block.runsets:
                runs.entity, runs.project = definition.entity, definition.project
    if (before := published(sweep_dir)) and (before["entity"], before["project"]) == (
            definition.entity, definition.project):
        definition.id = before["id"]
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            definition.save()
    finally:  # all wandb said but its own "Saved report to: URL": our line (`publish_or_defer`, `sync`) says that
        sys.stderr.writelines(line for line in said.getvalue().splitlines(keepends=True)
                              if "Saved report to:" not in line)
    url = definition.url
    atomic_write_text(sweep_dir / PUBLISHED_FILE, json.dumps({
        "id": definition.id, "url": url, "entity": definition.entity, "project": definition.project,
        "published_at": time.time()}, indent=1) + "\n")
    pending.unlink()
    return url


def publish_or_defer(report: Report, html: Path, sweep_dir: Path) -> str:
    """`report --wandb`: write the definition, publish it where a server can answer, and say in one line which."""
    path = write_pending(report, html, sweep_dir)
    if report_run_mode(report) in ("offline", "dryrun"):  # the Report follows its report run
        return f"W&B Report: offline mode, its definition is in {path}; `ghostsweep sync {sweep_dir}` publishes it"
    try:
        return f"W&B Report: {publish(sweep_dir)}"
    except Exception as error:  # noqa: BLE001  (no server, no key: the definition waits for `sync`)
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        return (f"W&B Report: not published ({reason[:160]}); its definition is in {path}; "
                f"`ghostsweep sync {sweep_dir}` publishes it")
