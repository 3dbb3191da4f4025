"""The control plane's everyday commands, today's code against a baseline revision, in one run.

    python bench/control_plane.py [--baseline 0377138 | --no-baseline] [--repeats 3] [--trials 10000] [--work DIR]
                                  [--commands paper models plan status report]

Times whole CLI commands (`python -P -m ghostsweep ...`: interpreter start and imports included) from this
checkout and from the baseline, extracted read-only with `git archive` (no git state changes) into a folder
that is put first on PYTHONPATH, so that `ghostsweep` imports from it. Commands: `plan sweeps/paper.yaml`,
`models`, and plan/status/report over a synthetic sweep directory of `--trials` trials (built with
`sweep_scale.py`'s fake trial files). status and report are timed twice: cold (the read cache and the report's
files removed before each run) and warm (right after an untimed run of the same code, which leaves them). Runs
alternate between old and new, so a busy neighbour slows both alike; the table gives medians of wall time and of
CPU time (the child's user+sys: on a shared machine, the figure the neighbours' load changes least) and the
ratios old/new. Goals (issue 13): plan paper.yaml and models >= 20x
faster; the 10,000-trial plan/status/report < 2 s each.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from sweep_scale import fake_trial_files  # noqa: E402

from ghostsweep.orchestrator.report.files import report_paths  # noqa: E402
from ghostsweep.orchestrator.spec.sweepspec import load_spec  # noqa: E402
from ghostsweep.orchestrator.sweepdir.cache import CACHE_FILE  # noqa: E402
from ghostsweep.orchestrator.sweepdir.directory import SweepDir  # noqa: E402

SEEDS = 20
COMMANDS = ("paper", "models", "plan", "status", "report")  # `--commands` names, in the table's order
SPEC = """
name: scale
grids:
  - model: [resnet20, ghost_resnet20]
    recipe.lr: [{lrs}]
