"""The sweep spec: one YAML file in, the validated list of trials, their resources and the backend out.

Every error is one line that names the offending key (`grids[1].recipe.lr`, `resources.trials_per_gpu`);
the recipe sections (through `TrialConfig.from_dict`), `resources` and `report` are checked by `trials.typed`,
and the file is read by `trials.strict_yaml`, so a spec and `ghostsweep train --config` reject the same things.
Input is bounded (file size, aliases and nesting in strict_yaml; seeds and trials here, counted before any trial
is built), so a hostile spec fails in well under a second.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ghostsweep.orchestrator.backends import BACKEND_MODULES
from ghostsweep.orchestrator.report.references import DEFAULT_TARGET_HALFWIDTH_PP
from ghostsweep.orchestrator.spec.resources import Resources
from ghostsweep.trials.config import TrialConfig
from ghostsweep.trials.strict_yaml import load_file, shown
from ghostsweep.trials.typed import parse

SPEC_KEYS = (
    "name", "grids", "seeds", "recipe", "data", "runtime", "observe", "resources", "backend", "wandb", "data_dir",
    "report",
)
REQUIRED_KEYS = ("name", "grids", "seeds")
SECTIONS = ("recipe", "data", "runtime", "observe", "wandb")  # top-level overrides applied to every trial
SWEEP_WRITTEN_WANDB_KEYS = {"sweep", "row", "position"}  # WandbConfig fields materialize fills in
GRID_SECTIONS = (*SECTIONS, "faults")  # sections a grid may vary with dotted keys (`recipe.lr`)
MAX_SEEDS = 1000  # per trial setting, as a count or a list
MAX_TRIALS = 100_000  # the whole sweep, counted from the grids before any trial is built
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


@dataclass(frozen=True)
class ReportSettings:
    """The spec's `report:` section; `references.DEFAULT_TARGET_HALFWIDTH_PP` says why its default is 0.2 pp."""

    target_halfwidth_pp: float  # the 95% CI half-width the report's "seeds needed" (and `extend`) aim at


