"""One writer per trial: a lease file that a worker holds while it runs the trial.

Acquire is an atomic `link` of a fully written file (it fails if the lease exists, and readers never see a
half-written lease); the holder touches it every HEARTBEAT_S; a lease not touched for STALE_S belongs to a
dead worker and may be stolen. Stealing is serialised by a second link-created file, so two stealers cannot both
win; a holder that was only paused finds another token on its next heartbeat.

One clock: every age is the lease file's mtime against the mtime of a probe file just written to the same
filesystem (`filesystem_now`), both stamped by the file server, never a time written by another machine, whose
clock may be minutes off. The pid shortcut (a killed holder is dead at once) applies only when the lease was
written by this very machine: same machine id, boot and pid namespace, not merely the same host name.

Every acquisition, steal, release and loss is appended to the trial's `leases.jsonl` (LEASE_LOG), so a test can
check from the files alone that no trial ever had two live holders.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ghostsweep.trials.files import MAX_RECORD_BYTES, open_for_append
from ghostsweep.trials.trialdir import LEASE_FILE, LEASE_LOG, atomic_write_json, read_json, read_lines

STEAL_FILE = "lease.steal"
HEARTBEAT_S = 10.0
STALE_S = 120.0
PROBE_PREFIX = ".clock-probe.tmp-"  # a temporary's name: one left by a crash is cleaned like any other
LEASE_TYPES = {"host": str, "node": str, "pid": int, "machine": str, "token": str}  # what `Lease._record` writes


def filesystem_now(directory: Path) -> float:
    """The filesystem's clock: the mtime of a probe file just written in `directory`. Where the directory is not
    writable (a read-only view of a sweep), this machine's clock is the only one left."""
    probe = Path(directory) / f"{PROBE_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        descriptor = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError:
        return time.time()
    try:
        os.write(descriptor, b"0")  # on NFS the server stamps the mtime of a write
        return os.fstat(descriptor).st_mtime
    finally:
        os.close(descriptor)
        probe.unlink(missing_ok=True)


@functools.cache
def this_machine() -> str:
    """Who may use the pid shortcut: machine id, boot id and pid namespace (containers share host names, and
    pid numbers mean something only inside one namespace of one boot)."""
    parts = []
    for path in ("/etc/machine-id", "/proc/sys/kernel/random/boot_id"):
        try:
            parts.append(Path(path).read_text().strip())
        except OSError:
            parts.append("?")
    try:
        parts.append(os.readlink("/proc/self/ns/pid"))
    except OSError:
        parts.append("?")
    return "/".join(parts)


def lease_age(trial_dir: Path, now: float | None = None) -> float | None:
    """Seconds since the lease was last written, on the filesystem's clock; None without a lease."""
    try:
        mtime = (Path(trial_dir) / LEASE_FILE).stat().st_mtime
    except FileNotFoundError:
        return None
    return (filesystem_now(Path(trial_dir)) if now is None else now) - mtime


def read_lease(trial_dir: Path) -> dict[str, Any] | None:
    """The lease record; an unreadable one, or one with a value of another type than `LEASE_TYPES` says (a list
    for a node), is an empty record (its age alone then decides)."""
    try:
        lease = read_json(Path(trial_dir) / LEASE_FILE, MAX_RECORD_BYTES)
    except (ValueError, OSError):
        return {}
    if lease is None:
        return None
    typed = isinstance(lease, dict) and all(
        isinstance(lease[key], kind) and not isinstance(lease[key], bool) for key, kind in LEASE_TYPES.items()
        if key in lease)
    return lease if typed else {}


def is_fresh(trial_dir: Path, now: float | None = None) -> bool:
    """True when the lease was rewritten within STALE_S (filesystem clock) and, when this machine wrote it, its
    holder still lives (a worker killed with -9 leaves a young lease behind; it must not show as running for 2
    minutes). `now`: a `filesystem_now` of the same filesystem, to probe once for many trials."""
    lease = read_lease(trial_dir)
    if lease is None:
        return False
    if written_here(lease) and not _alive(int(lease.get("pid", 0))):
        return False
    age = lease_age(trial_dir, now)
    return age is not None and age <= STALE_S


def written_here(lease: dict[str, Any]) -> bool:
    return lease.get("machine") == this_machine()


