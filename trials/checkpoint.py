"""Resumable state, written atomically: a crash at any instant leaves either the old checkpoint or the new one.

Verified before use: CHECKPOINT_DIGEST_FILE beside the checkpoint records the size and sha256 of the newest
checkpoint and of the one before it, which is kept as PREVIOUS_CHECKPOINT_FILE (a hard link: no copy). A
checkpoint that fails its check (truncated, bit rot, a torn copy) is set aside (kept, renamed `*.corrupt-N`) and
the previous one is used, else the trial starts afresh; `load_latest` says which, for the trial's note. Any
verified checkpoint resumes bitwise, so falling back costs time, never correctness.

Order of a save: digests of the new and the current checkpoint; current linked as previous; new renamed into
place. A crash between any two steps leaves every file that exists matching a recorded digest.

Fault injection for tests: with GHOSTSWEEP_CRASH_BEFORE_RENAME=N the process dies (os._exit) after writing and
fsyncing the checkpoint of iteration N to its temporary file, before the rename.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ghostsweep.trials.files import UnreadableFile, atomic_write_bytes, atomic_write_json, read_bounded, read_json
from ghostsweep.trials.trialdir import (
    CHECKPOINT_DIGEST_FILE,
    CHECKPOINT_FILE,
    PREVIOUS_CHECKPOINT_FILE,
    set_aside,
)

CRASH_ENV = "GHOSTSWEEP_CRASH_BEFORE_RENAME"
MAX_CHECKPOINT_BYTES = 4 << 30  # the largest registry model (VGG-16) with its momentum is ~120 MB


def save_checkpoint(out_dir: Path, state: dict[str, Any]) -> None:
    """checkpoint.pt of `state`; the one it replaces stays as checkpoint.prev.pt; both digests recorded."""
    out_dir = Path(out_dir)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    current, previous = out_dir / CHECKPOINT_FILE, out_dir / PREVIOUS_CHECKPOINT_FILE
    kept = [entry for entry in [_recorded(out_dir, current)] if entry is not None]
    atomic_write_json(out_dir / CHECKPOINT_DIGEST_FILE, {"checkpoints": [_digest(data), *kept]})
    if kept:
        link = previous.with_name(f".{previous.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        os.link(current, link, follow_symlinks=False)
        os.replace(link, previous)
        link.unlink(missing_ok=True)  # rename() between two links to one file does nothing, leaving `link`
    crash = os.environ.get(CRASH_ENV) == str(state["iteration"])
    atomic_write_bytes(current, data, crash_before_rename=crash)


def load_latest(out_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The newest checkpoint that passes its check (None: start afresh), and a note when it is not checkpoint.pt
    or something had to be set aside. Failed files are set aside, kept. Without a digest file (a folder from
    before digests, or an unreadable one) a checkpoint is checked only by loading it."""
    out_dir = Path(out_dir)
    current, previous = out_dir / CHECKPOINT_FILE, out_dir / PREVIOUS_CHECKPOINT_FILE
    problems: list[str] = []
    digests = _read_digests(out_dir, problems)
    known = None if digests is None else {(entry["size"], entry["sha256"]) for entry in digests}
    for path in (current, previous):
        if not path.exists():
            if path == current and previous.exists():
                problems.append(f"{path.name} is missing")
            continue
        try:
            data = read_bounded(path, MAX_CHECKPOINT_BYTES)
        except UnreadableFile as error:  # a link, a FIFO (a read would wait forever), a device: never loaded
            problems.append(f"{path.name} {error} (set aside as {set_aside(path).name})")
            continue
        if data is None:  # removed since listed
            continue
        if known is not None and (len(data), hashlib.sha256(data).hexdigest()) not in known:
            problems.append(f"{path.name} failed its size/sha256 check (set aside as {set_aside(path).name})")
            continue
        try:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001  (whatever a torn file raises, the next one may do)
            problems.append(f"{path.name} does not load ({type(error).__name__}; set aside as "
                            f"{set_aside(path).name})")
            continue
        if not problems:
            return state, None
        return state, f"{'; '.join(problems)}; resumed from {path.name} at iteration {state['iteration']}"
    return None, (f"{'; '.join(problems)}; no good checkpoint left: started afresh" if problems else None)


def _read_digests(out_dir: Path, problems: list[str] | None = None) -> list[dict[str, Any]] | None:
    """The recorded digests; None when there are none, or when the file is unreadable (then set aside and said
    in `problems`, if given)."""
    path = out_dir / CHECKPOINT_DIGEST_FILE
    try:
        data = read_json(path)
        return None if data is None else [{"size": int(e["size"]), "sha256": str(e["sha256"])}
                                          for e in data["checkpoints"]]
    except (ValueError, TypeError, KeyError) as error:
        if problems is not None:
            problems.append(f"{path.name} is unreadable ({type(error).__name__}; set aside as "
                            f"{set_aside(path).name})")
        return None


def _digest(data: bytes) -> dict[str, Any]:
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _recorded(out_dir: Path, path: Path) -> dict[str, Any] | None:
    """The digest of the checkpoint at `path` when it is one we recorded (a corrupt file is never kept as the
    previous one); unchecked where no digests were recorded."""
    try:
        data = read_bounded(path, MAX_CHECKPOINT_BYTES)
    except UnreadableFile:  # planted while the trial ran: a link, a FIFO (a read would wait), /dev/zero
        return None
    if data is None:
        return None
    entry = _digest(data)
    digests = _read_digests(out_dir)
    return entry if digests is None or entry in digests else None


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
