"""`python -m ghostsweep.trials train ...`: the train command alone, for when the `ghostsweep` entry point is absent."""

import argparse
import sys

from ghostsweep.trials.cli import add_train_parser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ghostsweep.trials")
    add_train_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
