"""`ghostsweep`: models, train, plan, submit, status, rerun, extend, cancel, report.

Every user error (bad spec, unknown trial, unreachable backend) is one line,
`ghostsweep: error: <message>`, on stderr with exit code 2 and no traceback; so is a file we cannot read or
write (OSError), input that is too deep or too large (RecursionError, MemoryError) and a YAML error that got
past the spec reader. Ctrl-C exits 130 (the shell's code for SIGINT) after saying how to resume.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

import ghostsweep
from ghostsweep.orchestrator.backends import BACKEND_MODULES
from ghostsweep.orchestrator.cli.models import add_models_parser
from ghostsweep.orchestrator.sweepdir.directory import SweepDir
from ghostsweep.trials import cli as train_cli  # torch-free until add_train_parser runs
from ghostsweep.trials.strict_yaml import shown
from ghostsweep.trials.trialdir import ExitCode, TrialStatus

if TYPE_CHECKING:
    from ghostsweep.orchestrator.backends.base import Backend, Submission

DEFAULT_RUNS_DIR = Path("runs")
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130, what a shell reports for Ctrl-C: `submit && report` stops
MAX_ERROR_CHARS = 400  # an error line quotes values already cut short; this bounds whatever else it quotes


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv[0] if argv else None)
    if not argv:  # a bare `ghostsweep` asks what it can do
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except ValueError as error:
        return _usage_error(str(error))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `ghostsweep report DIR | head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (silences the interpreter's flush at exit)
        return 0
    except OSError as error:  # a path the user gave: missing, unreadable, read-only, a file for a folder
        where = f"{error.filename}: " if error.filename else ""
        return _usage_error(f"{where}{error.strerror or error}")
    except yaml.YAMLError as error:
        return _usage_error(f"invalid YAML: {error}")
    except RecursionError:
        return _usage_error("input nested too deeply")
    except MemoryError:
        return _usage_error("input too large for memory")


def _usage_error(message: str) -> int:
    """The one line every user error is: whitespace collapsed, cut at MAX_ERROR_CHARS."""
    line = " ".join(message.split())
    if len(line) > MAX_ERROR_CHARS:
        line = line[:MAX_ERROR_CHARS - 3] + "..."
    print(f"ghostsweep: error: {line}", file=sys.stderr)
    return ExitCode.USAGE


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `ghostsweep` parser; `train`'s full parser (it imports torch) only when `command` is "train"."""
    parser = argparse.ArgumentParser(
        prog="ghostsweep", description="Seeded CIFAR-10 sweeps that check GhostNet's claims against papers.",
    )
    parser.add_argument("--version", action="version", version=f"ghostsweep {ghostsweep.__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    add_models_parser(commands)
    if command == "train":
        train_cli.add_train_parser(commands)
    else:
        commands.add_parser("train", help=train_cli.HELP)

    plan = commands.add_parser("plan", help="trial table, counts and estimated GPU-hours; submits nothing")
    plan.add_argument("spec", type=Path, metavar="SPEC", help="the sweep spec (YAML)")
    plan.add_argument("--out", type=Path, metavar="SWEEP_DIR", help="show states from this sweep directory")
    plan.add_argument("--format", choices=("table", "json", "csv"), default="table",
                      help="table (default) for people; json or csv (one row per trial) for scripts")
    plan.set_defaults(handler=run_plan)

    submit = commands.add_parser("submit", help="run every trial of a spec that is not done or on its way")
    submit.add_argument("spec", type=Path, metavar="SPEC", help="the sweep spec (YAML)")
    submit.add_argument("--out", type=Path, metavar="SWEEP_DIR", help="default: runs/<spec name>")
    submit.add_argument("--backend", choices=tuple(BACKEND_MODULES), help="override the spec's backend")
    add_backend_option_arguments(submit)
    submit.add_argument("--data-dir", type=Path, metavar="DIR",
                        help="CIFAR-10 (cifar-10-batches-py or its parent) for every trial, recorded in the sweep for "
                             "rerun and extend (default: $GHOSTSWEEP_DATA_DIR, the spec's data_dir, the cache)")
    submit.add_argument("--download", action="store_true", default=None,
                        help="fetch CIFAR-10 into the data directory once, before any trial starts, if it is absent")
    submit.set_defaults(handler=run_submit)

    status = commands.add_parser("status", help="counts per state, per-trial progress, ETA, failure reasons")
    status.add_argument("sweep_dir", type=Path, metavar="SWEEP_DIR", help="the sweep directory submit wrote")
    status.add_argument("--watch", action="store_true", help="refresh until no trial is queued or running")
    status.add_argument("--interval", type=float, default=10.0, help="seconds between refreshes (--watch)")
    status.add_argument("--all", action="store_true", help="list every trial, not only the interesting ones")
    status.add_argument("--json", action="store_true", help="machine-readable")
    status.set_defaults(handler=run_status)

    rerun = commands.add_parser("rerun", help="resubmit failed/unfinished trials, resuming from checkpoints")
    rerun.add_argument("sweep_dir", type=Path, metavar="SWEEP_DIR", help="the sweep directory submit wrote")
    which = rerun.add_mutually_exclusive_group()
    which.add_argument("--failed", action="store_true", help="only failed and preempted trials")
    which.add_argument("--trial", action="append", default=[], metavar="ID", help="this trial (repeatable)")
    rerun.add_argument("--backend", choices=tuple(BACKEND_MODULES), help="override the sweep's backend")
    add_backend_option_arguments(rerun)
    rerun.set_defaults(handler=run_rerun)

    extend = commands.add_parser("extend", help="add seeds to the rows and comparisons that need them, and run them")
    extend.add_argument("sweep_dir", type=Path, metavar="SWEEP_DIR", help="the sweep directory submit wrote")
    how_many = extend.add_mutually_exclusive_group(required=True)
    how_many.add_argument("--seeds", type=int, metavar="N", help="take every row to N seeds")
    how_many.add_argument("--until-halfwidth", type=float, metavar="PP",
                          help="the seeds each row's and comparison's observed spread needs for a 95%% CI "
                               "half-width of PP percentage points")
    extend.add_argument("--max-seeds", type=int, metavar="N",
                        help="with --until-halfwidth: at most N seeds per row (default 20)")
    extend.add_argument("--dry-run", action="store_true", help="print the plan; write and submit nothing")
    extend.add_argument("--backend", choices=tuple(BACKEND_MODULES), help="override the sweep's backend")
    add_backend_option_arguments(extend)
    extend.set_defaults(handler=run_extend)

    cancel = commands.add_parser("cancel", help="stop every queued or running trial (checkpoints are kept)")
    cancel.add_argument("sweep_dir", type=Path, metavar="SWEEP_DIR", help="the sweep directory submit wrote")
    cancel.set_defaults(handler=run_cancel)

    report = commands.add_parser("report", help="the reproduction report: report.md, .html and .json")
    report.add_argument("sweep_dir", type=Path, metavar="SWEEP_DIR", nargs="?",
                        help="the sweep (with --from-wandb: where to write the report)")
    report.add_argument("--wandb", action="store_true", help="also log the table and plots to a W&B run")
    report.add_argument("--from-wandb", metavar="ENTITY/PROJECT[/SWEEP]",
                        help="aggregate the trial runs of one sweep in W&B instead of the files")
    report.add_argument("--rows", type=int, default=None, metavar="N",
                        help="print the first N entries of the answer and of the rows, published-number and "
                             "comparison tables (default 40; 0: all); the files always have everything")
    report.set_defaults(handler=run_report)
    return parser


def add_backend_option_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend-option", action="append", default=[], metavar="KEY=VALUE",
                        help="override one backend option for this run (VALUE as JSON, else a string); "
                             "repeatable; e.g. address=ray://HOST:10001 for the ray backend")


