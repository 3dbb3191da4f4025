"""Every command and flag the README's CLI reference names exists: `ghostsweep COMMAND --help` lists it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def documented() -> dict[str, set[str]]:
    """Per command in the CLI table, the --flags its row names."""
    section = README.read_text().split("## CLI reference", 1)[1].split("\n## ", 1)[0]
    commands: dict[str, set[str]] = {}
    for line in section.splitlines():
        match = re.match(r"\| `ghostsweep (\w+)([^`]*)`(.*)", line)
        if match:
            commands.setdefault(match[1], set()).update(re.findall(r"--[a-z][a-z-]+", match[2] + match[3]))
    return commands


def test_the_readme_names_every_command() -> None:
    assert set(documented()) == {"models", "train", "plan", "submit", "status", "rerun", "extend", "cancel",
                                 "report"}


@pytest.mark.parametrize("command", sorted(documented()))
def test_every_documented_flag_exists(command: str) -> None:
    done = subprocess.run([sys.executable, "-m", "ghostsweep", command, "--help"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    missing = sorted(flag for flag in documented()[command] if flag not in done.stdout)
    assert missing == [], f"README names {missing} for `ghostsweep {command}`"


def test_bare_command_prints_help_and_version_is_known() -> None:
    bare = subprocess.run([sys.executable, "-m", "ghostsweep"], capture_output=True, text=True)
    assert bare.returncode == 0 and "usage: ghostsweep" in bare.stdout and "extend" in bare.stdout
    version = subprocess.run([sys.executable, "-m", "ghostsweep", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and re.fullmatch(r"ghostsweep \d+\.\d+\.\d+\S*\n", version.stdout)
