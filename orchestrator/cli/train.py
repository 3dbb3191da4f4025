"""`ghostsweep train`: one trial. Its parser and handler are trials/cli.py's; the full parser imports torch-bound
modules, so it is built only when the command is `train`, and every other command lists it by its help alone."""

from __future__ import annotations

import argparse

from ghostsweep.trials import cli as train_cli  # torch-free until add_train_parser runs


def add_parser(subparsers: argparse._SubParsersAction, full: bool = False) -> None:
    if full:
        train_cli.add_train_parser(subparsers)
    else:
        subparsers.add_parser("train", help=train_cli.HELP)
