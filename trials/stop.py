"""A stop request that signal handlers set and the training loop polls."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterable

STOP_SIGNALS = (signal.SIGUSR2, signal.SIGTERM)  # Slurm's time-limit warning, and preemption


class StopRequest:
    """Like `threading.Event`'s set/is_set, but setting it takes no lock.

    Slurm signals every process of a job step and our backends forward the same signal again, so a second
    USR2 can arrive while the handler of the first still runs. `Event.set` holds a lock there; the nested
    handler then waits on it forever (or, under a burst, recurses until RecursionError). Assigning an attribute
    cannot block, and the flag only ever goes from unset to set.
    """

    def __init__(self) -> None:
        self._requested = False

    def set(self, *_signal: object) -> None:
        """Request the stop; takes (signum, frame) too, so that it can be installed as a signal handler."""
        self._requested = True

    def is_set(self) -> bool:
        return self._requested


def request_stop_on_signals() -> StopRequest:
    """A stop request that STOP_SIGNALS set from now on: installed before anything slow (imports, data), so a
    preemption that early still ends the trial "interrupted" instead of killing it. Off the main thread (Ray Train
    runs each DDP rank in a side thread) signals never arrive and cannot be handled: the rank ends with its actor.
    """
    stop = StopRequest()
    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            signal.signal(signum, stop.set)
    return stop


def ignore_late_signals(signums: Iterable[int] = STOP_SIGNALS) -> None:
    """For a process whose trial has ended: nothing is left to stop. Python resets handlers to the default
    (terminate) at shutdown, so a late duplicate of the stop signal would turn "interrupted" into "killed"."""
    for signum in signums:
        signal.signal(signum, signal.SIG_IGN)
