"""Atomic files and resumable state: a crash at any instant leaves either the old file or the new one.

Fault injection for tests: with GHOSTSWEEP_CRASH_BEFORE_RENAME=N the process dies (os._exit) after writing and
fsyncing the checkpoint of iteration N to its temporary file, before the rename.
"""

from __future__ import annotations

import io
import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

CRASH_ENV = "GHOSTSWEEP_CRASH_BEFORE_RENAME"
CRASH_EXIT_CODE = 86


def atomic_write_bytes(path: Path, data: bytes, crash_before_rename: bool = False) -> None:
    """Write to a temporary file in the same directory, fsync it, rename over `path`, fsync the directory."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    if crash_before_rename:
        os._exit(CRASH_EXIT_CODE)
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def atomic_write_lines(path: Path, rows: list[dict[str, Any]]) -> None:
    atomic_write_bytes(path, "".join(json.dumps(row) + "\n" for row in rows).encode())


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def remove_stale_temporaries(directory: Path) -> None:
    """Temporaries left by a crash between write and rename are garbage: the renamed files are the truth."""
    for tmp in directory.glob(".*.tmp-*"):
        tmp.unlink(missing_ok=True)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    crash = os.environ.get(CRASH_ENV) == str(state["iteration"])
    atomic_write_bytes(path, buffer.getvalue(), crash_before_rename=crash)


def load_checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def rng_states() -> dict[str, Any]:
    """Every global RNG, in types `torch.load(weights_only=True)` accepts."""
    version, mt_state, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"name": np_name, "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "python": {"version": version, "state": list(mt_state), "gauss": gauss},
    }


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    n = states["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["name"], keys, n["pos"], n["has_gauss"], n["gauss"]))
    p = states["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
