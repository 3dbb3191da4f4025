"""A stop request that signal handlers set and the training loop polls."""

from __future__ import annotations


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
