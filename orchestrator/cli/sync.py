"""`ghostsweep sync`: push a sweep's offline W&B runs and its pending W&B Report from a machine with internet.

Compute nodes often cannot reach W&B: trials run in offline mode and leave their runs in each trial folder
(TRIAL/wandb/offline-run-*), `report --wandb` leaves the report run (SWEEP_DIR/wandb/offline-run-*) and the Report's
definition (wandb-report.pending.json). `sync`, run on a login node, pushes the runs with wandb's own `wandb sync`,
all in one call (wandb pushes several at a time, a resumed trial's folders in order), then publishes the Report.
`wandb sync` exits 0 even when the server refused a run, so a run counts as pushed only once wandb has left its
`.wandb.synced` marker beside the run's log (cleared before the push); runs a call left without one are pushed
again one call each, so that a run that breaks `wandb sync` fails alone and is named.

What was pushed is recorded in SWEEP_DIR/wandb-sync.json with the size and mtime of each run's log, so a second
`sync` pushes nothing and a run that grew since (a resumed trial) is pushed again. Runs of trials still running
are left for a later `sync` (`--watch` waits for them): a log being written is pushed once it is whole. The API key
is wandb's own (WANDB_API_KEY or `wandb login`); the server is WANDB_BASE_URL's (default: wandb's).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ghostsweep.orchestrator.sweepdir.directory import SweepDir, linked_folder
from ghostsweep.trials.files import read_json

SYNC_RECORD = "wandb-sync.json"
WATCH_INTERVAL_S = 60.0
STALL_TIMEOUT_S = 900.0  # a `wandb sync` that pushes no run for this long is stopped (wandb retries a dead server)
POLL_S = 0.5
PARALLEL_PUSHES = 8  # `wandb sync -n`: runs pushed at a time
UNSETTLED = ("queued", "running")  # a trial in these states may still append to its run's log
# `wandb sync` as its console script runs it, with this interpreter's wandb; --include-synced because our record,
# not wandb's marker, decides what is pushed again (a run that grew); the marker only says that this push worked.
WANDB_CLI = "import sys; from wandb.cli.cli import cli; sys.exit(cli())"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    sync = subparsers.add_parser(
        "sync", help="push the sweep's offline W&B runs and its pending W&B Report (run where W&B is reachable)")
    sync.add_argument("sweep_dir", type=Path, metavar="SWEEP_DIR", help="the sweep directory submit wrote")
    sync.add_argument("--watch", action="store_true",
                      help=f"keep syncing every {WATCH_INTERVAL_S:g} s until every trial has settled")
    sync.add_argument("--dry-run", action="store_true", help="say what would be pushed; push and record nothing")
    sync.set_defaults(handler=run)


@dataclass(frozen=True)
class OfflineRun:
    """One offline run folder of the sweep and its log's size and mtime (what says it grew)."""

    path: Path
    owner: str  # the trial id, or "report"
    size: int
    mtime: float

    def key(self, sweep: SweepDir) -> str:
        return str(self.path.relative_to(sweep.root))

    def stamp(self) -> dict[str, float]:
        return {"size": self.size, "mtime": self.mtime}


# Hands runs to `wandb sync`, calls back with each one pushed as soon as it is; returns why each other one was not.
Push = Callable[[Sequence[Path], Path, Callable[[Path], None]], dict[Path, str]]


def synced(run_dir: Path) -> bool:
    """Whether `wandb sync` has pushed every log of the run folder (it leaves RUN.wandb.synced beside each)."""
    logs = list(run_dir.glob("run-*.wandb"))
    return bool(logs) and all(log.with_name(log.name + ".synced").exists() for log in logs)


