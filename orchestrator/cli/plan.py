"""`ghostsweep plan`: the trial table, counts and estimated GPU-hours of a spec, without submitting anything."""

from __future__ import annotations

import argparse
from pathlib import Path

from ghostsweep.orchestrator.cli.arguments import DEFAULT_RUNS_DIR


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    plan = subparsers.add_parser("plan", help="trial table, counts and estimated GPU-hours; submits nothing")
    plan.add_argument("spec", type=Path, metavar="SPEC", help="the sweep spec (YAML)")
    plan.add_argument("--out", type=Path, metavar="SWEEP_DIR", help="show states from this sweep directory")
    plan.add_argument("--format", choices=("table", "json", "csv"), default="table",
                      help="table (default) for people; json or csv (one row per trial) for scripts")
    plan.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ghostsweep.orchestrator.spec.plan import print_plan
    from ghostsweep.orchestrator.spec.sweepspec import load_spec

    spec = load_spec(args.spec)
    print_plan(spec, args.out or DEFAULT_RUNS_DIR / spec.name, output_format=args.format)
    return 0
