"""One writer per trial: a lease file that a worker holds while it runs the trial.

Acquire is an atomic `link` of a fully written file (it fails if the lease exists, and readers never see a
half-written lease); the holder refreshes `heartbeat_at` every HEARTBEAT_S; a lease whose heartbeat is older
than STALE_S belongs to a dead worker and may be stolen. Stealing is serialised by a second link-created file,
so two stealers cannot both win; a holder that was only paused finds another token on its next heartbeat.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ghostsweep.trials.trialdir import LEASE_FILE, atomic_write_json, read_json

STEAL_FILE = "lease.steal"
HEARTBEAT_S = 10.0
STALE_S = 120.0


def is_fresh(lease: dict | None, now: float | None = None) -> bool:
    """True when the lease's holder heartbeated recently enough to be alive, and, on this host, still is
    (a worker killed with -9 leaves a recent heartbeat behind; it must not show as running for 2 minutes)."""
    if not lease:
        return False
    if lease.get("host") == socket.gethostname() and not _alive(int(lease.get("pid", 0))):
        return False
    return (now or time.time()) - float(lease.get("heartbeat_at", 0)) <= STALE_S


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

    def _record(self, acquired_at: float) -> dict:
        """`node` is what `status` shows: Slurm's node name when a slurmd started us (several slurmd may share
        a host), else the host name."""
        host = socket.gethostname()
        return {"host": host, "node": os.environ.get("SLURMD_NODENAME", host), "pid": os.getpid(),
                "acquired_at": acquired_at, "heartbeat_at": time.time(), "token": self.token}

    @classmethod
    def acquire(cls, trial_dir: Path) -> Lease | None:
        """The lease, or None when a live worker holds it."""
        lease = cls(Path(trial_dir))
        if _link_new(lease.path, lease._record(time.time())):
            return lease
        return lease if lease._steal_if_stale() else None

    def _steal_if_stale(self) -> bool:
        steal = self.trial_dir / STEAL_FILE
        if not _link_new(steal, {"token": self.token, "at": time.time()}):
            try:
                if time.time() - steal.stat().st_mtime > STALE_S:  # a stealer died mid-steal
                    steal.unlink(missing_ok=True)
            except FileNotFoundError:
                pass
            return False
        try:
            current = read_json(self.path)
            if current is None:  # released meanwhile: compete like any acquirer
                return _link_new(self.path, self._record(time.time()))
            if is_fresh(current):
                return False
            atomic_write_json(self.path, self._record(time.time()))
            return True
        finally:
            steal.unlink(missing_ok=True)

    def heartbeat(self) -> bool:
        """Refresh the heartbeat; False (and `lost`) when another worker has taken the lease."""
        current = read_json(self.path)
        if not current or current.get("token") != self.token:
            self.lost = True
            return False
        atomic_write_json(self.path, current | {"heartbeat_at": time.time()})
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
        current = read_json(self.path)
        if current and current.get("token") == self.token:
            self.path.unlink(missing_ok=True)


def break_dead_lease(trial_dir: Path) -> None:
    """Remove a lease whose holder ran on this host and has exited (killed), without waiting for STALE_S."""
    path = Path(trial_dir) / LEASE_FILE
    lease = read_json(path)
    if lease and lease.get("host") == socket.gethostname() and not _alive(int(lease.get("pid", 0))):
        path.unlink(missing_ok=True)


def wait_until_released(
    trial_dirs: Sequence[Path], poll_s: float, timeout_s: float | None = None, stop: Callable[[], bool] = bool,
) -> list[Path]:
    """Until no trial's lease is fresh (released, stale, or its holder on this host exited), `stop()`, or
    `timeout_s`; returns the trial dirs still held. Dead same-host holders' leases are removed on the way."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        for trial_dir in trial_dirs:
            break_dead_lease(trial_dir)
        held = [Path(d) for d in trial_dirs if is_fresh(read_json(Path(d) / LEASE_FILE))]
        if not held or stop() or (deadline is not None and time.monotonic() >= deadline):
            return held
        time.sleep(poll_s)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0


def _link_new(path: Path, record: dict) -> bool:
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
