"""`ghostsweep sync`: push a sweep's offline W&B runs and its pending W&B Report from a machine with internet.

Compute nodes often cannot reach W&B: trials run in offline mode and leave their runs in each trial folder
(TRIAL/wandb/offline-run-*), `report --wandb` leaves the report run (SWEEP_DIR/wandb/offline-run-*) and the Report's
definition (wandb-report.pending.json). `sync`, run on a login node, pushes each run with wandb's own `wandb sync`
(one subprocess per run folder, so that one bad run fails alone and is named), then publishes the Report.

What was pushed is recorded in SWEEP_DIR/wandb-sync.json with the size and mtime of each run's log, so a second
`sync` pushes nothing and a run that grew since (a resumed trial) is pushed again. Runs of trials still running
are left for a later `sync` (`--watch` waits for them): a log being written is pushed once it is whole. The API key
is wandb's own (WANDB_API_KEY or `wandb login`); the server is WANDB_BASE_URL's (default: wandb's).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ghostsweep.orchestrator.sweepdir.directory import SweepDir, linked_folder
from ghostsweep.trials.files import read_json

SYNC_RECORD = "wandb-sync.json"
WATCH_INTERVAL_S = 60.0
PUSH_TIMEOUT_S = 1800.0
UNSETTLED = ("queued", "running")  # a trial in these states may still append to its run's log
# `wandb sync` as its console script runs it, with this interpreter's wandb; --include-synced because our record,
# not wandb's marker, decides what is pushed again (a run that grew).
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


def push_with_wandb_sync(run_dir: Path) -> str | None:
    """Push one offline run folder with `wandb sync`; None when it worked, else why not (its last line)."""
    try:
        # run in the folder holding the run's wandb/, where `wandb sync` leaves its debug log beside the runs
        completed = subprocess.run([sys.executable, "-c", WANDB_CLI, "sync", "--include-synced", str(run_dir)],
                                   cwd=run_dir.parent.parent, capture_output=True, text=True,
                                   timeout=PUSH_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return f"wandb sync did not finish within {PUSH_TIMEOUT_S:.0f} s"
    if completed.returncode == 0:
        return None
    lines = [line for line in (completed.stderr + completed.stdout).splitlines() if line.strip()]
    return f"wandb sync exited {completed.returncode}: {lines[-1].strip() if lines else 'no output'}"


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


def sync_once(sweep: SweepDir, push: Callable[[Path], str | None], dry_run: bool = False) -> tuple[list[str], bool]:
    """One pass: push every run that is new or grew and whose trial has settled, record each as it is pushed,
    then publish the pending Report. Returns the runs that failed and whether trials are still running."""
    from ghostsweep.orchestrator.report.wandb_report import PENDING_FILE, publish
    from ghostsweep.orchestrator.sweepdir.cache import read_states

    unsettled = {state.trial_id for state in read_states(sweep) if str(state.state) in UNSETTLED}
    pushed = read_record(sweep)
    counts = {"pushed": 0, "already": 0, "running": 0}
    failed = []
    for run in offline_runs(sweep):
        key = run.key(sweep)
        if pushed.get(key) == run.stamp():
            counts["already"] += 1
            continue
        if run.owner in unsettled:
            counts["running"] += 1
            print(f"later    {key}: its trial is still running", flush=True)
            continue
        if dry_run:
            counts["pushed"] += 1
            print(f"would push {key} ({run.size / 1e3:.0f} kB)", flush=True)
            continue
        started = time.monotonic()
        problem = push(run.path)
        if problem is None:
            pushed[key] = run.stamp()
            write_record(sweep, pushed)  # kept at once: an interrupted sync does not push it again
            counts["pushed"] += 1
            print(f"pushed   {key} ({run.size / 1e3:.0f} kB, {time.monotonic() - started:.1f} s)", flush=True)
        else:
            failed.append(key)
            print(f"FAILED   {key}: {problem}", flush=True)
    verb = "would push" if dry_run else "pushed"
    print(f"{sweep.root}: {verb} {counts['pushed']} run(s), {counts['already']} already synced, "
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
