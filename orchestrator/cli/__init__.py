"""`ghostsweep`: models, train, plan, submit, status, rerun, extend, cancel, report, sync; one module per command, each
with its `add_parser(subparsers)` and the `run(args)` that its parser sets as `handler`.

Every user error (bad spec, unknown trial, unreachable backend) is one line,
`ghostsweep: error: <message>`, on stderr with exit code 2 and no traceback; so is a file we cannot read or
write (OSError), input that is too deep or too large (RecursionError, MemoryError) and a YAML error that got
past the spec reader. Ctrl-C exits 130 (the shell's code for SIGINT) after saying how to resume.
"""

from __future__ import annotations

import argparse
import os
import sys

import yaml

import ghostsweep
from ghostsweep.orchestrator.cli import cancel, extend, models, plan, report, rerun, status, submit, sync, train
from ghostsweep.orchestrator.cli.submitting import EXIT_INTERRUPTED
from ghostsweep.trials.trialdir import ExitCode

COMMANDS = (models, train, plan, submit, status, rerun, extend, cancel, report, sync)  # in `ghostsweep --help`'s order
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
    for module in COMMANDS:
        if module is train:
            train.add_parser(commands, full=command == "train")
        else:
            module.add_parser(commands)
    return parser


if __name__ == "__main__":
    sys.exit(main())
