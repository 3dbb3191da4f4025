"""`ghostsweep submit`: check the spec, the backend and CIFAR-10, then run every trial not done or on its way."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from ghostsweep.orchestrator.cli.arguments import DEFAULT_RUNS_DIR, add_backend_arguments, backend_option_overrides
from ghostsweep.orchestrator.cli.submitting import _print_warnings, _submit
from ghostsweep.orchestrator.sweepdir.directory import SweepDir
from ghostsweep.trials.strict_yaml import shown
from ghostsweep.trials.trialdir import TrialStatus


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    submit = subparsers.add_parser("submit", help="run every trial of a spec that is not done or on its way")
    submit.add_argument("spec", type=Path, metavar="SPEC", help="the sweep spec (YAML)")
    submit.add_argument("--out", type=Path, metavar="SWEEP_DIR", help="default: runs/<spec name>")
    add_backend_arguments(submit, overridden="spec")
    submit.add_argument("--data-dir", type=Path, metavar="DIR",
                        help="CIFAR-10 (cifar-10-batches-py or its parent) for every trial, recorded in the sweep for "
                             "rerun and extend (default: $GHOSTSWEEP_DATA_DIR, the spec's data_dir, the cache)")
    submit.add_argument("--download", action="store_true", default=None,
                        help="fetch CIFAR-10 into the data directory once, before any trial starts, if it is absent")
    submit.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
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


def _check_sweep_folder(sweep: SweepDir) -> None:
    """`submit` writes spec.yaml, sweep.json and trials/ into its folder: it must be new, empty or a sweep's,
    so that no file of the user's (their own spec.yaml) is ever overwritten."""
    root = sweep.root
    if root.exists() and not root.is_dir():
        raise ValueError(f"--out: {shown(str(root))} is a file; give a folder for the sweep")
    if not root.is_dir() or sweep.is_sweep():
        return
    other = next(root.iterdir(), None)
    if other is not None:
        raise ValueError(f"--out: {shown(str(root))} holds files that are not a sweep's (e.g. {shown(other.name)}), "
                         f"which submit would overwrite; give a new or empty folder")
