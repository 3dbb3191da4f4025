"""The control plane never imports torch: every command but `train` (and the workers it starts) runs without it.

Each command runs as a user runs it (`python -P -m ghostsweep ...`, here with `-X importtime`) on a real
one-trial sweep of the local backend; the trial's worker imports torch in its own process, which `-X importtime`
of the command does not see.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SPEC = """
name: torchfree
grids:
  - model: [resnet8]
seeds: 1
recipe: {iterations: 2, milestones: [1], eval_interval: 2, checkpoint_interval: 2, batch_size: 16}
data: {val_size: 0, test_size: 200}
runtime: {device: cpu}
observe: {test_every_eval: false}
wandb: {mode: disabled}
resources: {gpus_per_trial: 0, cpus_per_trial: 1, mem_gb: 2, time_limit_min: 10}
backend: {name: local}
"""


def imported_modules(*args: str, env: dict[str, str], cwd: Path) -> set[str]:
    """Run one CLI command under `-X importtime`; the modules it imported (it must succeed)."""
    done = subprocess.run([sys.executable, "-P", "-X", "importtime", "-m", "ghostsweep", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    lines = done.stderr.splitlines()
    timing = [line for line in lines if line.startswith("import time:")]
    assert done.returncode == 0, (args, done.stdout[-2000:], [line for line in lines if line not in timing][-20:])
    return {line.rsplit("|", 1)[1].strip() for line in timing[1:]}


def test_commands_never_import_torch(cifar10_dir: Path, tmp_path: Path) -> None:
    spec = tmp_path / "torchfree.yaml"
    spec.write_text(SPEC)
    sweep = tmp_path / "runs" / "torchfree"
    env = os.environ | {"GHOSTSWEEP_DATA_DIR": str(cifar10_dir), "WANDB_MODE": "disabled"}
    commands = [
        ("models",), ("plan", str(spec)), ("plan", str(spec), "--format", "json"), ("submit", str(spec)),
        ("status", str(sweep)), ("status", str(sweep), "--json"), ("report", str(sweep)), ("rerun", str(sweep)),
        ("cancel", str(sweep)), ("plan", str(spec), "--format", "csv"),
    ]
    for command in commands:
        modules = imported_modules(*command, env=env, cwd=tmp_path)
        assert "ghostsweep.orchestrator.cli" in modules, command  # the check sees the command's imports
        assert not {m for m in modules if m.split(".")[0] == "torch"}, command
    assert (sweep / "report.json").is_file()  # the trial ran (in a worker that did import torch)


@pytest.mark.parametrize("command", [("plan", "sweeps/paper.yaml"), ("models",)])
def test_the_shipped_spec_and_the_model_table_are_torch_free(command: tuple[str, ...]) -> None:
    repo = Path(__file__).resolve().parents[1]
    modules = imported_modules(*command, env=dict(os.environ), cwd=repo)
    assert not {m for m in modules if m.split(".")[0] in ("torch", "scipy")}, command
