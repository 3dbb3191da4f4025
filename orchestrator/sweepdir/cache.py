"""The per-trial read cache that `status` and `report` share: a settled trial is read once and remembered.

A trial is settled when only a change to a file in its folder can change what we read: every state but running and
unreadable. `read_state` depends on the clock only through a lease's freshness: a trial that is not running has no
lease or a stale one, and only a rewrite or touch of lease.json, which changes the signature, makes it fresh again.
Running and unreadable trials are always read live: a running trial's lease ages with the time, and an unreadable
trial's reason names the path the sweep was given by. A queued trial that starts writes its lease: a new signature.
Each remembered trial is keyed by the stat signature of its folder and of every file `read_state` and the learning
curve read: (size, mtime_ns, inode), or absent. A file replaced (every writer renames), rewritten, appended to,
created or deleted changes the signature, and the trial is read again. The signature holds the files' own stats,
stamped by the filesystem that holds them, so another host writing on a shared filesystem is seen like this one.
Only trials whose files are older than `RACY_S` on that filesystem's clock are remembered: two rewrites within one
mtime tick (a second, on some filesystems) can leave size and mtime equal, and the inode reused.

All of it lives in one file, `CACHE_FILE` in the sweep directory, written atomically by `status` and `report`. A
torn, corrupt or foreign (other format, other code) cache is ignored and written afresh; one that cannot be written
is skipped. Neither is ever an error. `GHOSTSWEEP_TRIAL_CACHE=off` reads every trial live and leaves the file alone.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ghostsweep.orchestrator import sweepdir as sweepdir_package
from ghostsweep.orchestrator.sweepdir.directory import TRIALS_DIR, SweepDir
from ghostsweep.orchestrator.sweepdir.lease import STALE_S, filesystem_now
from ghostsweep.orchestrator.sweepdir.state import TrialState, read_state
from ghostsweep.trials import files, trialdir
from ghostsweep.trials.files import source_digest
from ghostsweep.trials.trialdir import (
    CURVE_METRIC,
    LEASE_FILE,
    METRICS_FILE,
    PROGRESS_FILE,
    QUEUED_FILE,
    RESULT_FILE,
    ProgressRecord,
    TrialResult,
    TrialStatus,
    atomic_write_text,
    finite_number,
    read_json,
    read_metrics,
)

CACHE_FILE = ".trial-cache.json"
CACHE_FORMAT = 2
CACHE_SWITCH = "GHOSTSWEEP_TRIAL_CACHE"  # "off": read every trial live
SIGNED_FILES = (RESULT_FILE, QUEUED_FILE, LEASE_FILE, PROGRESS_FILE, METRICS_FILE)
RACY_S = 2.0

Curve = list[tuple[int, float]]


class TrialRead:
    """A trial as read from its folder: its state and, when asked for, its learning curve ((iteration,
    `CURVE_METRIC`) from metrics.jsonl), and `digest`, a digest of both that is the same whether the trial was
    remembered or read live. A remembered read is built on first use (a `report` that reuses its files needs only
    the digests); an entry that is not one we wrote is read live then."""

    def __init__(self, folder: str, now: float, curves: bool, entry: dict[str, Any] | None = None,
                 live: tuple[TrialState, Curve] | None = None) -> None:
        self._folder, self._now, self._curves, self._entry = folder, now, curves, entry
        if live is not None:
            self._parts = live

    @functools.cached_property
    def _parts(self) -> tuple[TrialState, Curve]:
        return _from_entry(os.path.basename(self._folder), self._entry, self._curves) or _read_live(
            self._folder, self._now, self._curves)

    @property
    def state(self) -> TrialState:
        return self._parts[0]

    @property
    def curve(self) -> Curve:
        return self._parts[1]

    @functools.cached_property
    def digest(self) -> str:
        if self._entry is not None and "digest" in self._entry:
            return self._entry["digest"]
        return _content_digest(self._entry or _to_entry(self._parts, None, self._curves))


def read_states(sweep: SweepDir, now: float | None = None, remember: bool = False) -> list[TrialState]:
    """Every trial's state in plan order (what `read_state` gives), settled trials from the cache."""
    return [read.state for read in read_trials(sweep, now, remember=remember)]


