"""`ghostsweep sync`: real offline runs of real tiny trials and of `report --wandb`, pushed by wandb's own `wandb sync`
to a stand-in W&B server on loopback, then the pending W&B Report saved through wandb's own API client to the same
stand-in; idempotent, a grown run pushed again, a refused run named, a run that breaks `wandb sync` failing alone.

No W&B server runs here. `StandInServer` (tests/wandb_stand_in.py) is a few lines of HTTP on 127.0.0.1 that answer
what `wandb sync` and wandb-workspaces ask (runs, file uploads, the report run's table artifacts, the Report's
upsertView) and record every request, with WANDB_BASE_URL pointed at it: the runs and the Report go through wandb's
real machinery, not a mock of it. It checks nothing a real server would.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import wandb
from test_trial_helpers import REPO, result, train_process
from wandb_stand_in import ENTITY, REPORT_ID, StandInServer

from ghostsweep.orchestrator.cli import main
from ghostsweep.orchestrator.cli import sync as sync_command
from ghostsweep.orchestrator.report.wandb_report import PENDING_FILE, PUBLISHED_FILE
from ghostsweep.orchestrator.spec.sweepspec import parse_spec
from ghostsweep.orchestrator.sweepdir import cache
from ghostsweep.orchestrator.sweepdir.directory import SweepDir
from ghostsweep.trials.trialdir import TrialStatus

FAKE_KEY = "local-" + "0" * 40  # wandb wants a key to send; the stand-in takes any


def serve(server: StandInServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[StandInServer]:
    """Serve `server` on loopback with wandb pointed at it (and at nothing else of this machine's W&B settings).

    `sync` saves the Report in this process, through wandb's in-process service and login: they are torn down
    before and after, with the variable naming the service (WANDB_SERVICE), so that none outlives its test."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    forget_wandb_service()
    for key in [key for key in os.environ if key.startswith("WANDB_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("WANDB_BASE_URL", server.url)
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setenv("WANDB_SILENT", "true")
    yield server
    forget_wandb_service()
    server.shutdown()
    server.server_close()


def forget_wandb_service() -> None:
    wandb.teardown()
    os.environ.pop("WANDB_SERVICE", None)


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> Iterator[StandInServer]:
    yield from serve(StandInServer(), monkeypatch)


@pytest.fixture
def stand_in_without_artifacts(monkeypatch: pytest.MonkeyPatch) -> Iterator[StandInServer]:
    """A server that fails every artifact call: wandb-core's `wandb sync` then crashes on the report run."""
    yield from serve(StandInServer(artifacts=False), monkeypatch)


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


def copy_of(sweep: Path, tmp_path: Path) -> Path:
    """A copy of the module's sweep (which stays unsynced), beside which the tests run `sync` by a relative path."""
    copy = tmp_path / "sweep"
    os.system(f"cp -a {sweep} {copy}")  # noqa: S605
    return copy


def pushed_lines(out: str) -> list[str]:
    return sorted(line.split()[1] for line in out.splitlines() if line.startswith("pushed   "))


def test_sync_pushes_every_run_once_then_the_report(
        offline_sweep: Path, stand_in: StandInServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """As the README has it: `ghostsweep sync runs/NAME`, a path relative to where the user stands."""
    sweep = copy_of(offline_sweep, tmp_path)
    monkeypatch.chdir(tmp_path)
    runs = run_ids(sweep)
    trial_runs = {str(Path(result(SweepDir(sweep).trial_dir(t))["wandb_run_dir"]).relative_to(offline_sweep))
                  for t in SweepDir(sweep).trial_ids()}
    (report_run,) = runs.keys() - trial_runs
    assert len(runs) == 3 and report_run.startswith("wandb/offline-run-")  # two trials' runs and the report run

    assert main(["sync", "sweep", "--dry-run"]) == 0
    assert stand_in.requests == [] and not (sweep / sync_command.SYNC_RECORD).exists()
    assert sorted(line.split()[2] for line in capsys.readouterr().out.splitlines() if line.endswith("kB)")) == sorted(
        runs)

    assert main(["sync", "sweep"]) == 0
    out = capsys.readouterr().out
    assert pushed_lines(out) == sorted(runs)
    assert set(stand_in.upserted_runs()) == set(runs.values())  # the real `wandb sync` reached the stand-in
    assert any("file_stream" in path for _, path, _, _ in stand_in.requests)
    # the report run's rows table, uploaded as W&B uploads a logged table: an artifact, committed
    assert any(artifact["artifactCollectionName"].startswith(f"run-{runs[report_run]}-reportrows")
               for artifact in stand_in.committed_artifacts())
    assert "sweep: pushed 3 run(s), 0 already synced, 0 of running trials left for later, 0 failed" in out
    url = f"{stand_in.url}/{ENTITY}/ghostsweep-test/reports/Reproduction-report:-tiny-sync--{REPORT_ID}"
    assert f"W&B Report: {url}" in out
    assert (sweep / PUBLISHED_FILE).exists() and not (sweep / PENDING_FILE).exists()
    (spec,) = stand_in.views.values()  # saved once, through wandb.Api's own client
    (grid,) = [block for block in json.loads(spec)["blocks"] if block["type"] == "panel-grid"]
    assert grid["metadata"]["runSets"][0]["project"]["name"] == "ghostsweep-test"
    recorded = json.loads((sweep / sync_command.SYNC_RECORD).read_text())["runs"]
    assert recorded.keys() == runs.keys() and all(set(stamp) == {"size", "mtime"} for stamp in recorded.values())

    seen = len(stand_in.requests)
    assert main(["sync", "sweep"]) == 0  # nothing new: nothing pushed, nothing asked
    assert "pushed 0 run(s), 3 already synced" in capsys.readouterr().out
    # (wandb's service may still report its own metrics from the last push)
    assert [path for _, path, _, _ in stand_in.requests[seen:] if path != "/sdk/otel/v1/metrics"] == []

    assert not (REPO / "wandb").exists() and not (tmp_path / "wandb").exists()  # wandb's logs stay in the sweep
    grown = sorted(trial_runs)[0]
    log = next((sweep / grown).glob("run-*.wandb"))
    os.utime(log, (log.stat().st_atime, log.stat().st_mtime + 10))  # as a resumed trial appending to it
    assert main(["sync", "sweep"]) == 0
    assert pushed_lines(capsys.readouterr().out) == [grown]
    assert stand_in.upserted_runs()[-1] == runs[grown]


def test_a_run_the_server_refuses_is_named_though_wandb_sync_exits_0(
        offline_sweep: Path, stand_in: StandInServer, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """`wandb sync` prints the server's refusal and exits 0: the run is FAILED (no marker), not recorded, and the
    next sync pushes only it."""
    sweep = copy_of(offline_sweep, tmp_path)
    (sweep / PENDING_FILE).unlink()
    runs = run_ids(sweep)
    refused = sorted(runs)[0]
    stand_in.refused.add(runs[refused])
    assert main(["sync", str(sweep)]) == 1
    captured = capsys.readouterr()
    assert pushed_lines(captured.out) == sorted(runs.keys() - {refused})
    assert f"FAILED   {refused}: not pushed by wandb sync: wandb: ERROR permission denied" in captured.out
    assert f"ghostsweep: sync failed for 1: {refused}" in captured.err
    assert refused not in json.loads((sweep / sync_command.SYNC_RECORD).read_text())["runs"]
    stand_in.refused.clear()
    assert main(["sync", str(sweep)]) == 0 and pushed_lines(capsys.readouterr().out) == [refused]


def test_a_run_that_breaks_wandb_sync_fails_alone(
        offline_sweep: Path, stand_in_without_artifacts: StandInServer, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    """wandb-core's sync crashes on the report run (its artifacts unanswered), taking the call that pushes every
    run with it: the runs it left are pushed again one call each, so only the report run fails."""
    sweep = copy_of(offline_sweep, tmp_path)
    (sweep / PENDING_FILE).unlink()
    runs = run_ids(sweep)
    (report_run,) = [key for key in runs if key.startswith("wandb/")]
    assert main(["sync", str(sweep)]) == 1
    captured = capsys.readouterr()
    assert pushed_lines(captured.out) == sorted(runs.keys() - {report_run})
    assert f"FAILED   {report_run}: not pushed by wandb sync: panic: " in captured.out
    assert f"ghostsweep: sync failed for 1: {report_run}" in captured.err


def test_a_server_that_never_answers_stops_the_push(
        offline_sweep: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    """wandb retries a silent server for a long time: once no run has been pushed for STALL_TIMEOUT_S, `sync`
    stops `wandb sync` and names every run it left (here a loopback port that takes connections, never answers)."""
    sweep = copy_of(offline_sweep, tmp_path)
    (sweep / PENDING_FILE).unlink()
    silent = socket.create_server(("127.0.0.1", 0))
    for key in [key for key in os.environ if key.startswith("WANDB_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{silent.getsockname()[1]}")
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setattr(sync_command, "STALL_TIMEOUT_S", 3.0)
    try:
        assert main(["sync", str(sweep)]) == 1
    finally:
        silent.close()
    captured = capsys.readouterr()
    assert captured.out.count("wandb sync pushed nothing for 3 s (is the W&B server reachable?)") == 3
    assert "ghostsweep: sync failed for 3: " in captured.err and not (sweep / sync_command.SYNC_RECORD).exists()


def test_sync_hands_every_run_to_the_push_names_failures_and_retries_only_them(
        offline_sweep: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    """With the push replaced (it is what runs `wandb sync`): exactly the sweep's runs are handed to it, in one call,
    a failure exits 1 naming the run, and the next sync hands over only that run; a running trial's run waits."""
    sweep = copy_of(offline_sweep, tmp_path)
    (sweep / PENDING_FILE).unlink()
    runs = run_ids(sweep)
    assert len(runs) == 3  # the two trials' runs and the report run
    failing = sorted(runs)[0]
    calls: list[list[str]] = []

    def push(run_dirs: Sequence[Path], cwd: Path, on_pushed: Callable[[Path], None]) -> dict[Path, str]:
        assert cwd == sweep
        calls.append([str(run_dir.relative_to(sweep)) for run_dir in run_dirs])
        for run_dir in run_dirs:
            if str(run_dir.relative_to(sweep)) != failing:
                on_pushed(run_dir)
        return {run_dir: "wandb sync exited 1: no route to host" for run_dir in run_dirs
                if str(run_dir.relative_to(sweep)) == failing}

    monkeypatch.setattr(sync_command, "push_with_wandb_sync", push)
    assert main(["sync", str(sweep)]) == 1
    captured = capsys.readouterr()
    assert len(calls) == 1 and sorted(calls[0]) == sorted(runs)
    assert f"FAILED   {failing}: wandb sync exited 1" in captured.out
    assert f"ghostsweep: sync failed for 1: {failing}" in captured.err
    calls.clear()

    def push_all(run_dirs: Sequence[Path], cwd: Path, on_pushed: Callable[[Path], None]) -> dict[Path, str]:
        calls.append([str(run_dir) for run_dir in run_dirs])
        for run_dir in run_dirs:
            on_pushed(run_dir)
        return {}

    monkeypatch.setattr(sync_command, "push_with_wandb_sync", push_all)
    assert main(["sync", str(sweep)]) == 0 and calls == [[str(sweep / failing)]]

    first = SweepDir(sweep).trial_ids()[0]
    folder = str(SweepDir(sweep).trial_dir(first).relative_to(sweep))
    grown = next(key for key in sorted(runs) if key.startswith(folder))
    log = next((sweep / grown).glob("run-*.wandb"))
    os.utime(log, (log.stat().st_atime, log.stat().st_mtime + 10))  # it grew, but its trial runs again
    original = cache.read_states
    monkeypatch.setattr(cache, "read_states", lambda sweep_dir: [
        dataclasses.replace(state, state=TrialStatus.RUNNING) if state.trial_id == first else state
        for state in original(sweep_dir)])
    calls.clear()
    assert main(["sync", str(sweep)]) == 0 and calls == []
    out = capsys.readouterr().out
    assert f"later    {grown}: its trial is still running" in out and "1 of running trials left for later" in out

    # --watch: syncs again until the trial has settled, then pushes its run and stops.
    passes = iter([True, True, False])  # running for two passes, then settled
    monkeypatch.setattr(sync_command, "WATCH_INTERVAL_S", 0.0)
    monkeypatch.setattr(cache, "read_states", lambda sweep_dir: [
        dataclasses.replace(state, state=TrialStatus.RUNNING) if state.trial_id == first and next(passes) else state
        for state in original(sweep_dir)])
    assert main(["sync", str(sweep), "--watch"]) == 0 and calls == [[str(sweep / grown)]]
    out = capsys.readouterr().out
    assert out.count("its trial is still running") == 2 and out.count(f"pushed   {grown}") == 1