def backend_option_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """--backend-option KEY=VALUE pairs as a mapping laid over the backend's options (checked by the backend)."""
    overrides = {}
    for pair in args.backend_option:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--backend-option: expected KEY=VALUE, got {pair!r}")
        try:
            overrides[key] = json.loads(text)
        except json.JSONDecodeError:
            overrides[key] = text
    return overrides


def run_plan(args: argparse.Namespace) -> int:
    from ghostsweep.orchestrator.spec.plan import print_plan
    from ghostsweep.orchestrator.spec.sweepspec import load_spec

    spec = load_spec(args.spec)
    print_plan(spec, args.out or DEFAULT_RUNS_DIR / spec.name, output_format=args.format)
    return 0


def run_submit(args: argparse.Namespace) -> int:
    from ghostsweep.orchestrator.backends import get_backend
    from ghostsweep.orchestrator.spec.sweepspec import load_spec
    from ghostsweep.orchestrator.submission.sweep import check_data, collect_states, validate_backend

    spec = load_spec(args.spec)
    backend_name = args.backend or spec.backend
    options = spec.backend_options if backend_name == spec.backend else {}
    backend = get_backend(backend_name, spec.resources, options | backend_option_overrides(args))
    validate_backend(backend, spec.trial_resources.values())  # before anything is written
    sweep = SweepDir(args.out or DEFAULT_RUNS_DIR / spec.name)
    _check_sweep_folder(sweep)
    recorded = previous.data_dir_override if (previous := sweep.readable_index()) else None
    _print_warnings(check_data(backend, args.data_dir or recorded, spec.data_dir, args.download))
    sweep.materialize(spec, args.data_dir)
    states, warnings = collect_states(sweep)
    _print_warnings(warnings)
    pending = [s.trial_id for s in states if s.state == TrialStatus.PENDING]
    skipped = Counter(s.state for s in states if s.state != TrialStatus.PENDING)
    print(f"sweep {spec.name!r}: {len(states)} trials in {sweep.root}"
          + "".join(f", {n} {state}" for state, n in skipped.items()))
    if skipped.get(TrialStatus.FAILED) or skipped.get(TrialStatus.PREEMPTED):
        print(f"failed/preempted trials are not resubmitted: use `ghostsweep rerun {sweep.root} --failed`")
    if not pending:
        print("nothing to submit")
        return 0
    return _submit(sweep, pending, backend, f"submitting {len(pending)} trial(s) to {backend.name}:")


