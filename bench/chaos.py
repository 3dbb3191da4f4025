"""The chaos suite: a sweep of real tiny trials (resnet8, real CIFAR-10) under a seeded random schedule of faults,
then proof that nothing was lost.

    python bench/chaos.py --backend local --size 3 --seed 0 --data-dir DIR [--out DIR] [--json FILE]

Faults, drawn by a seeded `random.Random` while trials run: kill -9 of a worker, a burst of SIGUSR2, a second
submitter racing the first, a worker on a simulated second host whose clock is 10 minutes off (and whose machine
identity differs, so no pid shortcut applies to it), a truncated checkpoint or metrics.jsonl, a corrupt
result.json or queued.json, a result.json planted as a FIFO, as a link out of the sweep (to /dev/zero) or as valid
JSON of the wrong types (issue 25: a sweep folder is untrusted input), and on Slurm `scancel` of a trial's job.
(Killing a node's slurmd is left out: on the shared development cluster it would take other people's jobs down
with it.) Between rounds `ghostsweep rerun` repairs
what failed, was preempted or became unreadable, until every trial is done.

At the end: every trial done; each one's metrics, result and final weights bitwise equal to its fault-free run
(the same spec run once without faults); no trial ever had two live holders (`lease.lease_log_overlaps` over each
trial's append-only leases.jsonl, where the harness also logs its kills); the sweep's own files intact. It prints
the faults injected by kind, those survived, and the results lost (must be 0); exit 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

from ghostsweep.orchestrator.sweepdir.lease import append_lease_event, lease_log_overlaps, read_lease, written_here
from ghostsweep.trials.trialdir import (
    CHECKPOINT_FILE,
    METRICS_FILE,
    QUEUED_FILE,
    RESULT_FILE,
    read_lines,
    read_queued,
    read_result,
)

KINDS_EVERYWHERE = ("kill9", "usr2_burst", "racing_submitter", "skewed_host", "truncate_checkpoint",
                    "corrupt_result", "fifo_result", "linked_result", "mistyped_result", "corrupt_queued",
                    "truncate_metrics")
KINDS = {"local": KINDS_EVERYWHERE, "slurm": (*KINDS_EVERYWHERE, "scancel")}
COMPARED_METRICS = ("iteration", "lr", "train_loss", "train_acc", "val_acc", "test_acc")
COMPARED_RESULT = ("final_test_acc", "best_val_test_acc", "max_test_acc", "best_val_acc", "iterations")
SKEWED_WORKER = """
import sys, time
real_time = time.time
time.time = lambda: real_time() + float(sys.argv[1])  # this host's clock is off by that much
from ghostsweep.orchestrator.sweepdir import lease, worker
lease.this_machine = lambda: "chaos-second-host/boot/pid:[1]"
sys.exit(worker.main(sys.argv[2:]))
"""


def spec_text(name: str, size: int, backend: str, iterations: int) -> str:
    spec = {
        "name": name, "grids": [{"model": ["resnet8"]}], "seeds": size,
        "recipe": {"iterations": iterations, "milestones": [iterations // 2], "batch_size": 32,
                   "eval_interval": 10, "checkpoint_interval": 5},
        "data": {"val_size": 0, "test_size": 200}, "runtime": {"device": "cpu"},
        "resources": {"gpus_per_trial": 0, "cpus_per_trial": 1, "mem_gb": 1, "time_limit_min": 20},
        "backend": {"name": backend, "options": {"max_parallel": 2} if backend == "local" else {}},
    }
    return yaml.safe_dump(spec, sort_keys=False)


class Chaos:
    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self.args, self.rng = args, random.Random(args.seed)
        self.spec, self.sweep = root / "spec.yaml", root / "sweep"
        self.injected: Counter[str] = Counter()
        self.hit: dict[str, list[str]] = {}  # kind -> trial ids it hit
        self.rotation: list[str] = []  # kinds still to inject in this rotation
        self.helpers: list[subprocess.Popen[bytes]] = []  # racing submitters and skewed-host workers
        self.env = os.environ | {"GHOSTSWEEP_DATA_DIR": str(args.data_dir), "OMP_NUM_THREADS": "1"}

    def ghostsweep(self, *args: object, wait: bool = True) -> Any:
        command = [sys.executable, "-P", "-m", "ghostsweep", *map(str, args)]
        if not wait:
            return subprocess.Popen(command, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=1800)

    def trial_dirs(self) -> list[Path]:
        folder = self.sweep / "trials"
        return sorted(d for d in folder.iterdir() if d.is_dir()) if folder.exists() else []

    def states(self) -> dict[str, str]:
        shown = self.ghostsweep("status", self.sweep, "--json")
        if shown.returncode != 0:
            raise RuntimeError(f"status failed: {shown.stderr.strip()}")
        return {t["trial_id"]: t["state"] for t in json.loads(shown.stdout)["trials"]}

    def run(self) -> None:
        """Rounds of submit (then rerun) with faults injected while they run, until every trial is done."""
        budget = self.args.faults
        for round_number in range(self.args.max_rounds):
            first = round_number == 0
            command = ("submit", self.spec, "--out", self.sweep) if first else ("rerun", self.sweep)
            submitter = self.ghostsweep(*command, wait=False)
            while True:
                time.sleep(self.rng.uniform(0.5, 2.5))
                busy = submitter.poll() is None or self._scheduler_busy()
                if not busy:
                    break
                if budget > 0 and self._inject():
                    budget -= 1
            for helper in self.helpers:
                helper.wait(timeout=1800)
            self.helpers.clear()
            if set(self.states().values()) == {"done"}:
                return
        raise RuntimeError(f"not every trial done after {self.args.max_rounds} rounds: {self.states()}")

    def _scheduler_busy(self) -> bool:
        """Slurm's submit returns at once: the round lasts while any trial is queued or running."""
        if self.args.backend != "slurm":
            return False
        return any(state in ("queued", "running") for state in self.states().values())

    def _inject(self) -> bool:
        """The next kind in a seeded shuffled rotation that has a target now (so a short run still covers every
        kind); which trial it hits is drawn too. Timing decides eligibility, so a rerun draws alike, not equal."""
        if not self.rotation:
            self.rotation = self.rng.sample(KINDS[self.args.backend], len(KINDS[self.args.backend]))
        for kind in list(self.rotation):
            target = getattr(self, f"_{kind}")()
            if target is not None:
                self.rotation.remove(kind)
                break
        else:
            return False
        self.injected[kind] += 1
        self.hit.setdefault(kind, []).append(target)
        print(f"fault {sum(self.injected.values()):3}: {kind:20} {target}", flush=True)
        return True

    def _running(self) -> list[tuple[Path, dict[str, Any]]]:
        """Trials whose lease is held by a live process of this machine: (trial dir, lease)."""
        held = []
        for trial_dir in self.trial_dirs():
            lease = read_lease(trial_dir)
            if lease and written_here(lease) and Path(f"/proc/{lease.get('pid')}").exists():
                held.append((trial_dir, lease))
        return held

    def _kill9(self) -> str | None:
        running = self._running()
        if not running:
            return None
        trial_dir, lease = self.rng.choice(running)
        append_lease_event(trial_dir, {"event": "killed", "token": lease.get("token"), "pid": lease["pid"]})
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(lease["pid"]), signal.SIGKILL)
        return trial_dir.name

    def _usr2_burst(self) -> str | None:
        running = self._running()
        if not running:
            return None
        trial_dir, lease = self.rng.choice(running)
        for _ in range(3):
            try:
                os.kill(int(lease["pid"]), signal.SIGUSR2)
            except ProcessLookupError:
                break
            time.sleep(0.02)
        return trial_dir.name

    def _racing_submitter(self) -> str | None:
        self.helpers.append(self.ghostsweep("submit", self.spec, "--out", self.sweep, wait=False))
        return "submit"

    def _skewed_host(self) -> str | None:
        candidates = [d for d in self.trial_dirs() if not self._is_done(d)]
        if not candidates:
            return None
        trial_dir = self.rng.choice(candidates)
        skew = self.rng.choice((-600.0, 600.0))
        with open(self.sweep.parent / f"skewed-{trial_dir.name}.log", "a") as log:
            self.helpers.append(subprocess.Popen([sys.executable, "-P", "-c", SKEWED_WORKER, str(skew),
                                                  str(trial_dir)], env=self.env, stdout=log, stderr=log))
        return f"{trial_dir.name} ({skew:+.0f} s)"

    def _truncate_checkpoint(self) -> str | None:
        candidates = self._unfinished_with(CHECKPOINT_FILE)
        if not candidates:
            return None
        trial_dir = self.rng.choice(candidates)
        try:
            with open(trial_dir / CHECKPOINT_FILE, "r+b") as handle:
                handle.truncate(handle.seek(0, os.SEEK_END) // 3)
        except FileNotFoundError:
            return None
        return trial_dir.name

    def _truncate_metrics(self) -> str | None:
        candidates = self._unfinished_with(METRICS_FILE)
        if not candidates:
            return None
        trial_dir = self.rng.choice(candidates)
        text = (trial_dir / METRICS_FILE).read_text()
        (trial_dir / METRICS_FILE).write_text(text[: len(text) // 2] + "\x00")  # torn mid-write
        return trial_dir.name

    def _corrupt_result(self) -> str | None:
        return self._replace_done_result(lambda path: path.write_text('{"status": "done", "final_te'))

    def _fifo_result(self) -> str | None:
        """A FIFO for result.json: a reader that opens it waits for a writer that never comes."""
        return self._replace_done_result(os.mkfifo)

    def _linked_result(self) -> str | None:
        """result.json a link out of the sweep (to /dev/zero: a reader that follows it never reaches the end)."""
        return self._replace_done_result(lambda path: path.symlink_to("/dev/zero"))

    def _mistyped_result(self) -> str | None:
        """Valid JSON of the wrong types: a list for the node, a string for an accuracy, NaN for another."""
        return self._replace_done_result(lambda path: path.write_text(
            '{"status": "done", "node": ["a"], "final_test_acc": "91.2", "max_test_acc": NaN}'))

    def _replace_done_result(self, make: Callable[[Path], object]) -> str | None:
        """A done trial's result.json replaced by what `make` puts at its path: `rerun` must set it aside."""
        candidates = [d for d in self.trial_dirs() if self._is_done(d)]
        if not candidates:
            return None
        trial_dir = self.rng.choice(candidates)
        (trial_dir / RESULT_FILE).unlink()
        make(trial_dir / RESULT_FILE)
        return trial_dir.name

    def _corrupt_queued(self) -> str | None:
        candidates = [d for d in self.trial_dirs() if (d / QUEUED_FILE).exists()]
        if not candidates:
            return None
        trial_dir = self.rng.choice(candidates)
        (trial_dir / QUEUED_FILE).write_bytes(b"\x00\x01 not json")
        return trial_dir.name

    def _scancel(self) -> str | None:
        jobs = []
        for trial_dir in self.trial_dirs():
            try:
                queued = read_queued(trial_dir)
            except (OSError, ValueError):
                continue
            if queued is not None and queued.job_id and not self._is_done(trial_dir):
                jobs.append((trial_dir, queued.job_id))
        if not jobs:
            return None
        trial_dir, job_id = self.rng.choice(jobs)
        subprocess.run(["scancel", job_id], capture_output=True, timeout=60)
        return f"{trial_dir.name} (job {job_id})"

    @staticmethod
    def _is_done(trial_dir: Path) -> bool:
        """Through ghostsweep's own reader: a planted FIFO or link must not hang the harness either."""
        try:
            result = read_result(trial_dir)
        except (OSError, ValueError):
            return False
        return result is not None and result.done

    def _unfinished_with(self, name: str) -> list[Path]:
        """The trials not done yet that hold the file `name`: the ones a corrupted file can still hurt."""
        return [d for d in self.trial_dirs() if (d / name).exists() and not self._is_done(d)]


def compare(trial_dir: Path, reference: Path) -> list[str]:
    """Where a trial differs from its fault-free run (nothing, when bitwise equal)."""
    problems = []
    rows = [{k: r.get(k) for k in COMPARED_METRICS} for r in read_lines(trial_dir / METRICS_FILE)]
    if rows != [{k: r.get(k) for k in COMPARED_METRICS} for r in read_lines(reference / METRICS_FILE)]:
        problems.append("metrics differ")
    ours, theirs = (json.loads((d / RESULT_FILE).read_text()) for d in (trial_dir, reference))
    if {k: ours.get(k) for k in COMPARED_RESULT} != {k: theirs.get(k) for k in COMPARED_RESULT}:
        problems.append("result differs")
    try:
        weights = [torch.load(d / CHECKPOINT_FILE, weights_only=True)["model"] for d in (trial_dir, reference)]
    except Exception as error:  # noqa: BLE001  (a done trial's final checkpoint is part of what must survive)
        return [*problems, f"final checkpoint unreadable: {type(error).__name__}"]
    if weights[0].keys() != weights[1].keys() or not all(weights[0][k].equal(weights[1][k]) for k in weights[0]):
        problems.append("final weights differ")
    return problems


def verify(chaos: Chaos, reference: Path, spec_before: str) -> dict[str, Any]:
    states = chaos.states()
    lost, overlaps = {}, {}
    for trial_dir in chaos.trial_dirs():
        problems = [] if states.get(trial_dir.name) == "done" else [f"state {states.get(trial_dir.name)}"]
        if not problems:
            problems = compare(trial_dir, reference / "trials" / trial_dir.name)
        if problems:
            lost[trial_dir.name] = problems
        if found := lease_log_overlaps(trial_dir):
            overlaps[trial_dir.name] = found
    intact = chaos.spec.read_text() == spec_before and (chaos.sweep / "sweep.json").exists()
    survived = {kind: sum(1 for target in targets if target.split()[0] not in lost)
                for kind, targets in chaos.hit.items()}
    return {"trials": len(states), "faults_injected": dict(chaos.injected), "faults_survived": survived,
            "results_lost": len(lost), "lost": lost, "overlapping_holders": overlaps, "sweep_files_intact": intact}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=tuple(KINDS), default="local")
    parser.add_argument("--size", type=int, default=3, help="trials in the sweep")
    parser.add_argument("--faults", type=int, help="faults to inject (default: 3 per trial, at least one of each kind)")
    parser.add_argument("--iterations", type=int, default=40, help="per trial")
    parser.add_argument("--seed", type=int, default=0, help="seeds the fault schedule")
    parser.add_argument("--max-rounds", type=int, default=12)
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("GHOSTSWEEP_DATA_DIR"))
    parser.add_argument("--out", type=Path, help="default: a temporary folder")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--reference", type=Path, help="a fault-free sweep of the same spec, e.g. an earlier run's "
                        "OUT/reference/sweep (default: run one first)")
    args = parser.parse_args(argv)
    args.faults = max(3 * args.size, len(KINDS[args.backend])) if args.faults is None else args.faults
    root = args.out or Path(tempfile.mkdtemp(prefix="ghostsweep-chaos-"))
    root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    chaos = Chaos(args, root / "chaos")
    (root / "chaos").mkdir(exist_ok=True)
    chaos.spec.write_text(spec_text("chaos", args.size, args.backend, args.iterations))
    reference = args.reference or root / "reference" / "sweep"
    if args.reference is None:  # the same trials (the backend is not part of a trial's identity), no faults
        reference.parent.mkdir(exist_ok=True)
        (reference.parent / "spec.yaml").write_text(spec_text("chaos", args.size, "local", args.iterations))
        fault_free = chaos.ghostsweep("submit", reference.parent / "spec.yaml", "--out", reference)
        if fault_free.returncode != 0:
            print(fault_free.stdout + fault_free.stderr, file=sys.stderr)
            return 1
    spec_before = chaos.spec.read_text()
    chaos.run()
    figures = verify(chaos, reference, spec_before)
    figures |= {"backend": args.backend, "size": args.size, "seed": args.seed, "wall_s": round(time.monotonic()
                - started, 1), "sweep_dir": str(chaos.sweep)}
    print(f"chaos ({args.backend}, {args.size} trials, seed {args.seed}): "
          f"faults injected {sum(chaos.injected.values())} {dict(sorted(chaos.injected.items()))}; "
          f"survived {sum(figures['faults_survived'].values())}; results lost {figures['results_lost']}; "
          f"overlapping holders {len(figures['overlapping_holders'])}; sweep files intact "
          f"{figures['sweep_files_intact']}; {figures['wall_s']} s")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    ok = not figures["results_lost"] and not figures["overlapping_holders"] and figures["sweep_files_intact"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
