"""`ghostsweep extend`: add seeds to the rows and comparisons that need them, and run them like `rerun`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ghostsweep.orchestrator.cli.arguments import add_backend_arguments, backend_option_overrides
from ghostsweep.orchestrator.cli.submitting import _print_warnings, _submit, provenance_warnings
from ghostsweep.orchestrator.sweepdir.directory import SweepDir


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    extend = subparsers.add_parser("extend", help="add seeds to the rows and comparisons that need them, and run them")
    extend.add_argument("sweep_dir", type=Path, metavar="SWEEP_DIR", help="the sweep directory submit wrote")
    how_many = extend.add_mutually_exclusive_group(required=True)
    how_many.add_argument("--seeds", type=int, metavar="N", help="take every row to N seeds")
    how_many.add_argument("--until-halfwidth", type=float, metavar="PP",
                          help="the seeds Stein's two-stage procedure plans, from the seeds done, for each row's "
                               "and comparison's 95%% CI half-width of PP percentage points (rows with fewer than 3 "
                               "seeds done are first taken to 3)")
    extend.add_argument("--max-seeds", type=int, metavar="N",
                        help="with --until-halfwidth: at most N seeds per row (default 20)")
    extend.add_argument("--dry-run", action="store_true", help="print the plan; write and submit nothing")
    add_backend_arguments(extend, overridden="sweep")
    extend.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
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
        _print_warnings(provenance_warnings(sweep, []))  # what a real run would warn of, before deciding
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