@dataclass(frozen=True)
class SweepSpec:
    name: str
    trials: tuple[TrialConfig, ...]  # plan order, duplicates across grids merged
    resources: Resources
    backend: str
    backend_options: dict[str, Any]
    wandb: dict[str, Any]  # the spec's W&B overrides, reused by `report --wandb`
    data_dir: str | None
    text: str  # the file as written, frozen into the sweep directory
    report: ReportSettings
    trial_resources: dict[str, Resources] = field(default_factory=dict)  # trials of grids with their own
    trial_ids: tuple[str, ...] = ()  # `trials`' ids, in the same order (hashed once, at expansion)

    def resources_for(self, trial_id: str) -> Resources:
        """A trial's resources: its grid's `resources` over the top-level ones (the first grid that has it)."""
        return self.trial_resources.get(trial_id, self.resources)


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a spec file; raises ValueError with `<file>: <key>: <problem>`."""
    path = Path(path)
    data, text = load_file(path, "spec")
    try:
        return parse_spec(data, text)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def parse_spec(data: Any, text: str = "") -> SweepSpec:
    """Validate parsed YAML; each check names the key it rejects."""
    if not isinstance(data, dict):
        raise ValueError(f"a spec is a mapping with keys {', '.join(SPEC_KEYS)}; got {type(data).__name__}")
    for key in data:
        if key not in SPEC_KEYS:
            raise ValueError(f"unknown key {shown(key)}; valid: {', '.join(SPEC_KEYS)}")
    for key in REQUIRED_KEYS:
        if key not in data:
            raise ValueError(f"{key}: required")
    name = _parse_name(data["name"])
    seeds = _parse_seeds(data["seeds"])
    overrides = {section: _mapping(data.get(section), section) for section in SECTIONS}
    for key in SWEEP_WRITTEN_WANDB_KEYS & set(overrides["wandb"]):
        raise ValueError(f"wandb.{key}: written by the sweep (the W&B group is the report row); remove it")
    TrialConfig.from_dict(copy.deepcopy(overrides))  # the top-level sections alone, before any grid
    trials_by_id, first_grid = _expand_grids(data["grids"], seeds, overrides)
    trial_resources = _grid_resources(data["grids"], data.get("resources"), first_grid)
    backend, backend_options = _parse_backend(data.get("backend"))
    data_dir = data.get("data_dir")
    if data_dir is not None and not isinstance(data_dir, str):
        raise ValueError(f"data_dir: must be a path string, got {type(data_dir).__name__}")
    return SweepSpec(
        name=name, trials=tuple(trials_by_id.values()), resources=_parse_resources(data.get("resources")),
        backend=backend, backend_options=backend_options, wandb=overrides["wandb"], data_dir=data_dir, text=text,
        report=_parse_report(data.get("report")), trial_resources=trial_resources, trial_ids=tuple(trials_by_id),
    )


def _mapping(value: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{key}: must be a mapping, got {type(value).__name__}")
    return value


def _parse_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise ValueError(
            f"name: must be 1-100 letters, digits, '.', '_' or '-' (no '/', no '..'), got {shown(name)}"
        )
    return name


def _parse_seeds(seeds: Any) -> list[int]:
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if not 1 <= seeds <= MAX_SEEDS:
            raise ValueError(f"seeds: a count must be in [1, {MAX_SEEDS}], got {shown(seeds)}")
        return list(range(seeds))
    if not isinstance(seeds, list) or not seeds:
        raise ValueError(f"seeds: must be a count or a non-empty list of integers, got {shown(seeds)}")
    if len(seeds) > MAX_SEEDS:
        raise ValueError(f"seeds: at most {MAX_SEEDS} seeds, got a list of {len(seeds):,}")
    for index, seed in enumerate(seeds):
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"seeds[{index}]: must be an integer, got {type(seed).__name__} {shown(seed)}")
        if seed < 0:
            raise ValueError(f"seeds[{index}]: must be >= 0, got {seed}")
    duplicate = _first_duplicate(seeds)
    if duplicate is not None:
        raise ValueError(f"seeds: duplicate seed {seeds[duplicate]}")
    return seeds


def _first_duplicate(values: list[Any]) -> int | None:
    """The index of the first value equal to an earlier one, in one pass (lists compare by their content)."""
    seen = set()
    for index, value in enumerate(values):
        try:
            key = hash(value), value
        except TypeError:  # a list or mapping: its text stands for it
            key = 0, repr(value)
        if key in seen:
            return index
        seen.add(key)
    return None


def _expand_grids(
    grids: Any, seeds: list[int], overrides: dict[str, dict[str, Any]],
) -> tuple[dict[str, TrialConfig], dict[str, int]]:
    """The union of every grid's product by trial id, seeds innermost, first occurrence kept; and each trial's
    first grid."""
    if not isinstance(grids, list) or not grids:
        raise ValueError("grids: must be a non-empty list of mappings")
    parsed = [_parse_grid(grid, f"grids[{index}]") for index, grid in enumerate(grids)]
    planned = len(seeds) * sum(math.prod(len(values) for values in axes.values()) for axes in parsed)
    if planned > MAX_TRIALS:
        raise ValueError(f"grids: {planned:,} trials ({len(seeds)} seed(s) per setting) exceed the cap of "
                         f"{MAX_TRIALS:,} per sweep; split the sweep")
    trials: dict[str, TrialConfig] = {}
    first_grid: dict[str, int] = {}  # a trial in several grids belongs to the first (and takes its resources)
    for index, axes in enumerate(parsed):
        where = f"grids[{index}]"
        grid_ids: set[str] = set()
        for combination in itertools.product(*axes.values()):
            config = _trial_dict(dict(zip(axes, combination, strict=True)), overrides)
            try:  # one check and one identity per combination; from_dict copies every list and mapping it keeps
                first = TrialConfig.from_dict({**config, "seed": seeds[0]})
            except ValueError as error:
                raise ValueError(f"{where}: {error}") from None
            for seed, trial_id in zip(seeds, first.seed_trial_ids(seeds), strict=True):
                trial = first if seed == seeds[0] else TrialConfig.from_dict({**config, "seed": seed})
                if trial_id in grid_ids:
                    raise ValueError(f"{where}: two combinations are the same trial {trial_id}")
                grid_ids.add(trial_id)
                trials.setdefault(trial_id, trial)
                first_grid.setdefault(trial_id, index)
    return trials, first_grid


def _parse_grid(grid: Any, where: str) -> dict[str, list[Any]]:
    if not isinstance(grid, dict) or not grid:
        raise ValueError(f"{where}: must be a non-empty mapping of key: [values], got {shown(grid)}")
    if "model" not in grid:
        raise ValueError(f"{where}.model: required")
    axes = {}
    for key, values in grid.items():
        if not isinstance(key, str):
            raise ValueError(f"{where}: keys must be strings, got {shown(key)}")
        if key == "seed":
            raise ValueError(f"{where}.seed: seeds are set once, by the top-level 'seeds'")
        if key == "resources":  # not an axis: the grid's own resources (_grid_resources)
            continue
        section = key.partition(".")[0]
        if "." in key and (section not in GRID_SECTIONS or key.count(".") != 1):
            raise ValueError(
                f"{where}.{shown(key)[1:-1]}: unknown key; dotted keys are <section>.<field>, section one of "
                f"{', '.join(GRID_SECTIONS)}"
            )
        values = values if isinstance(values, list) else [values]
        if not values:
            raise ValueError(f"{where}.{key}: empty list of values")
        duplicate = _first_duplicate(values)
        if duplicate is not None:
            raise ValueError(f"{where}.{key}: duplicate value {shown(values[duplicate])}")
        if key == "model" and not all(isinstance(v, str) for v in values):
            raise ValueError(f"{where}.model: must be model names, got {shown(values)}")
        axes[key] = values
    return axes


def _trial_dict(assignment: dict[str, Any], overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One grid point as `TrialConfig.from_dict` input: top-level overrides, then the grid's dotted keys."""
    config: dict[str, Any] = {section: dict(values) for section, values in overrides.items() if values}
    config["model"] = assignment["model"]
    config["model_options"] = {}
    for key, value in assignment.items():
        section, dot, field = key.partition(".")
        if dot:
            config.setdefault(section, {})[field] = value
        elif key != "model":
            config["model_options"][key] = value
    return config


