"""The chaos suite at CI size (bench/chaos.py): real tiny trials on the local backend and on the real Slurm
cluster under a seeded schedule of faults; every trial must end done and bitwise equal to its fault-free run,
with no two live holders of a lease ever, and the sweep's files intact. A larger run: `python bench/chaos.py
--size 8` (figures in docs/architecture.md, "Faults")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_slurm import slurm_conf  # noqa: F401  (the fixture: the shared cluster, up)

REPO = Path(__file__).resolve().parents[1]
CI_SIZE = ["--size", "2", "--iterations", "30"]  # faults: one of each kind (11 local, 12 on Slurm)


def chaos(out: Path, data: Path, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-P", str(REPO / "bench/chaos.py"), *CI_SIZE, "--data-dir", str(data),
                           "--out", str(out), "--json", str(out / "figures.json"), *args],
                          capture_output=True, text=True, timeout=900)
    print(done.stdout[-4000:])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return json.loads((out / "figures.json").read_text())


@pytest.fixture(scope="module")
def local_run(cifar10_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("chaos-local")
    return out, chaos(out, cifar10_dir, "--backend", "local", "--seed", "1")


def _assert_nothing_lost(figures: dict) -> None:
    assert figures["results_lost"] == 0 and figures["lost"] == {}
    assert figures["overlapping_holders"] == {}
    assert figures["sweep_files_intact"]
    assert len(figures["faults_injected"]) >= 5  # the schedule hit the sweep with most kinds (timing decides)
    assert figures["faults_survived"] == {k: v for k, v in figures["faults_injected"].items()}


def test_chaos_on_the_local_backend(local_run: tuple[Path, dict]) -> None:
    _assert_nothing_lost(local_run[1])


@pytest.mark.slurm
def test_chaos_on_slurm(local_run: tuple[Path, dict], cifar10_dir: Path, slurm_conf: str,  # noqa: F811
                        tmp_path: Path) -> None:
    reference = local_run[0] / "reference" / "sweep"
    _assert_nothing_lost(chaos(tmp_path, cifar10_dir, "--backend", "slurm", "--seed", "2",
                               "--reference", str(reference)))
