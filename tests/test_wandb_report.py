"""The sweep's W&B Report (`report --wandb`): built offline from the typed report, checked against wandb-workspaces'
own models, written into the sweep folder where no server answers, and saved in place through the API.

No W&B server can run here: the definition is built and round-tripped without one (the test fails any API call),
and the calls that save it go to `RecordedWandbApi`, a stand-in for `wandb.Api` that records every GraphQL request
wandb-workspaces makes and answers as the server would. Nothing here proves the real server accepts the spec.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from test_report_wandb import SWEEP, sweep  # noqa: F401  (the module-scoped sweep fixture)
from wandb_workspaces.reports.v2 import interface, internal

from ghostsweep.orchestrator.cli import main
from ghostsweep.orchestrator.report.build import build_report
from ghostsweep.orchestrator.report.records import records_from_sweep
from ghostsweep.orchestrator.report.wandb_io import LOGGED_FILE
from ghostsweep.orchestrator.report.wandb_report import (
    PENDING_FILE,
    PUBLISHED_FILE,
    definition_json,
    load_definition,
    publish,
    report_definition,
    write_pending,
)

ENTITY, REPORT_ID, PROJECT_ID = "lab", "VmlldzoxMjM0NQ==", "UHJvamVjdDo0Mg=="


class RecordedWandbApi:
    """`wandb.Api` as wandb-workspaces uses it to save a Report: the project list, GraphQL through the service API
    (`_service_api.execute_graphql`, `app_url`); every request recorded. upsertView makes a new view only when it
    is given no id, as the server does."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.default_entity = ENTITY
        self._service_api = SimpleNamespace(execute_graphql=self._execute, app_url="https://wandb.example")
        self.views = 0

    def projects(self, entity: str) -> list[SimpleNamespace]:
        self.requests.append(("projects", {"entity": entity}))
        return [SimpleNamespace(name="ghostsweep")]

    def create_project(self, project: str, entity: str) -> None:
        self.requests.append(("createProject", {"project": project, "entity": entity}))

    def _execute(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        name = "upsertView" if "upsertView" in query else "projectInternalId" if "internalId" in query else query
        self.requests.append((name, variables))
        if name == "projectInternalId":
            return {"project": {"internalId": PROJECT_ID}}
        if name == "upsertView":
            self.views += variables["id"] is None
            return {"upsertView": {"view": {"id": variables["id"] or REPORT_ID, "spec": variables["spec"]}}}
        raise AssertionError(f"unexpected query {query[:80]}")


def no_api() -> None:
    raise AssertionError("building the definition must not ask the W&B API")


@pytest.fixture
def report_dir(sweep: Path, tmp_path: Path) -> Path:  # noqa: F811
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy)
    return copy


def test_definition_is_built_offline_and_round_trips_through_wandb_workspaces(
        report_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interface, "_get_api", no_api)
    report = build_report(*records_from_sweep(report_dir))
    definition = report_definition(report, report_dir / "report.html")
    text = definition_json(definition)
    model = internal.ReportViewspec.model_validate_json(text)  # wandb-workspaces' own model accepts it
    assert definition_json(load_definition(text)) == text  # and gives it back unchanged
    kinds = [type(block).__name__ for block in definition.blocks]
    assert kinds[:7] == ["H1", "H2", "MarkdownBlock", "P", "H2", "P", "PanelGrid"]  # the answer first
    answer = definition.blocks[2].text
    assert [line.removeprefix("- ") for line in answer.splitlines()[:len(report.answer)]] == report.answer
    assert str(report_dir / "report.html") in "".join(map(str, definition.blocks[3].text))  # the source of truth
    grid = definition.blocks[6]
    (runs,) = grid.runsets
    assert (runs.entity, runs.project, runs.groupby) == ("", "", ["group"])  # the project: filled when published
    assert runs.filters == f"Config('sweep') = \"{SWEEP}\" and JobType = 'trial'"  # trial runs of this sweep
    grouping = json.loads(text)["spec"]["blocks"][7]["metadata"]["runSets"][0]["grouping"]
    assert grouping == [{"section": "run", "name": "group"}]  # W&B's group: the report row
    assert [(type(p).__name__, getattr(p, "y", None) or p.metrics, p.groupby_aggfunc, p.groupby_rangefunc)
            for p in grid.panels] == [
        ("LinePlot", ["test_acc"], "mean", "stddev"), ("LinePlot", ["val_acc"], "mean", "stddev"),
        ("LinePlot", ["train_loss"], "mean", "stddev"), ("BarPlot", ["final_test_acc"], "mean", "stddev")]
    tables = [block.text for block in definition.blocks[7:] if type(block).__name__ == "MarkdownBlock"]
    titles = [text.splitlines()[0] for text in tables if text.startswith("## ")]
    assert titles[:4] == ["## Rows", "## Published numbers", "## Comparisons", "## Claims"]
    published, comparisons = tables[1], tables[2]
    assert "the tests" in published and "judged by the method" in published  # each verdict with its method
    assert "(paired)" in comparisons or "(Welch" in comparisons
    assert "the tests" in tables[3] and tables[3].count("\n| ") >= 2  # each claim with its test
    assert model.project.name == "ghostsweep" and model.display_name == f"Reproduction report: {SWEEP}"


