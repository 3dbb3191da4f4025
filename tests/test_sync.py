"""`ghostsweep sync`: real offline runs of real tiny trials, pushed by wandb's own `wandb sync` to a stand-in W&B
server on loopback, then the pending W&B Report; idempotent, a grown run pushed again, a failed run named.

The stand-in does not speak W&B's artifact protocol, which the report run's logged tables need: the report run is
pushed through the real `wandb sync` only in the push-replaced test's hand-over (tested: it is handed over, not that
a server accepts it).

No W&B server runs here. `StandInServer` is a few lines of HTTP on 127.0.0.1 that answer what `wandb sync` asks
(GraphQL UpsertBucket and CreateRunFiles, the file stream, the file uploads) and record every request, with
WANDB_BASE_URL pointed at it: the runs go through wandb's real sync machinery, not a mock of it. The Report is
saved through `RecordedWandbApi` (tests/test_wandb_report.py), the recorded stand-in of the GraphQL API it uses.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from test_trial_helpers import REPO, result, train_process
from test_wandb_report import RecordedWandbApi
from wandb_workspaces.reports.v2 import interface

from ghostsweep.orchestrator.cli import main
from ghostsweep.orchestrator.cli import sync as sync_command
from ghostsweep.orchestrator.report.wandb_report import PENDING_FILE, PUBLISHED_FILE
from ghostsweep.orchestrator.spec.sweepspec import parse_spec
from ghostsweep.orchestrator.sweepdir import cache
from ghostsweep.orchestrator.sweepdir.directory import SweepDir
from ghostsweep.trials.trialdir import TrialStatus

FAKE_KEY = "local-" + "0" * 40  # wandb wants a key to send; the stand-in takes any


class StandInServer(ThreadingHTTPServer):
    """What `wandb sync` talks to, answering as W&B does just enough for a run to be pushed; records requests."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, str, dict[str, Any]]] = []  # (method, path, GraphQL variables)
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def upserted_runs(self) -> list[str]:
        """The run ids `wandb sync` created or updated, in order (each run upserts more than once)."""
        return [variables["name"] for method, path, variables in self.requests
                if path == "/graphql" and "name" in variables and "project" in variables]