seeds: {seeds}
recipe: {{iterations: 64000, eval_interval: 2000}}
"""


def extract_baseline(revision: str, work: Path) -> Path:
    """`git archive REVISION` as `<work>/baseline-REVISION/ghostsweep`; returns the folder for PYTHONPATH."""
    parent = work / f"baseline-{revision}"
    package = parent / "ghostsweep"
    if not (package / "__main__.py").is_file():
        package.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", revision], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(package)], input=archive.stdout, check=True)
    return parent


def build_sweep(work: Path, trials: int) -> tuple[Path, Path]:
    """A synthetic sweep of `trials` trials (two models × learning rates × 20 seeds), made by today's code."""
    root = work / f"sweep-{trials}"
    spec_path = root / "scale.yaml"
    sweep = SweepDir(root / "sweep")
    if not sweep.index_path.exists():
        root.mkdir(parents=True, exist_ok=True)
        lrs = max(1, trials // (2 * SEEDS))
        spec_path.write_text(SPEC.format(lrs=", ".join(f"{0.05 + 0.0001 * i:.4f}" for i in range(lrs)), seeds=SEEDS))
        spec = load_spec(spec_path)
        sweep.materialize(spec)
        for index, trial in enumerate(spec.trials):
            fake_trial_files(sweep.trial_dir(trial.trial_id()), index, trial.seed)
    return spec_path, sweep.root


def run_once(command: list[str], pythonpath: str | None) -> tuple[float, float]:
    """Wall and CPU seconds of one CLI command, which must succeed."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-P", "-m", "ghostsweep", *command], env=env, cwd=REPO,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-1000:]}")
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def forget(sweep_root: Path) -> None:
    """A cold start: no read cache and no report (so none can be reused)."""
    for path in [sweep_root / CACHE_FILE, *report_paths(sweep_root).values()]:
        path.unlink(missing_ok=True)


def timed(command: list[str], pythonpath: str | None, start: str | None, sweep_root: Path) -> tuple[float, float]:
    """One timed run from a `start`: "cold" (`forget` first), "warm" (an untimed run of the same code first),
    "after-status" (an untimed `status` of the same code first: `plan` reads the cache but never writes it), or
    None (as it is)."""
    if start == "cold":
        forget(sweep_root)
    elif start == "warm":
        run_once(command, pythonpath)
    elif start == "after-status":
        run_once(["status", str(sweep_root)], pythonpath)
    return run_once(command, pythonpath)


def check_imports(pythonpath: str, expected: Path) -> None:
    """The baseline run must import the baseline package, not this checkout's editable install."""
    where = subprocess.run([sys.executable, "-P", "-c", "import ghostsweep; print(ghostsweep.__file__)"],
                           env=dict(os.environ, PYTHONPATH=pythonpath), capture_output=True, text=True, check=True)
    if not Path(where.stdout.strip()).is_relative_to(expected):
        raise SystemExit(f"the baseline imports ghostsweep from {where.stdout.strip()}, not {expected}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="0377138", help="the revision to compare with (default: 0377138)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each command per side (median)")
    parser.add_argument("--trials", type=int, default=10_000, help="trials in the synthetic sweep directory")
    parser.add_argument("--work", type=Path, help="keep the baseline and the synthetic sweep here (default: temp)")
    parser.add_argument("--commands", nargs="+", choices=COMMANDS, default=list(COMMANDS),
                        help="which commands to time (default: all)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="time today's code only (the baseline's 10,000-trial report alone takes minutes)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="ghostsweep-control-plane-"))
    baseline = None if args.no_baseline else extract_baseline(args.baseline, work)
    if baseline is not None:
        check_imports(str(baseline), baseline)
    spec_path, sweep_root = build_sweep(work, args.trials)
    trials = len(list((sweep_root / "trials").iterdir())) if (sweep_root / "trials").is_dir() else args.trials
    every = {
        "paper": [("plan sweeps/paper.yaml", ["plan", "sweeps/paper.yaml"], None)],
        "models": [("models", ["models"], None)],
        "plan": [(f"plan ({trials:,}) {start}", ["plan", str(spec_path), "--out", str(sweep_root)], start)
                 for start in ("cold", "after-status")],
        "status": [(f"status ({trials:,}) {start}", ["status", str(sweep_root), "--all"], start)
                   for start in ("cold", "warm")],
        "report": [(f"report ({trials:,}) {start}", ["report", str(sweep_root)], start) for start in ("cold", "warm")],
    }
    commands = [row for name in COMMANDS if name in args.commands for row in every[name]]
    print(f"baseline {args.baseline if baseline else 'skipped'}{f' from {baseline}' if baseline else ''}; "
          f"{args.repeats} runs per side, alternating; load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
          flush=True)
    header = (f"{'command':28} {'old wall':>9} {'new wall':>9} {'ratio':>7}   {'old cpu':>8} {'new cpu':>8} "
              f"{'ratio':>7}")
    rows = []
    for label, command, start in commands:
        old, new = [], []
        for _ in range(args.repeats):
            if baseline is not None:
                old.append(timed(command, str(baseline), start, sweep_root))
            new.append(timed(command, None, start, sweep_root))
        new_wall, new_cpu = (statistics.median(run[i] for run in new) for i in (0, 1))
        if old:
            old_wall, old_cpu = (statistics.median(run[i] for run in old) for i in (0, 1))
            rows.append(f"{label:28} {old_wall:8.2f}s {new_wall:8.2f}s {old_wall / new_wall:6.1f}x   "
                        f"{old_cpu:7.2f}s {new_cpu:7.2f}s {old_cpu / max(new_cpu, 1e-3):6.1f}x")
        else:
            rows.append(f"{label:28} {'—':>9} {new_wall:8.2f}s {'—':>7}   {'—':>8} {new_cpu:7.2f}s {'—':>7}")
        print(rows[-1], flush=True)
    print(f"\nload {os.getloadavg()[0]:.1f} at the end\n{header}\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
