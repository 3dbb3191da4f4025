"""The documented commands are the CLI's: every command and flag the README's command table, and the code blocks
and `ghostsweep …` code spans of the README and docs/*.md, name exists (`ghostsweep COMMAND --help` lists it),
every flag a command has is in its table row (train's are in docs/trials.md), and every argument has a help line."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ghostsweep.orchestrator.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = (README, *sorted((REPO / "docs").glob("*.md")))
COMMANDS = {"models", "train", "plan", "submit", "status", "rerun", "extend", "cancel", "report", "sync"}
FLAG = r"--[a-z][a-z-]+"


def documented() -> dict[str, set[str]]:
    """Per command in the CLI table, the --flags its row names."""
    section = README.read_text().split("## Commands", 1)[1].split("\n## ", 1)[0]
    commands: dict[str, set[str]] = {}
    for line in section.splitlines():
        match = re.match(r"\| `ghostsweep (\w+)([^`]*)`(.*)", line)
        if match:
            commands.setdefault(match[1], set()).update(re.findall(FLAG, match[2] + match[3]))
    return commands


def named_in(pages: tuple[Path, ...]) -> dict[str, set[str]]:
    """Per command these pages run or quote (code blocks, `ghostsweep …` code spans), the --flags they pass it."""
    commands: dict[str, set[str]] = {}
    for page in pages:
        text = page.read_text()
        quoted = re.findall(r"```\w*\n(.*?)```", text, flags=re.S) + re.findall(r"`(ghostsweep [^`\n]+)`", text)
        for command, arguments in re.findall(r"\bghostsweep ([a-z]+)((?:\\\n|[^&#\n])*)", "\n".join(quoted)):
            commands.setdefault(command, set()).update(re.findall(FLAG, arguments))
    return commands


def subparser(command: str) -> argparse.ArgumentParser:
    parser = build_parser(command)
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices[command]


def test_the_readme_names_every_command() -> None:
    assert set(documented()) == COMMANDS
    assert set(named_in(PAGES)) <= COMMANDS and {"submit", "report"} <= set(named_in((README,)))


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_documented_flag_exists(command: str) -> None:
    done = subprocess.run([sys.executable, "-P", "-m", "ghostsweep", command, "--help"], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    named = documented()[command] | named_in(PAGES).get(command, set())
    missing = sorted(flag for flag in named if flag not in done.stdout)
    assert missing == [], f"the README or docs/ name {missing} for `ghostsweep {command}`"


@pytest.mark.parametrize("command", sorted(COMMANDS - {"train"}))
def test_every_flag_is_in_the_readme(command: str) -> None:
    flags = {option for action in subparser(command)._actions if action.help != argparse.SUPPRESS
             for option in action.option_strings if option.startswith("--")} - {"--help"}
    assert sorted(flags - documented()[command]) == []


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_argument_has_a_help_line(command: str) -> None:
    silent = [action.option_strings or action.dest for action in subparser(command)._actions if action.help is None]
    assert silent == []


def test_train_shows_model_and_seed_as_required() -> None:
    usage = subparser("train").format_usage()
    assert "(--model M --seed S | --config FILE) --out DIR" in usage


def test_bare_command_prints_help_and_version_is_known() -> None:
    bare = subprocess.run([sys.executable, "-m", "ghostsweep"], capture_output=True, text=True)
    assert bare.returncode == 0 and "usage: ghostsweep" in bare.stdout and "extend" in bare.stdout
    version = subprocess.run([sys.executable, "-m", "ghostsweep", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and re.fullmatch(r"ghostsweep \d+\.\d+\.\d+\S*\n", version.stdout)
