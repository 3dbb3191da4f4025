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
import stat
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

CRASH_EXIT_CODE = 86
# What a reader takes at most. A folder others write to may hold anything: a link out of it, a FIFO (a read waits
# forever), /dev/zero (a read never ends), a file of gigabytes. The caps are far above what our writers write:
MAX_RECORD_BYTES = 1 << 20  # 1 MiB: result.json is ~1 kB (+0.2 kB per rank); config/queued/progress/lease less
MAX_LINES_BYTES = 64 << 20  # 64 MiB: a 125k-iteration VGG trial evaluating every iteration writes ~30 MB of metrics
MAX_JSON_BYTES = 512 << 20  # any other JSON: sweep.json of 10⁵ trials (the spec's cap) at ~1.4 kB each, the cache


class UnreadableFile(ValueError):
    """A file refused unread: a symbolic link, not a regular file, or larger than its cap."""


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


def read_bounded(path: Path | str, limit: int) -> bytes | None:
    """The file's bytes, or None when it does not exist (yet); UnreadableFile, without reading, for a symbolic
    link (O_NOFOLLOW), a FIFO, device or folder (O_NONBLOCK: opening a FIFO does not wait for a writer) or a file
    over `limit` bytes, and never more than `limit` + 1 bytes read (a file that grows while we read)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError:
        if os.path.islink(path):  # ELOOP (Linux) or EMLINK (FreeBSD): the last component is a link
            raise UnreadableFile("is a symbolic link (refused: it may point anywhere)") from None
        raise
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFile(f"is not a regular file (a {_file_kind(info.st_mode)})")
        if info.st_size > limit:
            raise UnreadableFile(f"is {info.st_size:,} bytes, over the {limit:,} this file may have")
        parts, size = [], 0
        while size <= limit:
            part = os.read(descriptor, limit + 1 - size)
            if not part:
                break
            parts.append(part)
            size += len(part)
    finally:
        os.close(descriptor)
    if size > limit:
        raise UnreadableFile(f"grew past the {limit:,} bytes this file may have while being read")
    return b"".join(parts)


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"),
             (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"))
    return next((name for test, name in kinds if test(mode)), "special file")


def read_json(path: Path | str, limit: int = MAX_JSON_BYTES) -> Any | None:
    """The file's JSON, or None when it does not exist (yet); a file `read_bounded` refuses is an UnreadableFile.
    A trial's own records pass MAX_RECORD_BYTES.
    Parsed from bytes (JSON is UTF-8): a third faster than through a text wrapper, which `status` over 10⁴ trials
    feels."""
    data = read_bounded(path, limit)
    return None if data is None else json.loads(data)


def read_lines(path: Path | str, limit: int = MAX_LINES_BYTES) -> list[dict[str, Any]]:
    """A JSON-lines file's rows; none when it does not exist (yet). Parsed as one array when that gives one value
    per line (a tenth of the time of a parse per line: the report reads 10⁴ curves), else line by line, so a bad
    line fails as it would alone."""
    data = read_bounded(path, limit)
    if data is None:
        return []
    lines = [line for line in data.decode("utf-8").splitlines() if line.strip()]
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
