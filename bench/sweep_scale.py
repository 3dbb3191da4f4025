"""Scale check: `plan`, `status` and `report` over a synthetic sweep of 1,000 trials (target: < 2 s each).

    python bench/sweep_scale.py [--trials-dir DIR]

Builds the sweep directory with the real spec and sweep-directory code, fakes each trial's files (70% done
with 32 eval rows, 10% failed, 10% running, 10% queued under a dead local job), then times each command's
work in-process, and the whole CLI command (interpreter start and imports included) in a subprocess.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

REPO = Path(__file__).resolve().parents[1]

from ghostsweep.orchestrator.monitor.status import render  # noqa: E402
from ghostsweep.orchestrator.report.build import build_report  # noqa: E402
from ghostsweep.orchestrator.report.files import write_report  # noqa: E402
from ghostsweep.orchestrator.report.records import records_from_sweep  # noqa: E402
from ghostsweep.orchestrator.spec.plan import print_plan  # noqa: E402
from ghostsweep.orchestrator.spec.sweepspec import load_spec  # noqa: E402
from ghostsweep.orchestrator.submission.sweep import collect_states  # noqa: E402
from ghostsweep.orchestrator.sweepdir.directory import SweepDir  # noqa: E402
from ghostsweep.trials.trialdir import LEASE_FILE, atomic_write_json  # noqa: E402

SPEC = """
name: scale
grids:
  - model: [resnet20, ghost_resnet20]
    recipe.lr: [{lrs}]
seeds: 20
recipe: {{iterations: 64000, eval_interval: 2000}}
"""


def fake_trial_files(trial_dir: Path, index: int, seed: int) -> None:
    now = time.time()
    kind = (("done",) * 7 + ("failed", "running", "queued"))[index % 10]
    if kind != "running":
        dead_job = f"local:{socket.gethostname()}:999999999"
        atomic_write_json(trial_dir / "queued.json", {"backend": "local", "job_id": dead_job,
                                                      "submitted_at": now - 60, "attempt": 1})
    if kind == "done":
        rows = [{"iteration": i * 2000, "lr": 0.1, "train_loss": 0.5, "train_acc": 90.0,
                 "val_acc": 60 + i + seed * 0.1, "images_per_s": 6000.0, "elapsed_s": i * 40.0}
                for i in range(1, 33)]
        rows[-1]["test_acc"] = 92.0 + seed * 0.05
        (trial_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        atomic_write_json(trial_dir / "result.json", {
            "status": "done", "reason": None, "final_test_acc": 92.0 + seed * 0.05, "best_val_test_acc": 92.1,
            "params": 272474, "macs": 41 * 10**6, "wall_time_s": 1300.0, "device": "NVIDIA H200",
            "world_size": 1,
        })
    elif kind == "failed":
        atomic_write_json(trial_dir / "result.json", {"status": "failed", "reason": "diverged at iter 7"})
    elif kind == "running":
        atomic_write_json(trial_dir / LEASE_FILE, {"host": "node1", "pid": 1, "acquired_at": now,
                                                   "heartbeat_at": now, "token": "x"})
        atomic_write_json(trial_dir / "progress.json", {"iteration": 30_000, "iterations": 64_000,
                                                        "images_per_s": 6000.0, "updated_at": now})


def timed(label: str, work) -> None:
    """Wall time, and CPU time (this process plus finished children): on a shared machine CPU time is the
    figure that does not depend on the other users' load."""
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    work()
    wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
    print(f"{label:44} wall {wall:6.2f} s   cpu {cpu:6.2f} s   load {os.getloadavg()[0]:.1f}", flush=True)


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials-dir", type=Path, help="keep the synthetic sweep here (default: a temp dir)")
    args = parser.parse_args()
    root = args.trials_dir or Path(tempfile.mkdtemp(prefix="ghostsweep-scale-"))
    spec_path = root / "scale.yaml"
    root.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(SPEC.format(lrs=", ".join(f"{0.05 + 0.002 * i:.3f}" for i in range(25))))
    spec = load_spec(spec_path)
    sweep = SweepDir(root / "sweep")
    sweep.materialize(spec)
    for index, trial in enumerate(spec.trials):
        fake_trial_files(sweep.trial_dir(trial.trial_id()), index, trial.seed)
    print(f"{len(spec.trials)} trials in {sweep.root}")
    null = Console(file=io.StringIO(), width=200)

    def status() -> None:
        states, warnings = collect_states(sweep)
        null.print(render(states, sweep.index(), warnings, show_all=True))

    def report() -> None:
        write_report(build_report(*records_from_sweep(sweep.root)), sweep.root)

    timed("plan   (in-process: spec, ids, table)", lambda: print_plan(load_spec(spec_path), sweep.root, null))
    timed("status (in-process: 1,000 trials, --all)", status)
    timed("report (in-process: md, json, html, 2 plots)", report)
    env = dict(os.environ)
    for command in (["plan", str(spec_path), "--out", str(sweep.root)], ["status", str(sweep.root), "--all"],
                    ["report", str(sweep.root)]):
        timed(f"ghostsweep {command[0]} (CLI, imports included)", lambda c=command: subprocess.run(
            [sys.executable, "-m", "ghostsweep.orchestrator.cli", *c], env=env, check=True, capture_output=True))


if __name__ == "__main__":
    main()
