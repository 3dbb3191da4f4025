"""Every backend runs our code and only our code, whatever the user's folder and PYTHONPATH hold.

A researcher submits from a folder holding their own `model.py`, `trials/`, `orchestrator.py` and even a
`ghostsweep.py`, with another such folder on PYTHONPATH. Each of these raises on import, so a trial that
imported any of them fails. A real tiny sweep (ResNet-8 and Ghost-ResNet-8, real CIFAR-10, ten iterations on
the CPU) runs on each backend from that folder, with relative paths, and every trial must end done.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared/data/cifar-10-batches-py"
GHOSTSWEEP = str(Path(sys.executable).parent / "ghostsweep")  # the console script a user runs
SHADOWS = ("model.py", "trials/__init__.py", "orchestrator.py")

pytestmark = pytest.mark.skipif(not (DATA / "test_batch").is_file(),
                                reason=f"real CIFAR-10 not found at {DATA} (../shared exists only beside CI)")


def plant_shadows(folder: Path, names: tuple[str, ...]) -> None:
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"raise ImportError('the user\\'s own {name} was imported')\n")


@pytest.fixture
def user_folder(tmp_path: Path) -> Path:
    """The submit folder (shadows + a tiny spec) and a second shadow folder on PYTHONPATH."""
    folder, on_path = tmp_path / "research", tmp_path / "lib"
    plant_shadows(folder, (*SHADOWS, "ghostsweep.py"))
    plant_shadows(on_path, SHADOWS)
    (folder / "tiny.yaml").write_text(yaml.safe_dump({
        "name": "tiny", "grids": [{"model": ["resnet8", "ghost_resnet8"]}], "seeds": 1,
        "recipe": {"iterations": 10, "milestones": [5], "eval_interval": 5, "checkpoint_interval": 5,
                   "batch_size": 16},
        "data": {"val_size": 100, "test_size": 100}, "runtime": {"device": "cpu"},
        "resources": {"cpus_per_trial": 1, "mem_gb": 1, "time_limit_min": 10},
    }))
    return folder


def user_env(folder: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHOSTSWEEP_")}
    return env | {"PYTHONPATH": str(folder.parent / "lib"), "GHOSTSWEEP_DATA_DIR": str(DATA),
                  "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"} | extra


def run(folder: Path, *args: str, env: dict[str, str] | None = None, timeout: int = 600) -> str:
    done = subprocess.run([GHOSTSWEEP, *args], cwd=folder, env=env or user_env(folder), capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"ghostsweep {' '.join(args)}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def trial_states(folder: Path, sweep: str, env: dict[str, str] | None = None) -> dict[str, str]:
    status = json.loads(run(folder, "status", sweep, "--json", env=env))
    return {t["trial_id"]: t["state"] for t in status["trials"]}


def assert_all_done(folder: Path, sweep: str, env: dict[str, str] | None = None) -> None:
    states = trial_states(folder, sweep, env)
    reasons = {p.parent.name: json.loads(p.read_text()).get("reason")
               for p in (folder / sweep / "trials").glob("*/result.json")}
    assert len(states) == 2 and set(states.values()) == {"done"}, (states, reasons)


def test_local_backend_ignores_the_users_modules(user_folder: Path) -> None:
    run(user_folder, "submit", "tiny.yaml", "--backend", "local")
    assert_all_done(user_folder, "runs/tiny")


@pytest.mark.ray
def test_ray_backend_ignores_the_users_modules(user_folder: Path) -> None:
    pytest.importorskip("ray")
    env = user_env(user_folder, RAY_ADDRESS="local")
    run(user_folder, "submit", "tiny.yaml", "--backend", "ray", env=env)  # the default, relative sweep dir
    assert_all_done(user_folder, "runs/tiny", env)


@pytest.fixture
def slurm_env(user_folder: Path) -> dict[str, str]:
    """The project's local Slurm cluster (slurm/cluster.sh), which `.ci/run` starts."""
    if shutil.which("sbatch") is None:
        pytest.skip("no Slurm here: start the local cluster with `sudo bash slurm/cluster.sh start`")
    conf = subprocess.run(["bash", str(REPO / "slurm/cluster.sh"), "env"], capture_output=True, text=True)
    slurm_conf = conf.stdout.strip().partition("SLURM_CONF=")[2]
    env = user_env(user_folder, SLURM_CONF=slurm_conf)
    if subprocess.run(["sinfo"], env=env, capture_output=True).returncode != 0:
        pytest.skip("the local Slurm cluster is not running (`sudo bash slurm/cluster.sh start`)")
    return env


@pytest.mark.slurm
def test_slurm_backend_ignores_the_users_modules(user_folder: Path, slurm_env: dict[str, str]) -> None:
    run(user_folder, "submit", "tiny.yaml", "--backend", "slurm", env=slurm_env)
    deadline = time.time() + 300
    while set(trial_states(user_folder, "runs/tiny", slurm_env).values()) - {"done", "failed"}:
        assert time.time() < deadline, trial_states(user_folder, "runs/tiny", slurm_env)
        time.sleep(3)
    assert_all_done(user_folder, "runs/tiny", slurm_env)


@pytest.mark.slurm
@pytest.mark.ray
def test_ray_on_slurm_ignores_the_users_modules(user_folder: Path, slurm_env: dict[str, str]) -> None:
    pytest.importorskip("ray")
    job = subprocess.run(
        ["sbatch", "--parsable", "--wait", "--nodes=1", "--cpus-per-task=2", "--output=ray-job.out",
         str(REPO / "slurm/ray-cluster.sbatch"), GHOSTSWEEP, "submit", "tiny.yaml", "--backend", "ray"],
        cwd=user_folder, env=slurm_env, capture_output=True, text=True, timeout=500,
    )
    output = (user_folder / "ray-job.out").read_text() if (user_folder / "ray-job.out").exists() else ""
    assert job.returncode == 0, job.stderr + output
    assert_all_done(user_folder, "runs/tiny", slurm_env)
