"""The sweep directory on a shared filesystem: frozen spec, sweep index and one folder per trial.

`sweep.json` carries everything `status`, `rerun`, `cancel` and `report` need (trial ids in plan order, each
trial's variant and report group, resources, backend), so those commands read JSON only, never import torch.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ghostsweep.orchestrator.spec.resources import Resources
from ghostsweep.trials.strict_yaml import shown
from ghostsweep.trials.trialdir import (
    CONFIG_FILE,
    atomic_write_json,
    atomic_write_text,
    finite_number,
    read_json,
    set_aside,
)

if TYPE_CHECKING:
    from ghostsweep.orchestrator.spec.sweepspec import SweepSpec
    from ghostsweep.trials.config import TrialConfig

SPEC_FILE = "spec.yaml"
# The first file `submit` writes into a sweep folder: with it, a folder is a sweep's even when the first submit
# stopped before sweep.json (written last), so the next `submit` continues it; without it and without a readable
# sweep.json, a folder's sweep.json and spec.yaml may be anyone's, and `submit` leaves them alone. It is also the
# lock (flock) that `SweepDir.updating` holds.
SWEEP_MARKER = ".ghostsweep"
LOCK_TIMEOUT_S = 30.0  # an update of sweep.json takes well under a second, even at 10⁵ trials
SWEEP_FILE = "sweep.json"
EXTENSIONS_FILE = "extensions.json"  # what `ghostsweep extend` added, and why (orchestrator/submission/extend.py)
TRIALS_DIR = "trials"
# A trial id names a folder under TRIALS_DIR: a plain name, so that an id from a hand-edited sweep.json or
# extensions.json (`../../x`) never makes a command read or write outside the sweep.
TRIAL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def linked_folder(trial_dir: str | Path) -> str | None:
    """The trial's folder, or the sweep's TRIALS_DIR above it, when that is a symbolic link (None when neither):
    the trial's files would be read and written wherever it points, so it is unreadable and nothing is written
    there."""
    folder = os.path.normpath(trial_dir)
    return next((path for path in (folder, os.path.dirname(folder)) if os.path.islink(path)), None)


@dataclass(frozen=True)
class TrialRef:
    trial_id: str
    trial_dir: Path


@dataclass(frozen=True)
class TrialEntry:
    """One trial in sweep.json's `trials`: what the report groups it by and how it is labelled (`describe_trials`)."""

    variant: str
    model: str
    first_layer: str | None
    block_norm: str | None
    seed: int
    group: str  # its report row: a digest of every setting but the seed
    label: str
    iterations: int
    batch_size: int
    settings: dict[str, Any] = field(default_factory=dict)  # `trial_settings`; none in sweeps from before it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialEntry:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass(frozen=True)
