"""The backends' private folder: the files a job or `Tuner.restore` unpickles never live in the shared sweep folder.

Where they did (SWEEP/slurm/*_submitted.pkl, SWEEP/ray/tune-N/tuner.pkl), a colleague who replaced one ran code as the
next job on the real cluster; the Slurm and Ray tests check that nothing of the kind is written there any more.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ghostsweep.orchestrator.backends.private import PRIVATE_DIR_ENV, private_dir
from ghostsweep.orchestrator.sweepdir.directory import SweepDir


@pytest.fixture
def private_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "private"
    monkeypatch.setenv(PRIVATE_DIR_ENV, str(root))
    return root


def test_each_sweep_gets_its_own_private_folder_outside_it(tmp_path: Path, private_root: Path) -> None:
    first, second = SweepDir(tmp_path / "a" / "paper"), SweepDir(tmp_path / "b" / "paper")
    folder = private_dir(first, "slurm")
    assert folder == private_dir(first, "slurm") and folder.is_dir()
    assert folder.is_relative_to(private_root) and not folder.is_relative_to(first.root)
    assert folder.parent.name.startswith("paper-") and private_dir(second, "slurm") != folder  # same name, elsewhere
    for level in (private_root, folder.parent, folder):
        assert stat.S_IMODE(level.stat().st_mode) == 0o700


@pytest.mark.parametrize("fault", ["writable by others", "a link"])
def test_a_folder_others_could_write_is_refused_in_one_line(tmp_path: Path, private_root: Path, fault: str) -> None:
    sweep = SweepDir(tmp_path / "paper")
    folder = private_dir(sweep, "ray")
    if fault == "a link":
        elsewhere = tmp_path / "colleagues"
        elsewhere.mkdir(mode=0o700)
        folder.rmdir()
        folder.symlink_to(elsewhere)
    else:
        os.chmod(folder.parent, 0o777)
    with pytest.raises(ValueError, match=f"is {fault}") as refused:
        private_dir(sweep, "ray")
    assert "\n" not in str(refused.value) and PRIVATE_DIR_ENV in str(refused.value)
