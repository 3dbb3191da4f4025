"""Bad nodes: nodes on which trials of this sweep failed repeatedly for reasons not their own.

A trial that fails with a CUDA or Xid error, a lost device or a NODE_FAIL says little about itself and much about
its node; two such failures on one node (`MIN_FAILURES`) make it bad. Bad nodes are found from the trials'
result.json files (the node and reason of their last attempt), reported by `status`, and excluded from every
later submission of the sweep (submit, rerun, extend: every array chunk) where the backend can exclude nodes and
its switch is on. A node once found bad is remembered in BAD_NODES_FILE, because the reruns that avoid it
overwrite the failures that named it.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ghostsweep.orchestrator.sweepdir.directory import SweepDir
from ghostsweep.trials.trialdir import Outcome, TrialResult, atomic_write_json, read_json, read_result

BAD_NODES_FILE = "bad_nodes.json"
MIN_FAILURES = 2
HOST_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]|\[[0-9,-]+\])*"  # `gpu07`, or a Slurm range like `gpu[07-09,12]`
HOST_LIST = re.compile(rf"{HOST_NAME}(?:,{HOST_NAME})*")
NOT_THE_TRIALS_FAULT = re.compile(
    r"CUDA error|CUDA driver|cuda runtime error|CUDA-capable device|no CUDA device|Xid|NODE_FAIL|NCCL error"
    r"|uncorrectable ECC|GPU is lost|fell off the bus|device (?:is )?(?:missing|not found|unavailable)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class BadNode:
    node: str
    trial_ids: tuple[str, ...]  # the trials whose failures named it
    reason: str  # one of those failures, as an example


def is_host_list(text: str) -> bool:
    """A node name or a comma-separated list of them, as Slurm writes host lists; nothing else reaches `--exclude`."""
    return bool(HOST_LIST.fullmatch(text))


def not_the_trials_fault(result: TrialResult) -> bool:
    return result.status is Outcome.FAILED and bool(NOT_THE_TRIALS_FAULT.search(result.reason or ""))


def find_bad_nodes(results: Iterable[tuple[str, TrialResult | None]]) -> list[BadNode]:
    """Nodes named by at least MIN_FAILURES failed trials whose reasons are not their own."""
    failures: dict[str, list[tuple[str, str]]] = {}
    for trial_id, result in results:
        if result is not None and result.node and not_the_trials_fault(result):
            failures.setdefault(result.node, []).append((trial_id, result.reason or ""))
    return [BadNode(node, tuple(t for t, _ in found), found[0][1])
            for node, found in sorted(failures.items()) if len(found) >= MIN_FAILURES]


def bad_nodes(sweep: SweepDir, results: Iterable[tuple[str, TrialResult | None]] | None = None) -> list[BadNode]:
    """The sweep's bad nodes: those its trials' results (read from the files unless given) show now, and those
    found earlier."""
    if results is None:
        results = ((trial_id, _readable_result(sweep.trial_dir(trial_id))) for trial_id in sweep.trial_ids())
    found = {bad.node: bad for bad in find_bad_nodes(results)}
    for node, record in _remembered(sweep).items():
        found.setdefault(node, BadNode(node, tuple(record["trial_ids"]), record["reason"]))
    return sorted(_real_nodes(found.values()), key=lambda bad: bad.node)


def _remembered(sweep: SweepDir) -> dict[str, dict[str, Any]]:
    """BAD_NODES_FILE's records that are what `remember` writes; the sweep folder is anyone's to edit, so a file or
    record that is not is left out, saying so (the nodes the results show are found all the same)."""
    path = sweep.root / BAD_NODES_FILE
    try:
        data = read_json(path)
    except (ValueError, OSError) as error:
        _warn(f"ignoring {path}: {str(error).splitlines()[0][:200]}")
        return {}
    if data is not None and not isinstance(data, dict):
        _warn(f"ignoring {path}: not a mapping of node names to records")
        return {}
    remembered = {}
    for node, record in (data or {}).items():
        if (isinstance(record, dict) and isinstance(record.get("reason"), str)
                and isinstance(record.get("trial_ids"), list) and all(isinstance(t, str) for t in record["trial_ids"])):
            remembered[node] = record
        else:
            _warn(f"ignoring bad node {node[:80]!r} of {path}: its record is not what ghostsweep writes")
    return remembered


def _warn(message: str) -> None:
    print(f"ghostsweep: warning: {message}", file=sys.stderr)


def _real_nodes(nodes: Iterable[BadNode]) -> list[BadNode]:
    """The nodes whose names could be a node's: the sweep folder is anyone's to edit, and what is not a host name
    names no real node (and must not reach a job script), so it is left out, saying so."""
    real = []
    for bad in nodes:
        if is_host_list(bad.node):
            real.append(bad)
        else:
            _warn(f"ignoring bad node {bad.node[:80]!r} of the sweep folder: not a host name")
    return real


def remember(sweep: SweepDir, nodes: list[BadNode]) -> None:
    """Keep these nodes bad for this sweep, even after the reruns that avoid them have overwritten the failures.
    Under the sweep's lock: two submissions at once would each rewrite the file from their own read."""
    with sweep.updating():
        remembered = _remembered(sweep)
        new = {bad.node: {"trial_ids": list(bad.trial_ids), "reason": bad.reason, "found_at": time.time()}
               for bad in nodes if bad.node not in remembered}
        if new:
            atomic_write_json(sweep.root / BAD_NODES_FILE, remembered | new)


def describe(bad: BadNode, excluded: bool) -> str:
    """One line for `status`: which node, how many failures, an example, and whether submissions avoid it."""
    what = ("later submissions exclude it" if excluded
            else "NOT excluded (the backend cannot exclude nodes, or its exclude_bad_nodes option is off)")
    return (f"bad node {bad.node}: {len(bad.trial_ids)} trial(s) failed there for reasons not their own "
            f"(e.g. {bad.reason!r}); {what}")


def _readable_result(trial_dir: Path) -> TrialResult | None:
    """An unreadable result.json tells nothing about nodes; `status` shows that trial as unreadable."""
    try:
        return read_result(trial_dir)
    except ValueError:
        return None
