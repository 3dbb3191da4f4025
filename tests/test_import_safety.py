"""Backends run our code and only our code: a user's `ghostsweep.py`, `torch.py` or `yaml.py` in the working
directory cannot shadow the installed package in a worker, which runs under `python -P` (see docs/slurm.md for
the Slurm job's interpreter, checked against the real cluster in test_slurm.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from test_sweep_local import fake_env

from ghostsweep.orchestrator.backends.base import worker_command

SHADOWS = ("ghostsweep.py", "torch.py", "yaml.py")
SPEC = {"name": "shadowed", "grids": [{"model": ["resnet20"]}], "seeds": 2,
        "recipe": {"iterations": 10, "milestones": [5], "eval_interval": 5}, "resources": {"cpus_per_trial": 1}}


def shadowing_project(root: Path) -> Path:
    """A working directory whose modules would break any process that imported them."""
    root.mkdir()
    for name in SHADOWS:
        (root / name).write_text(f"raise SystemExit('imported the shadowing {name} from the working directory')\n")
    return root


def test_worker_command_keeps_the_working_directory_off_sys_path(tmp_path: Path) -> None:
    command = worker_command([tmp_path / "t"])
    assert command[:4] == [sys.executable, "-P", "-m", "ghostsweep.orchestrator.submission.worker"]


def test_local_sweep_from_a_shadowing_directory(tmp_path: Path) -> None:
    """The CLI is started as the `ghostsweep` script starts it (its folder, not the working one, on sys.path);
    its workers inherit the shadowing working directory."""
    project = shadowing_project(tmp_path / "project")
    (project / "spec.json").write_text(json.dumps(SPEC))
    done = subprocess.run(
        [sys.executable, "-P", "-m", "ghostsweep.orchestrator.cli", "submit", "spec.json", "--out", "sweep"],
        cwd=project, env=fake_env(), capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = [json.loads(p.read_text()) for p in (project / "sweep/trials").glob("*/result.json")]
    assert [r["status"] for r in results] == ["done", "done"], done.stdout + done.stderr