class SweepIndex:
    """sweep.json: everything `status`, `rerun`, `cancel` and `report` need, typed; `to_dict` is the file."""

    name: str
    created_at: float
    updated_at: float
    data_dir: str | None  # the spec's, resolved
    data_dir_override: str | None  # `submit --data-dir`, kept for later submissions
    resources: Resources
    group_resources: dict[str, Resources]  # a report row's own (its grid's), when it has them
    backend: str
    backend_options: dict[str, Any]
    wandb: dict[str, Any]
    target_halfwidth_pp: float | None  # the spec's `report.target_halfwidth_pp`; None in sweeps from before it
    trial_ids: tuple[str, ...]  # plan order
    trials: dict[str, TrialEntry]

    def trial_resources(self, trial_id: str) -> Resources:
        """A trial's resources: its row's own (its grid's), else the sweep's."""
        return self.group_resources.get(self.trials[trial_id].group, self.resources)

    def with_trials(self, added: dict[str, TrialEntry], at: float) -> SweepIndex:
        """This index with `added` appended to the plan, updated `at`."""
        return replace(self, updated_at=at, trial_ids=(*self.trial_ids, *added), trials=self.trials | added)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "data_dir": self.data_dir,
            "data_dir_override": self.data_dir_override,
            "resources": self.resources.__dict__,
            "group_resources": {group: resources.__dict__ for group, resources in self.group_resources.items()},
            "backend": {"name": self.backend, "options": self.backend_options},
            "wandb": self.wandb,
            "report": {"target_halfwidth_pp": self.target_halfwidth_pp},
            "trial_ids": list(self.trial_ids),
            "trials": {trial_id: entry.to_dict() for trial_id, entry in self.trials.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepIndex:
        """The index of a sweep.json whose shape `_index_problem` passed; keys that older sweeps lack take the
        value their readers always assumed."""
        return cls(
            name=data["name"],
            created_at=data["created_at"],
            updated_at=data["updated_at"],
            data_dir=data.get("data_dir"),
            data_dir_override=data.get("data_dir_override"),
            resources=Resources(**data["resources"]),
            group_resources={group: Resources(**resources)
                             for group, resources in data.get("group_resources", {}).items()},
            backend=data["backend"]["name"],
            backend_options=data["backend"]["options"],
            wandb=data.get("wandb", {}),
            target_halfwidth_pp=data.get("report", {}).get("target_halfwidth_pp"),
            trial_ids=tuple(data["trial_ids"]),
            trials={trial_id: TrialEntry.from_dict(entry) for trial_id, entry in data["trials"].items()},
        )


class SweepDir:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._index_read: tuple[tuple[int, int, int], SweepIndex] | None = None  # (file's identity, index)

    @classmethod
    def of_trial(cls, trial_dir: Path) -> SweepDir:
        """The sweep a trial folder belongs to (what a worker, given only its trial folders, reads)."""
        return cls(Path(trial_dir).parent.parent)

    @property
    def trials_root(self) -> Path:
        return self.root / TRIALS_DIR

    @property
    def index_path(self) -> Path:
        return self.root / SWEEP_FILE

    def trial_dir(self, trial_id: str) -> Path:
        return self.trials_root / trial_id

    def index(self) -> SweepIndex:
        """sweep.json; ValueError when the directory is not a sweep, or (naming the file and the repair) when
        sweep.json is not what `submit` wrote. Read again only when the file changed (a sweep of 10⁴ trials has a
        sweep.json of megabytes, and one command asks for it several times)."""
        try:
            stat = self.index_path.stat()
            identity = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        except OSError:
            identity = None
        if identity is not None and self._index_read is not None and self._index_read[0] == identity:
            return self._index_read[1]
        try:
            data = read_json(self.index_path)
        except (ValueError, OSError) as error:
            index, problem = None, f"{type(error).__name__}: {str(error)[:200]}"
        else:
            if data is None and (self.root / SWEEP_MARKER).is_file():
                raise ValueError(f"{self.root}: its first submit stopped before writing {SWEEP_FILE}; `ghostsweep "
                                 f"submit SPEC --out {self.root}` continues it")
            if data is None:
                raise ValueError(f"{self.root} is not a sweep directory (it has no {SWEEP_FILE})")
            index, problem = _parse_index(data)
        if index is None:
            raise ValueError(
                f"unreadable {self.index_path}: {problem}; `ghostsweep submit {self.root / SPEC_FILE} --out "
                f"{self.root}` writes it again (it sets the bad one aside; trial folders are kept)"
            )
        if identity is not None:
            self._index_read = identity, index
        return index

    def readable_index(self) -> SweepIndex | None:
        """sweep.json, or None when there is none or it is unreadable (what `submit`, about to rewrite it, needs)."""
        try:
            data = read_json(self.index_path)
        except (ValueError, OSError):
            return None
        return None if data is None else _parse_index(data)[0]

    def is_sweep(self) -> bool:
        """Whether this folder is a sweep's (see SWEEP_MARKER); sweeps from before the marker have a readable
        sweep.json, or a sweep.json and trial folders."""
        return ((self.root / SWEEP_MARKER).is_file() or self.readable_index() is not None
                or (self.index_path.is_file() and self.trials_root.is_dir()))

    def _previous_index(self) -> SweepIndex | None:
        """sweep.json for `materialize` to update; a corrupt one is set aside (kept) and written afresh."""
        previous = self.readable_index()
        if previous is None and self.index_path.exists():
            aside = set_aside(self.index_path)
            print(f"{self.index_path} is unreadable: set aside as {aside.name}, written again")
        return previous

    def trial_ids(self) -> list[str]:
        return list(self.index().trial_ids)

    def trial_refs(self, trial_ids: list[str]) -> list[TrialRef]:
        return [TrialRef(trial_id, self.trial_dir(trial_id)) for trial_id in trial_ids]

    def resources(self) -> Resources:
        return self.index().resources

    def extensions(self) -> list[ExtensionRecord]:
        """extensions.json (`read_extensions`)."""
        return read_extensions(self.root / EXTENSIONS_FILE)

    def extension_trials(self, spec_trials: Sequence[TrialConfig]) -> list[TrialConfig]:
        """The seeds `extend` added to rows the spec still has, so that submitting the spec again keeps them.

        A row the spec no longer has loses its added seeds as it loses the spec's; a trial folder deleted by hand
        leaves the sweep, and so, saying so, does one whose config.json is unreadable (until it is repaired:
        extensions.json still lists it)."""
        from ghostsweep.trials.config import TrialConfig

        rows = {row_group(trial) for trial in spec_trials}
        seen = {trial.trial_id() for trial in spec_trials}
        kept = []
        for trial_id in (trial_id for extension in self.extensions() for trial_id in extension.trial_ids):
            path = self.trial_dir(trial_id) / CONFIG_FILE
            try:
                config = None if trial_id in seen or linked_folder(path.parent) else read_json(path)
                if config is None:
                    continue
                if not isinstance(config, dict):
                    raise ValueError(f"not a JSON object, got {shown(config)}")
                config.pop("trial_id", None)
                trial = TrialConfig.from_dict(config)
            except (ValueError, OSError) as error:
                print(f"ghostsweep: warning: left out {trial_id}, which `extend` added: {path} is unreadable: "
                      f"{str(error).splitlines()[0][:200]}", file=sys.stderr)
                continue
            if row_group(trial) in rows:
                kept.append(trial)
                seen.add(trial_id)
        return kept

    @contextlib.contextmanager
    def updating(self) -> Iterator[None]:
        """Hold the sweep's lock while sweep.json and extensions.json are read and rewritten: `submit` and `extend`
        at once would each rewrite sweep.json from its own read, and one would lose the other's trials. ValueError
        (one line) when another command holds it for LOCK_TIMEOUT_S."""
        self.root.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.root / SWEEP_MARKER, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            deadline = time.monotonic() + LOCK_TIMEOUT_S
            while True:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise ValueError(f"{self.root}: another ghostsweep command has been updating this sweep for "
                                         f"{LOCK_TIMEOUT_S:g} s (it holds {SWEEP_MARKER}); try again once it is "
                                         f"done") from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(descriptor)

    def materialize(self, spec: SweepSpec, data_dir_override: Path | None = None) -> None:
        """Write the frozen spec, the index and each trial's config.json; existing trial folders are kept.
        `data_dir_override` (`submit --data-dir`) is kept for later submissions, reruns and extensions."""
        with self.updating():
            self._materialize(spec, data_dir_override)

    def _materialize(self, spec: SweepSpec, data_dir_override: Path | None) -> None:
        previous = self._previous_index()
        if previous is not None and previous.name != spec.name:
            raise ValueError(
                f"{self.root} holds sweep {previous.name!r}, not {spec.name!r}; pick another --out"
            )
        trials = [*spec.trials, *self.extension_trials(spec.trials)]
        described = describe_trials(trials)
        for position, trial in enumerate(spec.trials):
            trial_dir = self.trial_dir(trial.trial_id())
            if linked_folder(trial_dir):  # `status` shows it unreadable; `submit` leaves it out
                continue
            trial_dir.mkdir(parents=True, exist_ok=True)
            if not (trial_dir / CONFIG_FILE).exists():
                row = described[trial.trial_id()].label
                atomic_write_json(trial_dir / CONFIG_FILE, sweep_trial_config(trial, spec.name, row, position))
        atomic_write_text(self.root / SPEC_FILE, spec.text)
        now = time.time()
        self.write_index(SweepIndex(
            name=spec.name,
            created_at=previous.created_at if previous else now,
            updated_at=now,
            data_dir=str(Path(spec.data_dir).expanduser().resolve()) if spec.data_dir else None,
            data_dir_override=(str(data_dir_override.expanduser().absolute()) if data_dir_override
                               else previous.data_dir_override if previous else None),
            resources=spec.resources,
            group_resources=_group_resources(spec, described),
            backend=spec.backend,
            backend_options=spec.backend_options,
            wandb=spec.wandb,
            target_halfwidth_pp=spec.report.target_halfwidth_pp,
            trial_ids=tuple(trial.trial_id() for trial in trials),
            trials=described,
        ))

    def write_index(self, index: SweepIndex) -> None:
        atomic_write_json(self.index_path, index.to_dict())


def _group_resources(spec: SweepSpec, described: dict[str, TrialEntry]) -> dict[str, Resources]:
    """The resources of each report row (every seed of a setting: one grid) whose grid has its own; keyed by row,
    so that the seeds `extend` adds take them too."""
    return {described[trial_id].group: resources for trial_id, resources in spec.trial_resources.items()}


def _parse_index(data: Any) -> tuple[SweepIndex | None, str | None]:
    """The index of a sweep.json's contents, or None and what is wrong with it, in words."""
    problem = _index_problem(data)
    if problem:
        return None, problem
    try:
        return SweepIndex.from_dict(data), None
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        return None, f"{type(error).__name__}: {str(error)[:200]}"


def _index_problem(data: Any) -> str | None:
    """What is wrong with a sweep.json's shape, in words; None when every key readers rely on is there."""
    if not isinstance(data, dict):
        return f"expected a JSON object, got {type(data).__name__}"
    expected = {"name": str, "trial_ids": list, "trials": dict, "resources": dict, "backend": dict}
    for key, kind in expected.items():
        if not isinstance(data.get(key), kind):
            return f"{key!r} missing or not a {kind.__name__}"
    not_names = [trial_id for trial_id in data["trial_ids"] if not isinstance(trial_id, str)]
    if not_names:
        return f"'trial_ids' holds {len(not_names)} value(s) that are not strings, e.g. {str(not_names[0])[:80]}"
    missing = [trial_id for trial_id in data["trial_ids"] if trial_id not in data["trials"]]
    if missing:
        return f"trial ids without a 'trials' entry: {', '.join(missing[:3])}"
    not_entries = [trial_id for trial_id, entry in data["trials"].items() if not isinstance(entry, dict)]
    if not_entries:
        return f"'trials' entry {not_entries[0][:80]!r} is not a JSON object"
    bad = next((trial_id for trial_id in [*data["trial_ids"], *data["trials"]] if not is_trial_id(trial_id)), None)
    if bad is not None:
        return f"trial id {bad[:80]!r} is not a plain name (letters, digits, '.', '_', '-')"
    optional = {"data_dir": (str, type(None)), "data_dir_override": (str, type(None)), "wandb": dict,
                "report": dict, "group_resources": dict}
    for key, kinds in optional.items():
        if key in data and not isinstance(data[key], kinds):
            return f"{key!r} is {shown(data[key])}, not what submit writes"
    halfwidth = data.get("report", {}).get("target_halfwidth_pp")
    if halfwidth is not None and (not _is_number(halfwidth) or not 0 < halfwidth < float("inf")):
        return f"'report.target_halfwidth_pp' is {shown(halfwidth)}, not a positive number"
    for trial_id, entry in data["trials"].items():
        wrong = next((key for key, kinds in ENTRY_TYPES.items() if key in entry and not (
            isinstance(entry[key], kinds) and not isinstance(entry[key], bool))), None)
        if wrong is not None:
            return f"'trials' entry {trial_id!r}: {wrong!r} is {shown(entry[wrong])}, not what submit writes"
    return None


# What each key of a sweep.json trial entry holds (TrialEntry): a hand-edited value of another type would stop
# `status` or `report` in a traceback.
ENTRY_TYPES: dict[str, type | tuple[type, ...]] = {
    "variant": str, "model": str, "first_layer": (str, type(None)), "block_norm": (str, type(None)), "seed": int,
    "group": str, "label": str, "iterations": int, "batch_size": int, "settings": dict,
}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_trial_id(text: Any) -> bool:
    """A plain folder name, as every trial id we make is; see TRIAL_ID."""
    return isinstance(text, str) and bool(TRIAL_ID.fullmatch(text))


def sweep_trial_config(trial: TrialConfig, sweep: str, row: str, position: int) -> dict[str, Any]:
    """config.json of a sweep's trial: its config and id, and the W&B fields that make its run's group its report
    row and let `report --from-wandb` order rows as the files do (`position`: its index in sweep.json's trial_ids)."""
    config = trial.to_dict() | {"trial_id": trial.trial_id()}
    config["wandb"] |= {"sweep": sweep, "row": row, "position": position}
    return config


def describe_trials(trials: list[TrialConfig]) -> dict[str, TrialEntry]:
    """Per trial: what the report groups by (its variant plus every non-seed setting) and how to label it."""
    ids = [trial.trial_id() for trial in trials]
    flat = [_seedless(trial) for trial in trials]
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for trial, settings in zip(trials, flat, strict=True):
        by_variant.setdefault(trial.variant, []).append(settings)
    differing = {
        variant: sorted(k for k in siblings[0] if len({json.dumps(s.get(k)) for s in siblings}) > 1)
        for variant, siblings in by_variant.items()
    }
    described = {}
    for trial_id, trial, settings in zip(ids, trials, flat, strict=True):
        options = trial.resolved_model_options()
        described[trial_id] = TrialEntry(
            variant=trial.variant,
            model=trial.model,
            first_layer=options.get("first_layer"),
            block_norm=options.get("block_norm"),
            seed=trial.seed,
            group=_digest(settings),
            label=" ".join([trial.variant, *(f"{k}={settings[k]}" for k in differing[trial.variant])]),
            iterations=trial.recipe.iterations,
            batch_size=trial.recipe.batch_size,
            settings=trial_settings(trial),
        )
    return described


def row_group(trial: TrialConfig) -> str:
    """The report group (row) a trial belongs to: a digest of everything but its seed."""
    return _digest(_seedless(trial))


def _seedless(trial: TrialConfig) -> dict[str, Any]:
    return _flatten({k: v for k, v in trial.identity_dict().items() if k != "seed"})


def trial_settings(trial: TrialConfig) -> dict[str, Any]:
    """Everything but the seed that determines the result, one dotted key per value (model options included):
    what the report compares rows by."""
    identity = {k: v for k, v in trial.identity_dict().items() if k != "seed"}
    options = identity.pop("model_options")
    return _flatten(identity) | {f"model_options.{k}": v for k, v in sorted(options.items())}


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict) and key != "model_options":
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _digest(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class StagePlanRecord:
    """A row's Stein two-stage plan as extensions.json keeps it (report/decisions.py's TwoStagePlan, whose fields
    these are): checked here, so that a hand-edited plan is an unreadable file, not a traceback in the report."""

    pilot_n: int
    pilot_std: float
    target: float
    cap: int
    total: int
    capped: bool

    @classmethod
    def from_dict(cls, data: Any) -> StagePlanRecord:
        if not isinstance(data, dict):
            raise ValueError(f"must be a mapping, got {shown(data)}")
        values = {}
        for name, kind in (("pilot_n", int), ("pilot_std", float), ("target", float), ("cap", int),
                           ("total", int), ("capped", bool)):
            value = data.get(name)
            fits = (isinstance(value, bool) if kind is bool
                    else finite_number(value) and (kind is float or isinstance(value, int)))
            if not fits:
                raise ValueError(f"{name}: must be {'true or false' if kind is bool else 'a number'}, "
                                 f"got {shown(value)}")
            values[name] = value
        plan = cls(**values)
        if not (2 <= plan.pilot_n <= plan.total <= plan.cap and plan.pilot_std >= 0 and plan.target > 0):
            raise ValueError(f"not a plan: {shown(data)}")
        return plan


@dataclass(frozen=True)
class ExtensionRecord:
    """One `ghostsweep extend` in extensions.json: when, the report's sentence about it, the trials it added and
    the rows whose seeds Stein's procedure chose. `data` is the record as `extend` wrote it (report.json lists it,
    and `extend` appends to the list)."""

    at: float
    note: str
    trial_ids: tuple[str, ...]
    two_stage: dict[str, StagePlanRecord]  # per report group
    data: dict[str, Any]

    @classmethod
    def from_dict(cls, data: Any) -> ExtensionRecord:
        """ValueError naming the key when `data` is not what `extend` writes."""
        if not isinstance(data, dict):
            raise ValueError(f"each record must be a mapping, got {shown(data)}")
        at, note, trial_ids, rows = (data.get(key) for key in ("at", "note", "trial_ids", "rows"))
        if not finite_number(at):
            raise ValueError(f"at: must be a time, got {shown(at)}")
        if not isinstance(note, str):
            raise ValueError(f"note: must be a string, got {shown(note)}")
        if not (isinstance(trial_ids, list) and all(isinstance(t, str) for t in trial_ids)):
            raise ValueError(f"trial_ids: must be a list of trial ids, got {shown(trial_ids)}")
        bad = next((t for t in trial_ids if not is_trial_id(t)), None)
        if bad is not None:
            raise ValueError(f"trial id {bad[:80]!r} is not a plain name (letters, digits, '.', '_', '-')")
        if not (isinstance(rows, list) and all(isinstance(row, dict) for row in rows)):
            raise ValueError(f"rows: must be a list of mappings, got {shown(rows)}")
        two_stage = {}
        for row in rows:
            if not isinstance(row.get("group"), str):
                raise ValueError(f"rows: group: must be a string, got {shown(row.get('group'))}")
            if row.get("two_stage") is not None:
                try:
                    two_stage[row["group"]] = StagePlanRecord.from_dict(row["two_stage"])
                except ValueError as error:
                    raise ValueError(f"rows: two_stage: {error}") from error
        return cls(at, note, tuple(trial_ids), two_stage, data)


def read_extensions(path: Path) -> list[ExtensionRecord]:
    """extensions.json, oldest first; none before the first `ghostsweep extend`. A file that is not what `extend`
    writes is a one-line ValueError naming it and the repair: the report and `extend` need it, so they stop."""
    try:
        data = read_json(path)
        if data is None:
            return []
        if not isinstance(data, list):
            raise ValueError(f"must be a list of records, got {shown(data)}")
        return [ExtensionRecord.from_dict(record) for record in data]
    except (ValueError, OSError) as error:
        raise ValueError(
            f"unreadable {path}: {type(error).__name__}: {str(error)[:200]}; set it aside (`mv {path} "
            f"{path}.corrupt`): the trials it added stay in the sweep, and the report then computes their rows' "
            f"intervals without the Stein plans it records"
        ) from error