class _Handler(BaseHTTPRequestHandler):
    server: StandInServer

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        request = json.loads(body) if body.startswith(b"{") else {}
        query, variables = request.get("query", ""), request.get("variables") or {}
        with self.server.lock:
            self.server.requests.append((self.command, self.path, variables))
        data: dict[str, Any] = {}
        if "UpsertBucket" in query:
            name, project = variables.get("name") or variables.get("id"), variables.get("project") or "ghostsweep"
            data = {"upsertBucket": {"inserted": True, "bucket": {
                "id": f"id-{name}", "name": name, "displayName": name, "description": "", "config": "{}",
                "sweepName": None, "historyLineCount": 0,
                "project": {"id": "p1", "name": project, "entity": {"id": "e1", "name": "lab"}}}}}
        elif "CreateRunFiles" in query:
            data = {"createRunFiles": {"runID": variables["run"], "uploadHeaders": [], "files": [
                {"name": name, "uploadUrl": f"{self.server.url}/upload/{name}"} for name in variables["files"]]}}
        elif query:
            data = {"viewer": {"id": "v", "entity": "lab", "username": "u", "flags": "{}",
                               "teams": {"edges": []}}, "serverInfo": {"features": []}}
        out = json.dumps({"data": data} if query else {}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_POST = do_PUT = do_GET = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> Iterator[StandInServer]:
    server = StandInServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    for key in [key for key in os.environ if key.startswith("WANDB_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("WANDB_BASE_URL", server.url)
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setenv("WANDB_SILENT", "true")
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def offline_sweep(cifar10_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two real tiny trials in W&B offline mode, and `report --wandb` offline: three offline runs and a pending
    Report, as compute nodes without internet leave them."""
    root = tmp_path_factory.mktemp("offline") / "sweep"
    spec = parse_spec({"name": "tiny-sync", "seeds": 2, "grids": [{"model": ["resnet8"]}],
                       "recipe": {"iterations": 4, "eval_interval": 2, "batch_size": 32},
                       "data": {"val_size": 100, "test_size": 100},
                       "wandb": {"mode": "offline", "project": "ghostsweep-test"}})
    sweep = SweepDir(root)
    sweep.materialize(spec)
    for trial_dir in map(sweep.trial_dir, sweep.trial_ids()):
        completed = train_process("--config", trial_dir / "config.json", "--data-dir", cifar10_dir, "--out",
                                  trial_dir, cwd=root.parent)
        assert completed.returncode == 0, completed.stderr
    environment = {key: os.environ.pop(key) for key in list(os.environ) if key.startswith("WANDB_")}
    os.environ["WANDB_SILENT"] = "true"
    try:
        assert main(["report", str(root), "--wandb", "--rows", "0"]) == 0
    finally:
        os.environ.pop("WANDB_SILENT")
        os.environ.update(environment)
    assert (root / PENDING_FILE).exists()
    return root


def run_ids(sweep: Path) -> dict[str, str]:
    """Each offline run folder (relative to the sweep) and its W&B run id."""
    return {str(path.relative_to(sweep)): path.name.rsplit("-", 1)[1] for path in sorted(sweep.rglob("offline-run-*"))}


def test_sync_pushes_every_run_once_then_the_report(
        offline_sweep: Path, stand_in: StandInServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    os.system(f"cp -a {offline_sweep} {sweep}")  # noqa: S605  (a copy keeps the module's sweep unsynced)
    # The report run logs tables, which `wandb sync` uploads as artifacts: the stand-in does not speak W&B's
    # artifact protocol, so that run is left out here (the next test hands it to the push with the others).
    shutil.rmtree(sweep / "wandb")
    api = RecordedWandbApi()
    monkeypatch.setattr(interface, "_get_api", lambda: api)
    runs = run_ids(sweep)
    trial_runs = {str(Path(result(SweepDir(sweep).trial_dir(t))["wandb_run_dir"]).relative_to(offline_sweep))
                  for t in SweepDir(sweep).trial_ids()}
    assert len(runs) == 2 and trial_runs == runs.keys()  # the two trials' runs

    assert main(["sync", str(sweep), "--dry-run"]) == 0
    assert stand_in.requests == [] and not (sweep / sync_command.SYNC_RECORD).exists()
    assert sorted(line.split()[2] for line in capsys.readouterr().out.splitlines() if line.endswith("kB)")) == sorted(
        runs)

    assert main(["sync", str(sweep)]) == 0
    out = capsys.readouterr().out
    assert sorted(line.split()[1] for line in out.splitlines() if line.startswith("pushed   ")) == sorted(runs)
    assert set(stand_in.upserted_runs()) == set(runs.values())  # the real `wandb sync` reached the stand-in
    assert any("file_stream" in path for _, path, _ in stand_in.requests)
    assert "pushed 2 run(s), 0 already synced, 0 of running trials left for later, 0 failed" in out
    assert "W&B Report: https://wandb.example/lab/ghostsweep-test/reports/" in out
    assert (sweep / PUBLISHED_FILE).exists() and not (sweep / PENDING_FILE).exists()
    recorded = json.loads((sweep / sync_command.SYNC_RECORD).read_text())["runs"]
    assert recorded.keys() == runs.keys() and all(set(stamp) == {"size", "mtime"} for stamp in recorded.values())

    seen = len(stand_in.requests)
    assert main(["sync", str(sweep)]) == 0  # nothing new: nothing pushed, nothing asked
    assert "pushed 0 run(s), 2 already synced" in capsys.readouterr().out and len(stand_in.requests) == seen

    assert not (REPO / "wandb").exists() and not (Path.cwd() / "wandb").exists()  # wandb's logs stay in the sweep
    grown = next(iter(sorted(trial_runs)))
    log = next((sweep / grown).glob("run-*.wandb"))
    os.utime(log, (log.stat().st_atime, log.stat().st_mtime + 10))  # as a resumed trial appending to it
    assert main(["sync", str(sweep)]) == 0
    out = capsys.readouterr().out
    assert [line.split()[1] for line in out.splitlines() if line.startswith("pushed   ")] == [grown]
    assert stand_in.upserted_runs()[-1] == runs[grown]


def test_sync_hands_every_run_to_the_push_names_failures_and_retries_only_them(
        offline_sweep: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    """With the push replaced (it is what runs `wandb sync`): exactly the sweep's runs are handed to it, a failure
    exits 1 naming the run, and the next sync hands over only that run; a running trial's run waits."""
    sweep = tmp_path / "sweep"
    os.system(f"cp -a {offline_sweep} {sweep}")  # noqa: S605
    (sweep / PENDING_FILE).unlink()
    runs = run_ids(sweep)
    assert len(runs) == 3  # the two trials' runs and the report run
    failing = sorted(runs)[0]
    handed: list[str] = []

    def push(run_dir: Path) -> str | None:
        handed.append(str(run_dir.relative_to(sweep)))
        return "wandb sync exited 1: no route to host" if handed[-1] == failing else None

    monkeypatch.setattr(sync_command, "push_with_wandb_sync", push)
    assert main(["sync", str(sweep)]) == 1
    captured = capsys.readouterr()
    assert sorted(handed) == sorted(runs) and f"FAILED   {failing}: wandb sync exited 1" in captured.out
    assert f"ghostsweep: sync failed for 1: {failing}" in captured.err
    handed.clear()
    monkeypatch.setattr(sync_command, "push_with_wandb_sync", lambda run_dir: handed.append(str(run_dir)) or None)
    assert main(["sync", str(sweep)]) == 0 and handed == [str(sweep / failing)]

    first = SweepDir(sweep).trial_ids()[0]
    folder = str(SweepDir(sweep).trial_dir(first).relative_to(sweep))
    grown = next(key for key in sorted(runs) if key.startswith(folder))
    log = next((sweep / grown).glob("run-*.wandb"))
    os.utime(log, (log.stat().st_atime, log.stat().st_mtime + 10))  # it grew, but its trial runs again
    original = cache.read_states
    monkeypatch.setattr(cache, "read_states", lambda sweep_dir: [
        dataclasses.replace(state, state=TrialStatus.RUNNING) if state.trial_id == first else state
        for state in original(sweep_dir)])
    handed.clear()
    assert main(["sync", str(sweep)]) == 0 and handed == []
    out = capsys.readouterr().out
    assert f"later    {grown}: its trial is still running" in out and "1 of running trials left for later" in out

    # --watch: syncs again until the trial has settled, then pushes its run and stops.
    passes = iter([True, True, False])  # running for two passes, then settled
    monkeypatch.setattr(sync_command, "WATCH_INTERVAL_S", 0.0)
    monkeypatch.setattr(cache, "read_states", lambda sweep_dir: [
        dataclasses.replace(state, state=TrialStatus.RUNNING) if state.trial_id == first and next(passes) else state
        for state in original(sweep_dir)])
    assert main(["sync", str(sweep), "--watch"]) == 0 and handed == [str(sweep / grown)]
    out = capsys.readouterr().out
    assert out.count("its trial is still running") == 2 and out.count(f"pushed   {grown}") == 1