def read_trials(sweep: SweepDir, now: float | None = None, curves: bool = False,
                remember: bool = False) -> list[TrialRead]:
    """Every trial in plan order, with its learning curve when `curves`; settled trials come from the cache.
    `remember`: bring the cache file up to date (`status` and `report` do; other readers only use it, so that
    e.g. `extend --dry-run` writes nothing). `now`: the filesystem's clock, as for `read_state`."""
    enabled = os.environ.get(CACHE_SWITCH, "").strip().lower() not in ("off", "0", "false", "no")
    if now is None:
        now = filesystem_now(sweep.root)
    trials_root = os.path.join(os.path.normpath(sweep.root), TRIALS_DIR)
    cache_path = os.path.join(sweep.root, CACHE_FILE)
    cached = _load(cache_path) if enabled else {}
    enabled = enabled and (remember or bool(cached))  # nothing to use or keep: read live without signing
    entries: dict[str, dict[str, Any]] = {}
    changed = False
    reads = []
    for trial_id in sweep.trial_ids():
        folder = os.path.join(trials_root, trial_id)
        if not enabled:
            reads.append(TrialRead(folder, now, curves, live=_read_live(folder, now, curves)))
            continue
        entry = cached.get(trial_id)
        # before reading: a change while we read shows as a new signature next time
        signature = _signature(folder, entry["sig"] if entry is not None else None)
        if entry is not None and signature is not None and entry["sig"] == signature:
            if curves and "curve" not in entry:  # remembered by `status`, which reads no curves
                entry = entry | {"curve": _curve_text(read_curve(os.path.join(folder, METRICS_FILE)))}
            if curves and "digest" not in entry:
                entry = entry | {"digest": _content_digest(entry)}
                changed = True
            read = TrialRead(folder, now, curves, entry)
        else:
            live = _read_live(folder, now, curves)
            entry = _to_entry(live, signature, curves) if _rememberable(live[0], signature, now) else None
            if entry is not None and curves:
                entry["digest"] = _content_digest(entry)
            changed |= entry is not None or trial_id in cached
            read = TrialRead(folder, now, curves, entry, live)
        if entry is not None:
            entries[trial_id] = entry
        reads.append(read)
    if remember and enabled and (changed or entries.keys() != cached.keys()):
        _save(cache_path, entries)
    return reads


def _content_digest(entry: dict[str, Any]) -> str:
    """Of what an entry says about its trial (not of its signature): equal for a remembered read and a live one."""
    content = {key: value for key, value in entry.items() if key not in ("sig", "digest")}
    return hashlib.sha256(json.dumps(content, separators=(",", ":")).encode()).hexdigest()[:32]


def _read_live(folder: str, now: float, curves: bool) -> tuple[TrialState, Curve]:
    return read_state(folder, now), read_curve(os.path.join(folder, METRICS_FILE)) if curves else []


def read_curve(path: str) -> Curve:
    """A trial's learning curve; none when metrics.jsonl is unreadable (its trial's rerun repairs it, the rest
    report). A point that is not a finite number is left out: JSON has no NaN, and no accuracy is one."""
    try:
        rows = read_metrics(path)
    except (ValueError, OSError):
        return []
    return [(row["iteration"], row[CURVE_METRIC]) for row in rows if finite_number(row.get(CURVE_METRIC))]


def _signature(folder: str, remembered: list[Any] | None) -> list[Any] | None:
    """The folder's (mtime_ns, inode), then (name, size, mtime_ns, inode) of each present file of
    `SIGNED_FILES`; None when the folder cannot be read (then nothing is remembered). When the folder's own
    stats are the `remembered` signature's, its names are too (an entry is remembered only once the folder is
    older than `RACY_S`, so any later rename, creation or deletion stamps a newer mtime): the listing is skipped."""
    try:
        stat = os.stat(folder)
        signature: list[Any] = [stat.st_mtime_ns, stat.st_ino]
        if remembered is not None and remembered[:2] == signature:
            present = [file[0] for file in remembered[2:]]
        else:
            present = os.listdir(folder)
        for name in SIGNED_FILES:
            if name in present:
                stat = os.stat(f"{folder}/{name}")
                signature.append([name, stat.st_size, stat.st_mtime_ns, stat.st_ino])
    except (OSError, TypeError):
        return None
    return signature