def wandb_sync_call(run_dirs: Sequence[Path], cwd: Path, on_pushed: Callable[[Path], None]) -> tuple[str, bool]:
    """One `wandb sync` of `run_dirs`, calling `on_pushed` for each run as its marker appears. Returns its output
    and whether it was stopped for pushing nothing in STALL_TIMEOUT_S."""
    pending = list(run_dirs)
    with tempfile.TemporaryFile("w+") as output:
        process = subprocess.Popen(  # noqa: S603  (this interpreter's wandb, our own arguments)
            [sys.executable, "-c", WANDB_CLI, "sync", "--include-synced", "-n", str(PARALLEL_PUSHES),
             *map(str, pending)], cwd=cwd, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={key: value for key, value in os.environ.items() if key != "WANDB_SILENT"})  # its errors: ours
        last_progress, stalled = time.monotonic(), False
        while pending:
            exited = process.poll() is not None
            for run_dir in [run_dir for run_dir in pending if synced(run_dir)]:
                pending.remove(run_dir)
                on_pushed(run_dir)
                last_progress = time.monotonic()
            if exited:
                break
            if time.monotonic() - last_progress > STALL_TIMEOUT_S:
                process.kill()
                stalled = True
                break
            time.sleep(POLL_S)
        process.wait()
        output.seek(0)
        return output.read(), stalled


def why_not_pushed(output: str, run_dir: Path, stalled: bool = False) -> str:
    """Why the run was not pushed: the call was stopped for pushing nothing, else the line of `wandb sync`'s output
    that says so: an error naming its id, else the crash of wandb-core (`panic: `), else the last error, else the
    last line."""
    if stalled:
        return f"wandb sync pushed nothing for {STALL_TIMEOUT_S:.0f} s (is the W&B server reachable?)"
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    run_id = run_dir.name.rsplit("-", 1)[-1]
    errors = [line for line in lines if "error" in line.lower() or line.startswith("panic: ")]
    chosen = (next((line for line in reversed(errors) if run_id in line), None)
              or next((line for line in errors if line.startswith("panic: ")), None)
              or (errors[-1] if errors else None))
    if chosen:
        return f"not pushed by wandb sync: {chosen}"
    return f"wandb sync did not mark it synced (its last line: {lines[-1] if lines else 'none'})"


def push_with_wandb_sync(run_dirs: Sequence[Path], cwd: Path, on_pushed: Callable[[Path], None]) -> dict[Path, str]:
    """Push the run folders with one `wandb sync` (the folders absolute: it runs in `cwd`, where it leaves its debug
    log), then each one it did not push alone; returns why each run still unpushed was not."""
    run_dirs = [run_dir.absolute() for run_dir in run_dirs]
    for log in (marker for run_dir in run_dirs for marker in run_dir.glob("run-*.wandb.synced")):
        log.unlink()
    if not run_dirs:
        return {}
    output, stalled = wandb_sync_call(run_dirs, cwd, on_pushed)
    left = [run_dir for run_dir in run_dirs if not synced(run_dir)]
    if stalled or len(left) < 2:
        return {run_dir: why_not_pushed(output, run_dir, stalled) for run_dir in left}
    failures = {}
    for run_dir in left:  # alone, so that one run breaking `wandb sync` does not keep the others back
        output, stalled = wandb_sync_call([run_dir], cwd, on_pushed)
        if not synced(run_dir):
            failures[run_dir] = why_not_pushed(output, run_dir, stalled)
    return failures


def offline_runs(sweep: SweepDir) -> list[OfflineRun]:
    """Every offline run of the sweep: each trial's (resumed attempts have one folder each, oldest first), then the
    report run's."""
    owners = [(trial_id, sweep.trial_dir(trial_id)) for trial_id in sweep.trial_ids()] + [("report", sweep.root)]
    runs = []
    for owner, folder in owners:
        if (owner != "report" and linked_folder(folder)) or (folder / "wandb").is_symlink():
            continue  # a link may point at anyone's runs: only the sweep's own are pushed
        for path in sorted(run for run in (folder / "wandb").glob("offline-run-*") if not run.is_symlink()):
            logs = [log for log in path.glob("run-*.wandb") if not log.is_symlink()]
            if logs:
                runs.append(OfflineRun(path, owner, sum(log.stat().st_size for log in logs),
                                       max(log.stat().st_mtime for log in logs)))
    return runs


