"""Where a backend keeps the files it will later execute, outside the shared sweep folder.

submitit's job pickles and Tune's experiment state (`tuner.pkl`) are unpickled by the job or by `Tuner.restore`, and
a Ray driver's working directory is on every worker's `sys.path`. In the sweep folder, which colleagues can write,
a planted pickle or module would run as the next job. So they live in a folder of the submitting user's own:
`$GHOSTSWEEP_PRIVATE_DIR/<sweep name>-<hash of its path>/<backend>` (default `~/.ghostsweep/private`, the home
directory being on a filesystem the nodes share on most clusters), each level created mode 0700 and refused, in
one line, when it is a link, another user's, or writable by others.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path

from ghostsweep.orchestrator.sweepdir.directory import SweepDir

PRIVATE_DIR_ENV = "GHOSTSWEEP_PRIVATE_DIR"


def private_root() -> Path:
    return Path(os.environ.get(PRIVATE_DIR_ENV) or Path.home() / ".ghostsweep" / "private").absolute()


def private_dir(sweep: SweepDir, backend: str) -> Path:
    """This sweep's private folder for `backend`, created (0700) and checked on every call."""
    root = private_root()
    sweep_path = sweep.root.resolve()
    key = hashlib.sha256(str(sweep_path).encode()).hexdigest()[:16]
    readable_name = re.sub(r"[^A-Za-z0-9._-]", "_", sweep_path.name)[:64]  # the path reaches job scripts
    path = root / f"{readable_name}-{key}" / backend
    for level in (root, path.parent, path):  # each its own mkdir: `parents` makes missing parents without `mode`
        level.mkdir(mode=0o700, parents=True, exist_ok=True)
        _check_private(level)
    return path


def _check_private(path: Path) -> None:
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        problem = "a link" if stat.S_ISLNK(info.st_mode) else "not a folder"
    elif info.st_uid != os.getuid():
        problem = f"owned by uid {info.st_uid}, not you"
    elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problem = f"writable by others (mode {stat.S_IMODE(info.st_mode):o})"
    else:
        return
    raise ValueError(f"{path} is {problem}: the backend's job files must be private to you (set "
                     f"{PRIVATE_DIR_ENV} to a folder of your own on a filesystem the nodes share)")
