"""Which code and libraries a trial runs with, as result.json records them (`code_version`, `torch_version`)
and as `submit`, `rerun` and `extend` compare them with the done trials' before submitting. Stdlib only: the CLI
asks without importing torch.

A trial's identity leaves the code out (a fix must not orphan the sweep), so the code that produced each seed is
recorded instead, and the report flags a row whose seeds ran different code (docs/report.md, "Provenance").
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
from pathlib import Path

CODE_VERSION_ENV = "GHOSTSWEEP_CODE_VERSION"  # set: the code version recorded (an installed build stamps its own)
UNKNOWN = "unknown"  # what an old result.json without the field reads as


def code_version() -> str:
    """$GHOSTSWEEP_CODE_VERSION when set, else the git commit of the code (with -dirty), else the installed
    package version."""
    if stamped := os.environ.get(CODE_VERSION_ENV):
        return stamped
    repo = Path(__file__).resolve().parents[1]
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()

        commit = git("rev-parse", "--short=12", "HEAD")
        return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return f"ghostsweep {importlib.metadata.version('ghostsweep')}"
    except importlib.metadata.PackageNotFoundError:
        return UNKNOWN


def torch_version() -> str:
    """The installed torch's version, read without importing it (what `torch.__version__` says)."""
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return UNKNOWN


def clean(version: str) -> str:
    """The commit without `-dirty`: a dirty tree of the same commit only warns (docs/report.md)."""
    return version.removesuffix("-dirty")