def run_rerun(args: argparse.Namespace) -> int:
    from ghostsweep.orchestrator.submission.sweep import (
        UNFINISHED,
        backend_for,
        check_sweep_data,
        collect_states,
        select_rerun,
    )

    sweep = SweepDir(args.sweep_dir)
    states, warnings = collect_states(sweep)
    _print_warnings(warnings)
    trial_ids = select_rerun(states, args.failed, args.trial)
    busy = [s.trial_id for s in states if s.state in UNFINISHED]
    if busy and not args.trial:
        print(f"left to their jobs: {len(busy)} trial(s) still queued or running (see `ghostsweep status`)")
    if not trial_ids:
        print("nothing to rerun")
        return 0
    backend = backend_for(sweep, args.backend, backend_option_overrides(args))
    backend.validate()
    _print_warnings(check_sweep_data(sweep, backend))
    heading = f"resubmitting {len(trial_ids)} trial(s) to {backend.name} (each resumes from its checkpoint):"
    return _submit(sweep, trial_ids, backend, heading)


def run_extend(args: argparse.Namespace) -> int:
    from ghostsweep.orchestrator.submission.extend import apply_extension, describe, plan_seeds, plan_until_halfwidth
    from ghostsweep.orchestrator.submission.sweep import backend_for, check_sweep_data
    from ghostsweep.orchestrator.sweepdir.directory import EXTENSIONS_FILE

    sweep = SweepDir(args.sweep_dir)
    if args.seeds is not None:
        if args.max_seeds is not None:
            raise ValueError("--max-seeds: only with --until-halfwidth")
        extension = plan_seeds(sweep, args.seeds)
    else:
        extension = plan_until_halfwidth(sweep, args.until_halfwidth, args.max_seeds)
    print("\n".join(describe(extension)))
    if not extension.new_trials:
        print("nothing to add")
        return 0
    if args.dry_run:
        print(f"dry run: {len(extension.new_trials)} trial(s) would be added; nothing written or submitted")
        return 0
    backend = backend_for(sweep, args.backend, backend_option_overrides(args))
    backend.validate()  # before anything is written
    _print_warnings(check_sweep_data(sweep, backend))
    pending = apply_extension(sweep, extension)
    print(f"added {len(extension.new_trials)} trial(s), recorded in {sweep.root / EXTENSIONS_FILE}")
    if not pending:
        print("nothing to submit: the added trials are done or on their way")
        return 0
    return _submit(sweep, pending, backend, f"submitting {len(pending)} trial(s) to {backend.name}:")


