"""Which code and libraries a trial runs with, as result.json records them (`code_version`, `torch_version`,
`cuda_version`) and as `submit`, `rerun` and `extend` compare them with the done trials' before submitting.
Stdlib only: the CLI asks without importing torch.

A trial's identity leaves the code out (a fix must not orphan the sweep), so the code that produced each seed is
recorded instead, and the report flags a row whose seeds ran different code (docs/report.md, "Provenance").
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import os
import subprocess
from pathlib import Path
from typing import NamedTuple

CODE_VERSION_ENV = "GHOSTSWEEP_CODE_VERSION"  # set: the code version recorded (an installed build stamps its own)
UNKNOWN = "unknown"  # what an old result.json without the field reads as
RESUMED_UNDER = " then "  # joins the code versions of a trial resumed under other code: "1a2b then 3c4d"


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


class TorchBuild(NamedTuple):
    """torch's version and the CUDA it was built with, as result.json records them (`torch_version`,
    `cuda_version`); "unknown" where torch is not installed or its version file is not readable."""

    version: str
    cuda: str | None


def torch_build() -> TorchBuild:
    """`torch.__version__` and `torch.version.cuda`, read from torch/version.py without importing torch (which
    takes seconds and may probe the GPU); the package's metadata version when that file is not readable."""
    try:
        spec = importlib.util.find_spec("torch")
        source = Path(spec.origin).with_name("version.py").read_text() if spec and spec.origin else ""
        assigned = {target.id: node.value for node in ast.parse(source).body
                    if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None
                    for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
                    if isinstance(target, ast.Name)}
        version, cuda = (ast.literal_eval(assigned[name]) for name in ("__version__", "cuda"))
        return TorchBuild(str(version), None if cuda is None else str(cuda))
    except (OSError, ValueError, SyntaxError, KeyError, ImportError):
        pass
    try:
        return TorchBuild(importlib.metadata.version("torch"), UNKNOWN)
    except importlib.metadata.PackageNotFoundError:
        return TorchBuild(UNKNOWN, UNKNOWN)


def clean(version: str) -> str:
    """The commit without `-dirty`: a dirty tree of the same commit only warns (docs/report.md)."""
    return version.removesuffix("-dirty")


def resumed_under_other_code(version: str) -> bool:
    """A trial that trained part of its iterations under one code version and the rest under another."""
    return RESUMED_UNDER in version
