"""`ghostsweep report`: the reproduction report of a sweep (or of a W&B sweep's runs) as files and tables."""

from __future__ import annotations

import argparse
from pathlib import Path

from ghostsweep.orchestrator.cli.arguments import DEFAULT_RUNS_DIR
from ghostsweep.orchestrator.sweepdir.directory import SweepDir


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    report = subparsers.add_parser("report", help="the reproduction report: report.md, .html and .json")
    report.add_argument("sweep_dir", type=Path, metavar="SWEEP_DIR", nargs="?",
                        help="the sweep (with --from-wandb: where to write the report)")
    report.add_argument("--wandb", action="store_true",
                        help="also log the tables and plots to a W&B run and create or update the sweep's W&B Report "
                             "(offline: written for `ghostsweep sync`)")
    report.add_argument("--from-wandb", metavar="ENTITY/PROJECT[/SWEEP]",
                        help="aggregate the trial runs of one sweep in W&B instead of the files")
    report.add_argument("--rows", type=int, default=None, metavar="N",
                        help="print the first N entries of the answer and of the rows, published-number and "
                             "comparison tables (default 40; 0: all); the files always have everything")
    report.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """A sweep whose report inputs are unchanged since its report.json (`report.inputs_sha256`) keeps its files
    and prints report.json again, without analysing or drawing (nor importing scipy or matplotlib); `--wandb`
    always makes the report afresh, for its run."""
    from rich.console import Console

    from ghostsweep.orchestrator.report.build import build_report
    from ghostsweep.orchestrator.report.files import report_paths, write_report
    from ghostsweep.orchestrator.report.terminal import TERMINAL_ROWS, terminal_report

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
        from ghostsweep.orchestrator.report.build import inputs_sha256
        from ghostsweep.orchestrator.report.files import reusable_report
        from ghostsweep.orchestrator.report.records import records_from_sweep
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
        from ghostsweep.orchestrator.report.wandb_io import log_report, logged_before
        from ghostsweep.orchestrator.report.wandb_report import publish_or_defer

        if before := logged_before(report, Path(out_dir)):
            print(f"logged to W&B before: {before} (the sweep is unchanged since; no new report run)")
        else:
            print(f"logged to W&B: {log_report(report, paths, Path(out_dir))}")
        print(publish_or_defer(report, paths["html"].absolute(), Path(out_dir)))
    return 0