def _check_sweep_folder(sweep: SweepDir) -> None:
    """`submit` writes spec.yaml, sweep.json and trials/ into its folder: it must be new, empty or a sweep's,
    so that no file of the user's (their own spec.yaml) is ever overwritten."""
    root = sweep.root
    if root.exists() and not root.is_dir():
        raise ValueError(f"--out: {shown(str(root))} is a file; give a folder for the sweep")
    if not root.is_dir() or sweep.index_path.is_file():
        return
    other = next(root.iterdir(), None)
    if other is not None:
        raise ValueError(f"--out: {shown(str(root))} holds files that are not a sweep's (e.g. {shown(other.name)}), "
                         f"which submit would overwrite; give a new or empty folder")


def _submit(sweep: SweepDir, trial_ids: list[str], backend: Backend, heading: str) -> int:
    """What submit, rerun and extend share: name the trials, hand them to the backend, report how they ended."""
    from ghostsweep.orchestrator.monitor.progress import SubmitProgress
    from ghostsweep.orchestrator.submission.sweep import submit_trials

    unwritable = [t for t in trial_ids if sweep.trial_dir(t).is_dir() and not os.access(sweep.trial_dir(t), os.W_OK)]
    if unwritable:
        raise ValueError(f"{sweep.trial_dir(unwritable[0])}: not writable ({len(unwritable)} trial folder(s)); "
                         f"a trial's worker writes its files there")
    print(heading)
    for trial_id in trial_ids:
        print(f"  {trial_id}")
    try:
        with SubmitProgress(sweep, trial_ids, live=backend.waits_for_trials) as progress:
            submissions = submit_trials(sweep, trial_ids, backend, progress.job_started)
    except KeyboardInterrupt:
        print(f"interrupted: stopped trials kept their checkpoints; `ghostsweep rerun {sweep.root}` resumes every "
              f"trial that is not done (interrupted, never started, failed)", file=sys.stderr)
        return EXIT_INTERRUPTED
    progress.print_jobs(submissions)
    return _after_submission(sweep, submissions, backend.waits_for_trials)


def _after_submission(sweep: SweepDir, submissions: list[Submission], ended: bool) -> int:
    """How the trials stand; for a blocking backend (`ended`) they have ended, so exit 1 if any failed. One
    still running then was skipped by our worker: another live worker holds its lease, which is no failure."""
    from ghostsweep.orchestrator.sweepdir.state import read_state

    states = Counter(read_state(sweep.trial_dir(s.trial_id)).state for s in submissions)
    words = {TrialStatus.RUNNING: "already running elsewhere"} if ended else {}
    print(", ".join(f"{n} {words.get(state, state)}" for state, n in states.items())
          + f"; see `ghostsweep status {sweep.root}`")
    return 1 if states.get(TrialStatus.FAILED) or states.get(TrialStatus.UNREADABLE) else 0