def _parse_backend(backend: Any) -> tuple[str, dict[str, Any]]:
    backend = _mapping(backend, "backend")
    for key in backend:
        if key not in ("name", "options"):
            raise ValueError(f"backend.{key}: unknown key; valid: name, options")
    name = backend.get("name", "local")
    if name not in BACKEND_MODULES:
        raise ValueError(f"backend.name: must be one of {', '.join(BACKEND_MODULES)}, got {shown(name)}")
    return name, _mapping(backend.get("options"), "backend.options")


def _parse_resources(resources: Any, where: str = "resources") -> Resources:
    parsed = parse(Resources, _mapping(resources, where), where)
    if parsed.trials_per_gpu > 1 and parsed.gpus_per_trial > 1:
        raise ValueError(f"{where}.trials_per_gpu: packing needs gpus_per_trial <= 1")
    return parsed


def _grid_resources(grids: list[Any], top_level: Any, first_grid: dict[str, int]) -> dict[str, Resources]:
    """Resources of the trials whose first grid has its own: that grid's `resources` over the top-level ones
    (ResNet-1202 needs more memory and time than ResNet-20; Ghost models may pack differently)."""
    overridden = [(index, grid["resources"]) for index, grid in enumerate(grids) if "resources" in grid]
    if not overridden:
        return {}
    base = _mapping(top_level, "resources")
    by_grid = {index: _parse_resources(base | _mapping(own, f"grids[{index}].resources"), f"grids[{index}].resources")
               for index, own in overridden}
    return {trial_id: by_grid[index] for trial_id, index in first_grid.items() if index in by_grid}


def _parse_report(report: Any) -> ReportSettings:
    settings = _mapping(report, "report")
    parsed = parse(ReportSettings, {"target_halfwidth_pp": DEFAULT_TARGET_HALFWIDTH_PP, **settings}, "report")
    if not (math.isfinite(parsed.target_halfwidth_pp) and parsed.target_halfwidth_pp > 0):
        raise ValueError(f"report.target_halfwidth_pp: must be a number of percentage points > 0, "
                         f"got {parsed.target_halfwidth_pp}")
    return parsed