def read_record(sweep: SweepDir) -> dict[str, dict[str, float]]:
    """The runs earlier syncs pushed, with the stamps they had. The sweep folder is anyone's to edit: a record that
    is not what `write_record` writes is ignored, saying so, and every run is pushed again."""
    path = sweep.root / SYNC_RECORD
    try:
        data = read_json(path)
    except (ValueError, OSError) as error:
        data = error
    runs = data.get("runs") if isinstance(data, dict) else None
    if data is not None and not isinstance(runs, dict):
        why = str(data).splitlines()[0][:200] if isinstance(data, Exception) else "not what sync writes"
        print(f"ghostsweep: warning: ignoring {path}: {why}; every run is pushed again", file=sys.stderr)
        return {}
    return runs or {}


def write_record(sweep: SweepDir, pushed: dict[str, dict[str, float]]) -> None:
    from ghostsweep.trials.trialdir import atomic_write_text

    atomic_write_text(sweep.root / SYNC_RECORD, json.dumps({"runs": pushed}, indent=1, sort_keys=True) + "\n")


def sync_once(sweep: SweepDir, push: Push, dry_run: bool = False) -> tuple[list[str], bool]:
    """One pass: push every run that is new or grew and whose trial has settled, record each as it is pushed,
    then publish the pending Report. Returns the runs that failed and whether trials are still running."""
    from ghostsweep.orchestrator.report.wandb_report import PENDING_FILE, publish
    from ghostsweep.orchestrator.sweepdir.cache import read_states

    unsettled = {state.trial_id for state in read_states(sweep) if str(state.state) in UNSETTLED}
    pushed = read_record(sweep)
    counts = {"already": 0, "running": 0, "would push": 0}
    to_push: dict[Path, OfflineRun] = {}
    for run in offline_runs(sweep):
        key = run.key(sweep)
        if pushed.get(key) == run.stamp():
            counts["already"] += 1
        elif run.owner in unsettled:
            counts["running"] += 1
            print(f"later    {key}: its trial is still running", flush=True)
        elif dry_run:
            counts["would push"] += 1
            print(f"would push {key} ({run.size / 1e3:.0f} kB)", flush=True)
        else:
            to_push[run.path.absolute()] = run
    started = time.monotonic()

    def record(run_dir: Path) -> None:
        run = to_push[run_dir]
        pushed[run.key(sweep)] = run.stamp()
        write_record(sweep, pushed)  # kept at once: an interrupted sync does not push it again
        print(f"pushed   {run.key(sweep)} ({run.size / 1e3:.0f} kB, {time.monotonic() - started:.1f} s)", flush=True)

    failures = push(list(to_push), sweep.root.absolute(), record) if to_push else {}
    failed = [to_push[run_dir].key(sweep) for run_dir in to_push if run_dir in failures]
    for run_dir, problem in failures.items():
        print(f"FAILED   {to_push[run_dir].key(sweep)}: {problem}", flush=True)
    verb, count = ("would push", counts["would push"]) if dry_run else ("pushed", len(to_push) - len(failed))
    print(f"{sweep.root}: {verb} {count} run(s), {counts['already']} already synced, "
          f"{counts['running']} of running trials left for later, {len(failed)} failed", flush=True)
    if (sweep.root / PENDING_FILE).exists():
        if dry_run:
            print(f"would publish the W&B Report from {sweep.root / PENDING_FILE}")
        else:
            try:
                print(f"W&B Report: {publish(sweep.root)}", flush=True)
            except Exception as error:  # noqa: BLE001  (the runs are pushed; the Report waits for the next sync)
                failed.append(PENDING_FILE)
                print(f"FAILED   W&B Report: {str(error).splitlines()[0] if str(error) else type(error).__name__}")
    return failed, bool(unsettled)


def run(args: argparse.Namespace) -> int:
    """Exit 1 naming the runs that failed (a later `sync` tries them again), else 0."""
    sweep, push = SweepDir(args.sweep_dir), push_with_wandb_sync
    if not sweep.index_path.exists():
        raise ValueError(f"{sweep.root}: no sweep here (no {sweep.index_path.name})")
    while True:
        failed, running = sync_once(sweep, push, dry_run=args.dry_run)
        if not (args.watch and running) or args.dry_run:
            break
        time.sleep(WATCH_INTERVAL_S)
    if failed:
        print(f"ghostsweep: sync failed for {len(failed)}: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
