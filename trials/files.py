"""Atomic files that other processes (on other nodes) read while we write them; torch-free, shared by the
trial runner and the orchestrator.

A reader sees the old file or the new one, never a torn one: write a temporary file in the same directory,
fsync it, rename it over the target, fsync the directory. Temporaries are named `.<name>.tmp-<pid>-<random>`,
so a crash leaves garbage that `remove_stale_temporaries` recognises.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

CRASH_EXIT_CODE = 86


def atomic_write_bytes(path: Path, data: bytes, crash_before_rename: bool = False) -> None:
    """`crash_before_rename` (a test hook) kills the process after the fsync, before the rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if crash_before_rename:
            os._exit(CRASH_EXIT_CODE)
        os.replace(tmp, path)
    except BaseException:  # a failed write leaves no temporary behind
        tmp.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def open_for_append(path: Path) -> int:
    """A descriptor appending to `path` (created if missing), never through a symlink planted in its place: a
    shared folder is anyone's to edit, and a link would carry our writes to a file of theirs (OSError ELOOP)."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def atomic_write_lines(path: Path, rows: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in rows))


def read_json(path: Path) -> Any | None:
    """The file's JSON, or None when it does not exist (yet). Read as bytes (JSON is UTF-8): a third faster than
    through a text wrapper, which `status` over 10⁴ trials feels."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return None
    return json.loads(data)


def read_lines(path: Path) -> list[dict[str, Any]]:
    """A JSON-lines file's rows; none when it does not exist (yet). Parsed as one array when that gives one value
    per line (a tenth of the time of a parse per line: the report reads 10⁴ curves), else line by line, so a bad
    line fails as it would alone."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    lines = [line for line in text.splitlines() if line.strip()]
    try:
        rows = json.loads(f"[{','.join(lines)}]")
    except ValueError:
        rows = None
    if rows is None or len(rows) != len(lines):
        rows = [json.loads(line) for line in lines]
    return rows


def remove_stale_temporaries(directory: Path) -> None:
    """Temporaries left by a crash between write and rename are garbage: the renamed files are the truth."""
    for tmp in Path(directory).glob(".*.tmp-*"):
        tmp.unlink(missing_ok=True)


def source_digest(*modules: ModuleType) -> str:
    """sha256 of these modules' source, a package's being every .py file under its folder (sorted): what a cached
    product was made by, so a file added to or moved within a package is covered without a hand-kept list."""
    digest = hashlib.sha256()
    for module in modules:
        path = Path(module.__file__ or "")
        files = sorted(path.parent.rglob("*.py")) if path.name == "__init__.py" else [path]
        for file in files:
            digest.update(file.relative_to(path.parent).as_posix().encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()