@dataclass
class Lease:
    trial_dir: Path
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    lost: bool = False

    @property
    def path(self) -> Path:
        return self.trial_dir / LEASE_FILE

    def _record(self) -> dict[str, Any]:
        """`node` is what `status` shows: Slurm's node name when a slurmd started us (several slurmd may share
        a host), else the host name. No time: a reader judges age by the file's mtime."""
        host = socket.gethostname()
        return {"host": host, "node": os.environ.get("SLURMD_NODENAME", host), "pid": os.getpid(),
                "machine": this_machine(), "token": self.token}

    @classmethod
    def acquire(cls, trial_dir: Path) -> Lease | None:
        """The lease, or None when a live worker holds it."""
        lease = cls(Path(trial_dir))
        if _link_new(lease.path, lease._record()):
            lease._log("acquired")
            return lease
        return lease if lease._steal_if_stale() else None

    def _steal_if_stale(self) -> bool:
        steal = self.trial_dir / STEAL_FILE
        if not _link_new(steal, {"token": self.token}):
            try:
                if filesystem_now(self.trial_dir) - steal.stat().st_mtime > STALE_S:  # a stealer died mid-steal
                    steal.unlink(missing_ok=True)
            except FileNotFoundError:
                pass
            return False
        try:
            if not self.path.exists():  # released meanwhile: compete like any acquirer
                won = _link_new(self.path, self._record())
                if won:
                    self._log("acquired")
                return won
            if is_fresh(self.trial_dir):
                return False
            previous = read_lease(self.trial_dir) or {}
            atomic_write_json(self.path, self._record())
            self._log("stole", previous=previous.get("token"))
            return True
        finally:
            steal.unlink(missing_ok=True)

    def heartbeat(self) -> bool:
        """Touch the lease (its mtime, stamped by the filesystem, is the heartbeat; touching never replaces a
        stealer's file); False (and `lost`) when another worker took it."""
        current = read_lease(self.trial_dir)
        if not current or current.get("token") != self.token:
            self.lost = True
            self._log("lost")
            return False
        try:
            os.utime(self.path)
        except FileNotFoundError:  # removed as a dead holder's (break_dead_lease): we are not its holder now
            self.lost = True
            self._log("lost")
            return False
        return True

    def start_heartbeat(
        self, interval_s: float = HEARTBEAT_S, on_lost: Callable[[Path], None] | None = None
    ) -> None:
        """Heartbeat from a daemon thread; `on_lost(trial_dir)` runs if another worker takes the lease."""

        def beat() -> None:
            while not self._stop.wait(interval_s):
                if not self.heartbeat():
                    if on_lost is not None:
                        on_lost(self.trial_dir)
                    return

        self._thread = threading.Thread(target=beat, name=f"lease-{self.trial_dir.name}", daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        current = read_lease(self.trial_dir)
        if current and current.get("token") == self.token:
            self._log("released")
            self.path.unlink(missing_ok=True)

    def _log(self, event: str, **extra: Any) -> None:
        append_lease_event(self.trial_dir, {"event": event, "token": self.token, "pid": os.getpid(),
                                            "machine": this_machine(), **extra})


def append_lease_event(trial_dir: Path, event: dict[str, Any]) -> None:
    """One line appended to the trial's LEASE_LOG (O_APPEND: concurrent writers' lines do not interleave), in the
    order the filesystem saw them; never rewritten."""
    line = (json.dumps(event) + "\n").encode()
    descriptor = open_for_append(Path(trial_dir) / LEASE_LOG)
    try:
        os.write(descriptor, line)
    finally:
        os.close(descriptor)


def lease_log_overlaps(trial_dir: Path) -> list[str]:
    """Where the trial's LEASE_LOG shows two live holders at once: an acquisition while another holder had not
    let go, or a holder still acting (released, lost) after another took over. A holder lets go by a release,
    by dying (`killed`, a test's kill -9, or `broken`: removed as dead) or by finding itself displaced (`lost`)."""
    holder: str | None = None
    displaced: set[str] = set()
    dead: set[str] = set()
    overlaps = []
    for number, row in enumerate(read_lines(Path(trial_dir) / LEASE_LOG), 1):
        event, token = row.get("event"), row.get("token")
        if token in dead:
            continue  # a dead holder's lease, removed or stolen: nothing of it runs
        if token in displaced:
            overlaps.append(f"line {number}: {event} by {token} after another worker took over")
        elif event == "acquired":
            if holder is not None:
                overlaps.append(f"line {number}: acquired by {token} while {holder} held the lease")
            holder = token
        elif event == "stole":
            if holder is not None and holder != row.get("previous"):
                overlaps.append(f"line {number}: stole from {row.get('previous')} while {holder} held the lease")
            if row.get("previous") not in dead:
                displaced.add(row.get("previous"))
            holder = token
        elif event in ("killed", "broken"):  # broken: judged dead, so it must never act again
            (dead if event == "killed" else displaced).add(token)
            holder = None if token == holder else holder
        elif event in ("released", "lost") and token == holder:
            holder = None
    return overlaps


def break_dead_lease(trial_dir: Path) -> None:
    """Remove a lease whose holder ran on this machine and has exited (killed), without waiting for STALE_S."""
    path = Path(trial_dir) / LEASE_FILE
    lease = read_lease(trial_dir)
    if lease and written_here(lease) and not _alive(int(lease.get("pid", 0))):
        path.unlink(missing_ok=True)
        append_lease_event(trial_dir, {"event": "broken", "token": lease.get("token"), "pid": os.getpid(),
                                       "machine": this_machine(), "dead_pid": lease.get("pid")})


def wait_until_released(
    trial_dirs: Sequence[Path], poll_s: float, timeout_s: float | None = None, stop: Callable[[], bool] = bool,
) -> list[Path]:
    """Until no trial's lease is fresh (released, stale, or its holder on this machine exited), `stop()`, or
    `timeout_s`; returns the trial dirs still held. Dead same-machine holders' leases are removed on the way."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        for trial_dir in trial_dirs:
            break_dead_lease(trial_dir)
        held = [Path(d) for d in trial_dirs if is_fresh(Path(d))]
        if not held or stop() or (deadline is not None and time.monotonic() >= deadline):
            return held
        time.sleep(poll_s)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # no such process; no such pid (a lease file says anything)
        return False
    except PermissionError:
        return True
    return pid > 0


def _link_new(path: Path, record: dict[str, Any]) -> bool:
    """Create `path` with `record` only if it does not exist, atomically (hard link of a complete file)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    atomic_write_json(tmp, record)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