def test_offline_report_writes_the_pending_definition(report_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    """Two lines say where the report run and the Report wait, and nothing else about W&B: not wandb's own run
    summary, nor its advice to `wandb sync` each run by hand."""
    for key in ("WANDB_DIR", "WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_SILENT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setattr(interface, "_get_api", no_api)
    assert main(["report", str(report_dir), "--wandb", "--rows", "0"]) == 0
    captured = capfd.readouterr()
    out = captured.out
    (run_dir,) = (report_dir / "wandb").glob("offline-run-*")
    assert f"logged to W&B: {run_dir}" in out
    assert (f"W&B Report: offline mode, its definition is in {report_dir / PENDING_FILE}; "
            f"`ghostsweep sync {report_dir}` publishes it") in out
    assert [line for line in (out + captured.err).splitlines() if line.startswith("wandb:")] == []
    internal.ReportViewspec.model_validate_json((report_dir / PENDING_FILE).read_text())
    assert not (report_dir / PUBLISHED_FILE).exists()


def test_an_unchanged_sweep_logs_no_second_report_run(report_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """`report --wandb` twice on an unchanged sweep: one report run, the second command says where it is. A record
    that is not `report`'s own, another W&B mode, or a sweep that changed, logs a new one."""
    for key in ("WANDB_DIR", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setattr(interface, "_get_api", no_api)

    def report_runs() -> list[Path]:
        assert main(["report", str(report_dir), "--wandb"]) == 0
        return sorted((report_dir / "wandb").glob("offline-run-*"))

    (first,) = report_runs()
    capsys.readouterr()
    assert report_runs() == [first]
    assert f"logged to W&B before: {first} (the sweep is unchanged since; no new report run)" in capsys.readouterr().out
    (report_dir / LOGGED_FILE).write_text('{"inputs_sha256": 1}')
    assert len(report_runs()) == 2
    monkeypatch.setenv("WANDB_MODE", "dryrun")  # W&B's own mode changed: another destination
    assert len(report_runs()) == 3
    monkeypatch.setenv("WANDB_MODE", "offline")
    done = next(path for path in sorted(report_dir.glob("trials/*/result.json"))
                if json.loads(path.read_text())["status"] == "done")
    done.unlink()  # the sweep changes: that trial is to be run again
    assert len(report_runs()) == 4


def test_publish_saves_through_the_recorded_api_and_updates_in_place(
        report_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Through the stand-in API (no server here): the first publish creates the Report, the next one passes its id
    (kept in wandb-report.json), so W&B replaces it; one Report per sweep. wandb-workspaces' own "Saved report"
    line is not passed on: the caller's line names the URL."""
    api = RecordedWandbApi()
    monkeypatch.setattr(interface, "_get_api", lambda: api)
    report = build_report(*records_from_sweep(report_dir))
    write_pending(report, report_dir / "report.html", report_dir)
    url = publish(report_dir)
    assert url == f"https://wandb.example/{ENTITY}/ghostsweep/reports/Reproduction-report:-{SWEEP}--{REPORT_ID}"
    assert "Saved report" not in capsys.readouterr().err
    kept = json.loads((report_dir / PUBLISHED_FILE).read_text())
    assert (kept["id"], kept["url"], kept["entity"], kept["project"]) == (REPORT_ID, url, ENTITY, "ghostsweep")
    assert not (report_dir / PENDING_FILE).exists() and publish(report_dir) is None  # nothing pending
    (lookup,) = [variables for name, variables in api.requests if name == "projectInternalId"]
    assert lookup == {"entityName": ENTITY, "projectName": "ghostsweep"}
    (first,) = [variables for name, variables in api.requests if name == "upsertView"]
    assert first["id"] is None and (first["entityName"], first["projectName"]) == (ENTITY, "ghostsweep")
    spec = json.loads(first["spec"])
    grids = [block for block in spec["blocks"] if block["type"] == "panel-grid"]
    assert [runset["project"] for runset in grids[0]["metadata"]["runSets"]] == [
        {"entityName": ENTITY, "name": "ghostsweep", "id": PROJECT_ID}]

    write_pending(report, report_dir / "report.html", report_dir)  # `report --wandb` again
    assert publish(report_dir) == url
    updates = [variables for name, variables in api.requests if name == "upsertView"]
    assert [update["id"] for update in updates] == [None, REPORT_ID] and api.views == 1