def run_status(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.live import Live

    from ghostsweep.orchestrator.monitor.status import render, summarize
    from ghostsweep.orchestrator.submission.sweep import UNFINISHED, collect_states

    if not args.interval > 0:
        raise ValueError(f"--interval: must be > 0 seconds, got {args.interval:g}")
    sweep = SweepDir(args.sweep_dir)
    index = sweep.index()
    states, warnings = collect_states(sweep, remember=True)
    if args.json:
        print(json.dumps(summarize(states, index) | {"warnings": warnings}, indent=2))
        return 0
    console = Console()
    console.width = max(console.width, 160)  # trial ids must not wrap, even when piped
    if not args.watch:
        console.print(render(states, index, warnings, args.all))
        return 0
    with Live(render(states, index, warnings, args.all), console=console, auto_refresh=False) as live:
        while any(s.state in UNFINISHED for s in states):
            time.sleep(args.interval)
            states, warnings = collect_states(sweep, remember=True)
            live.update(render(states, index, warnings, args.all), refresh=True)
    return 0


def run_cancel(args: argparse.Namespace) -> int:
    from ghostsweep.orchestrator.submission.sweep import cancel_sweep, collect_states

    sweep = SweepDir(args.sweep_dir)
    states, warnings = collect_states(sweep)
    _print_warnings(warnings)
    cancelled = cancel_sweep(sweep, states)
    print(f"cancelled {len(cancelled)} trial(s)" if cancelled else "nothing queued or running")
    for trial_id in cancelled:
        print(f"  {trial_id}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    """A sweep whose report inputs are unchanged since its report.json (`report.inputs_sha256`) keeps its files
    and prints report.json again, without analysing or drawing (nor importing scipy or matplotlib); `--wandb`
    always makes the report afresh, for its run."""
    from rich.console import Console

    from ghostsweep.orchestrator.report.build import (
        TERMINAL_ROWS,
        build_report,
        report_paths,
        terminal_report,
        write_report,
    )

    rows = TERMINAL_ROWS if args.rows is None else args.rows
    if rows < 0:
        raise ValueError(f"--rows: must be >= 0 (0: all), got {args.rows}")
    reused = None
    if args.from_wandb:
        from ghostsweep.orchestrator.report.wandb_io import records_from_wandb

        out_dir = args.sweep_dir or DEFAULT_RUNS_DIR / args.from_wandb.replace("/", "-")
        report = build_report(*records_from_wandb(args.from_wandb))
    else:
        if args.sweep_dir is None:
            raise ValueError("report: give SWEEP_DIR (or --from-wandb ENTITY/PROJECT[/SWEEP])")
        from ghostsweep.orchestrator.report.build import inputs_sha256, records_from_sweep, reusable_report
        from ghostsweep.orchestrator.submission.extend import report_options
        from ghostsweep.orchestrator.sweepdir.cache import read_trials

        out_dir, sweep = args.sweep_dir, SweepDir(args.sweep_dir)
        reads, options = read_trials(sweep, curves=True, remember=True), report_options(sweep)
        inputs = inputs_sha256(sweep, reads, options)
        reused = None if args.wandb else reusable_report(Path(out_dir), inputs)
        report = reused or build_report(*records_from_sweep(sweep, reads), **options, inputs_sha256=inputs)
    # PNGs only for W&B
    paths = report_paths(Path(out_dir)) if reused else write_report(report, Path(out_dir), raster=args.wandb)
    console = Console()
    if not console.is_terminal:
        console.width = 160  # a table piped to a file or a pager keeps its columns
    console.print(terminal_report(report, rows))
    print(f"{'wrote' if reused is None else 'kept (its inputs are unchanged)'} {paths['html']} (open it in a "
          f"browser), {paths['md']}, {paths['json']} and the plots as "
          f"{Path(out_dir) / 'report-*.svg'}{' and .png' if args.wandb else ''}")
    if args.wandb:
        from ghostsweep.orchestrator.report.wandb_io import log_report

        print(f"logged to W&B: {log_report(report, paths, Path(out_dir))}")
    return 0


def _print_warnings(warnings: list[str]) -> None:
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
