"""One clock for leases: liveness and submission order judged on the shared filesystem's clock, never on a time
another machine wrote.

A second host is simulated by a real process on this machine whose `time.time` runs 10 minutes ahead or behind
and whose machine identity (machine id, boot id, pid namespace) is another's: the stand-in for a compute node
without NTP, since this box has one kernel clock and libfaketime is not installed. Both share one filesystem, as
nodes share NFS: its mtimes come from one clock.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ghostsweep.orchestrator.sweepdir import lease
from ghostsweep.orchestrator.sweepdir.lease import Lease, lease_log_overlaps
from ghostsweep.orchestrator.sweepdir.state import read_state
from ghostsweep.trials.trialdir import Outcome, TrialResult, TrialStatus, write_result

SKEWS = [pytest.param(600.0, id="10-min-ahead"), pytest.param(-600.0, id="10-min-behind")]
STALE_S = 2.0  # the holder's silence that means dead, shortened for the test (HEARTBEAT_S 0.2 s below)

OTHER_HOST = """
import os, sys, time
from pathlib import Path
real_time = time.time
time.time = lambda: real_time() + float(sys.argv[2])  # this host's clock is off
from ghostsweep.orchestrator.sweepdir import lease, state
lease.this_machine = lambda: "another-machine/another-boot/pid:[1]"
if sys.argv[3] == "hold":
    if sys.argv[4] != "-":  # a container on another machine whose host name is ours: its pids are not ours
        os.getpid = lambda: int(sys.argv[4])
    held = lease.Lease.acquire(Path(sys.argv[1]))
    held.start_heartbeat(interval_s=0.2)
    print("held" if held else "refused", flush=True)
    time.sleep(600)
else:
    state.mark_queued(Path(sys.argv[1]), "slurm")
"""


def _other_host(trial_dir: Path, skew: float, action: str, pid: str = "-") -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-P", "-c", OTHER_HOST, str(trial_dir), str(skew), action, pid],
                            stdout=subprocess.PIPE, text=True)


@pytest.fixture
def short_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lease, "STALE_S", STALE_S)


@pytest.mark.parametrize("skew", SKEWS)
def test_a_live_holder_on_a_skewed_host_is_running_and_keeps_its_lease(tmp_path: Path, skew: float,
                                                                         short_stale: None) -> None:
    holder = _other_host(tmp_path, skew, "hold")
    try:
        assert holder.stdout.readline().strip() == "held"
        deadline = time.monotonic() + 3 * STALE_S
        while time.monotonic() < deadline:  # over more than STALE_S: heartbeats keep it fresh
            assert read_state(tmp_path).state == TrialStatus.RUNNING
            assert Lease.acquire(tmp_path) is None, "a live lease was taken over"
            time.sleep(0.3)
    finally:
        holder.kill()
        holder.wait()
    assert lease_log_overlaps(tmp_path) == []


@pytest.mark.parametrize("skew", SKEWS)
def test_a_dead_holder_on_a_skewed_host_is_stale_after_stale_s(tmp_path: Path, skew: float,
                                                                short_stale: None) -> None:
    holder = _other_host(tmp_path, skew, "hold")
    assert holder.stdout.readline().strip() == "held"
    holder.send_signal(signal.SIGKILL)  # no pid shortcut: to this machine, the holder is on another one
    holder.wait()
    killed = time.monotonic()
    while (taken := Lease.acquire(tmp_path)) is None:
        assert time.monotonic() - killed < STALE_S + 2.0, "a dead worker's lease still looked fresh"
        time.sleep(0.1)
    assert time.monotonic() - killed >= STALE_S - 0.5  # and not before its silence reached STALE_S
    taken.release()


def test_same_host_name_on_another_machine_is_not_judged_by_our_pids(tmp_path: Path, short_stale: None) -> None:
    """A container elsewhere with our host name and a pid that is dead here: its live lease must stand."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    holder = _other_host(tmp_path, 0.0, "hold", pid=dead.stdout.strip())
    try:
        assert holder.stdout.readline().strip() == "held"
        assert lease.read_lease(tmp_path)["host"] == os.uname().nodename
        assert read_state(tmp_path).state == TrialStatus.RUNNING
        assert Lease.acquire(tmp_path) is None
        lease.break_dead_lease(tmp_path)
        assert (tmp_path / "lease.json").exists()
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("skew", SKEWS)
def test_a_rerun_submitted_from_a_skewed_login_node_reads_queued(tmp_path: Path, skew: float) -> None:
    """Submitted after the failure: queued.json's mtime, not the submitter's `submitted_at`, decides."""
    write_result(tmp_path, TrialResult(status=Outcome.FAILED, trial_id=tmp_path.name, reason="boom"))
    assert read_state(tmp_path).state == TrialStatus.FAILED
    time.sleep(0.05)
    assert _other_host(tmp_path, skew, "queue").wait() == 0
    assert read_state(tmp_path).state == TrialStatus.QUEUED


def test_the_lease_log_shows_a_holder_that_outlived_its_takeover(tmp_path: Path) -> None:
    """The check the chaos suite relies on can fail: a stalled holder taken over, then acting again."""
    first = Lease.acquire(tmp_path)
    aged = (tmp_path / "lease.json").stat().st_mtime - lease.STALE_S - 1
    os.utime(tmp_path / "lease.json", (aged, aged))
    second = Lease.acquire(tmp_path)
    assert second is not None and lease_log_overlaps(tmp_path) == []  # a silent holder: taken over, fine
    assert not first.heartbeat()  # ... but it was alive after all, and says so in the log
    assert lease_log_overlaps(tmp_path) == [f"line 3: lost by {first.token} after another worker took over"]
    second.release()