def _rememberable(state: TrialState, signature: list[Any] | None, now: float) -> bool:
    """Settled (nothing but a file in its folder can change it) and older than `RACY_S` on the filesystem's
    clock."""
    if signature is None:
        return False
    settled = state.state not in (TrialStatus.RUNNING, TrialStatus.UNREADABLE)
    newest = max([signature[0], *(file[2] for file in signature[2:])])
    # a young lease whose holder died here is not fresh, but would be if its pid were reused: not remembered
    lease_young = any(file[0] == LEASE_FILE and file[2] >= (now - STALE_S) * 1e9 for file in signature[2:])
    return settled and not lease_young and newest < (now - RACY_S) * 1e9


def _to_entry(live: tuple[TrialState, Curve], signature: list[Any] | None, with_curve: bool) -> dict[str, Any]:
    state, curve = live
    result = None if state.result is None else {k: v for k, v in vars(state.result).items() if v is not None}
    entry = {
        "sig": signature, "state": state.state.value, "reason": state.reason, "backend": state.backend,
        "job_id": state.job_id, "attempt": state.attempt,
        "progress": None if state.progress is None else state.progress.to_dict(), "result": result,
        "lease": state.lease, "node": state.node,
    }
    return entry | {"curve": _curve_text(curve)} if with_curve else entry


def _curve_text(curve: Curve) -> str:
    """A curve as the cache holds it: JSON text inside the JSON, so that loading the cache does not decode
    10⁴ curves that only a report which rebuilds its files needs."""
    return json.dumps(curve, separators=(",", ":"))


def _from_entry(trial_id: str, entry: dict[str, Any] | None, curves: bool) -> tuple[TrialState, Curve] | None:
    """The remembered read, or None when the entry is not one we wrote (then the trial is read live)."""
    try:
        progress, result = entry["progress"], entry["result"]
        state = TrialState(
            trial_id=trial_id, state=TrialStatus(entry["state"]), reason=entry["reason"], backend=entry["backend"],
            job_id=entry["job_id"], attempt=entry["attempt"],
            progress=None if progress is None else ProgressRecord.from_dict(progress),
            result=None if result is None else TrialResult.from_dict(result),
            lease=entry["lease"], node=entry["node"])
        curve = list(map(tuple, json.loads(entry.get("curve", "[]")))) if curves else []
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    typed = (all(isinstance(value, str | None) for value in (state.reason, state.backend, state.job_id, state.node))
             and type(state.attempt) is int and isinstance(state.lease, dict | None)
             and all(len(point) == 2 and all(map(finite_number, point)) for point in curve))
    return (state, curve) if typed else None


def _load(path: str) -> dict[str, dict[str, Any]]:
    """The remembered trials; none when the file is absent, torn, corrupt or written by other code."""
    try:
        data = read_json(path)
        if (data.get("format"), data.get("code"), data.get("curve_metric")) != (CACHE_FORMAT, _code_digest(),
                                                                                 CURVE_METRIC):
            return {}
        trials = data["trials"]
        return {trial_id: entry for trial_id, entry in trials.items() if isinstance(entry, dict) and "sig" in entry}
    except (ValueError, OSError, AttributeError, KeyError, TypeError):
        return {}


def _save(path: str, entries: dict[str, dict[str, Any]]) -> None:
    """Written atomically, compactly; a sweep this user cannot write to keeps its old cache (or none)."""
    try:
        text = json.dumps({"format": CACHE_FORMAT, "code": _code_digest(), "curve_metric": CURVE_METRIC,
                           "trials": entries}, separators=(",", ":"))
        atomic_write_text(Path(path), text)
    except OSError:
        pass


@functools.cache
def _code_digest() -> str:
    """Of the code that reads a trial (this package and the trial-directory protocol): a different version's cache
    is not trusted."""
    return source_digest(sweepdir_package, trialdir, files)[:16]
