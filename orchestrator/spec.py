"""The sweep spec: one YAML file in, the validated list of trials, their resources and the backend out.

Every error is one line that names the offending key (`grids[1].recipe.lr`, `resources.trials_per_gpu`);
the recipe sections are checked by `TrialConfig.from_dict`, so a spec and `ghostsweep train` reject the same
things.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ghostsweep.orchestrator.backends import BACKEND_MODULES
from ghostsweep.orchestrator.backends.base import Resources
from ghostsweep.trials.config import TrialConfig, from_dict

SPEC_KEYS = (
    "name", "grids", "seeds", "recipe", "data", "runtime", "resources", "backend", "wandb", "data_dir", "report",
)
REQUIRED_KEYS = ("name", "grids", "seeds")
SECTIONS = ("recipe", "data", "runtime", "wandb")  # top-level overrides applied to every trial
SWEEP_WRITTEN_WANDB_KEYS = {"sweep", "row", "position"}  # WandbConfig fields materialize fills in
GRID_SECTIONS = (*SECTIONS, "faults")  # sections a grid may vary with dotted keys (`recipe.lr`)
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
RESOURCE_RANGES: dict[str, tuple[float, float]] = {
    "gpus_per_trial": (0, 64),
    "trials_per_gpu": (1, 64),
    "cpus_per_trial": (1, 1024),
    "mem_gb": (0.1, 4096),
    "time_limit_min": (1, 525_600),
    "nodes": (1, 1024),
}


@dataclass(frozen=True)
class ReportSettings:
    """The spec's `report:` section; `analysis.DEFAULT_TARGET_HALFWIDTH_PP` says why its default is 0.2 pp."""

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


class _UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.safe_load` semantics, except that a repeated mapping key is an error instead of last-one-wins."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ValueError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a spec file; raises ValueError with `<file>: <key>: <problem>`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"cannot read spec {str(path)!r}: {error.strerror}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506  (a SafeLoader subclass)
    except yaml.constructor.ConstructorError as error:
        line = error.problem_mark.line + 1 if error.problem_mark else "?"
        raise ValueError(f"{path}: line {line}: YAML tags such as {_tag(error)} are not allowed") from None
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: invalid YAML: {' '.join(str(error).split())}") from None
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    try:
        return parse_spec(data, text)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def _tag(error: yaml.constructor.ConstructorError) -> str:
    match = re.search(r"tag '([^']+)'", error.problem or "")
    return repr(match[1]) if match else "this one"


def parse_spec(data: Any, text: str = "") -> SweepSpec:
    """Validate parsed YAML; each check names the key it rejects."""
    if not isinstance(data, dict):
        raise ValueError(f"a spec is a mapping with keys {', '.join(SPEC_KEYS)}; got {type(data).__name__}")
    for key in data:
        if key not in SPEC_KEYS:
            raise ValueError(f"unknown key {key!r}; valid: {', '.join(SPEC_KEYS)}")
    for key in REQUIRED_KEYS:
        if key not in data:
            raise ValueError(f"{key}: required")
    name = _parse_name(data["name"])
    seeds = _parse_seeds(data["seeds"])
    overrides = {section: _mapping(data.get(section), section) for section in SECTIONS}
    for key in SWEEP_WRITTEN_WANDB_KEYS & set(overrides["wandb"]):
        raise ValueError(f"wandb.{key}: written by the sweep (the W&B group is the report row); remove it")
    TrialConfig.from_dict(copy.deepcopy(overrides))  # the top-level sections alone, before any grid
    trials = _expand_grids(data["grids"], seeds, overrides)
    backend, backend_options = _parse_backend(data.get("backend"))
    data_dir = data.get("data_dir")
    if data_dir is not None and not isinstance(data_dir, str):
        raise ValueError(f"data_dir: must be a path string, got {type(data_dir).__name__}")
    return SweepSpec(
        name=name, trials=tuple(trials), resources=_parse_resources(data.get("resources")), backend=backend,
        backend_options=backend_options, wandb=overrides["wandb"], data_dir=data_dir, text=text,
        report=_parse_report(data.get("report")),
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
            f"name: must be 1-100 letters, digits, '.', '_' or '-' (no '/', no '..'), got {name!r}"
        )
    return name


def _parse_seeds(seeds: Any) -> list[int]:
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if not 1 <= seeds <= 1000:
            raise ValueError(f"seeds: a count must be in [1, 1000], got {seeds}")
        return list(range(seeds))
    if not isinstance(seeds, list) or not seeds:
        raise ValueError(f"seeds: must be a count or a non-empty list of integers, got {seeds!r}")
    for index, seed in enumerate(seeds):
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"seeds[{index}]: must be an integer, got {type(seed).__name__} {seed!r}")
        if seed < 0:
            raise ValueError(f"seeds[{index}]: must be >= 0, got {seed}")
    duplicate = _first_duplicate(seeds)
    if duplicate is not None:
        raise ValueError(f"seeds: duplicate seed {duplicate}")
    return seeds


def _first_duplicate(values: list[Any]) -> Any | None:
    seen: list[Any] = []
    for value in values:
        if value in seen:
            return value
        seen.append(value)
    return None


def _expand_grids(grids: Any, seeds: list[int], overrides: dict[str, dict[str, Any]]) -> list[TrialConfig]:
    """The union of every grid's product, seeds innermost, first occurrence kept."""
    if not isinstance(grids, list) or not grids:
        raise ValueError("grids: must be a non-empty list of mappings")
    trials: dict[str, TrialConfig] = {}
    for index, grid in enumerate(grids):
        where = f"grids[{index}]"
        axes = _parse_grid(grid, where)
        grid_ids: set[str] = set()
        for combination in itertools.product(*axes.values()):
            config = _trial_dict(dict(zip(axes, combination, strict=True)), overrides)
            for seed in seeds:
                try:
                    trial = TrialConfig.from_dict({**copy.deepcopy(config), "seed": seed})
                except ValueError as error:
                    raise ValueError(f"{where}: {error}") from None
                trial_id = trial.trial_id()
                if trial_id in grid_ids:
                    raise ValueError(f"{where}: two combinations are the same trial {trial_id}")
                grid_ids.add(trial_id)
                trials.setdefault(trial_id, trial)
    return list(trials.values())


def _parse_grid(grid: Any, where: str) -> dict[str, list[Any]]:
    if not isinstance(grid, dict) or not grid:
        raise ValueError(f"{where}: must be a non-empty mapping of key: [values], got {grid!r}")
    if "model" not in grid:
        raise ValueError(f"{where}.model: required")
    axes = {}
    for key, values in grid.items():
        if not isinstance(key, str):
            raise ValueError(f"{where}: keys must be strings, got {key!r}")
        if key == "seed":
            raise ValueError(f"{where}.seed: seeds are set once, by the top-level 'seeds'")
        section = key.partition(".")[0]
        if "." in key and (section not in GRID_SECTIONS or key.count(".") != 1):
            raise ValueError(
                f"{where}.{key}: unknown key; dotted keys are <section>.<field>, section one of "
                f"{', '.join(GRID_SECTIONS)}"
            )
        values = values if isinstance(values, list) else [values]
        if not values:
            raise ValueError(f"{where}.{key}: empty list of values")
        duplicate = _first_duplicate(values)
        if duplicate is not None:
            raise ValueError(f"{where}.{key}: duplicate value {duplicate!r}")
        if key == "model" and not all(isinstance(v, str) for v in values):
            raise ValueError(f"{where}.model: must be model names, got {values!r}")
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
        raise ValueError(f"backend.name: must be one of {', '.join(BACKEND_MODULES)}, got {name!r}")
    return name, _mapping(backend.get("options"), "backend.options")


def _parse_resources(resources: Any) -> Resources:
    parsed = from_dict(Resources, _mapping(resources, "resources"), "resources.")
    for key, (low, high) in RESOURCE_RANGES.items():
        value = getattr(parsed, key)
        if not low <= value <= high:
            raise ValueError(f"resources.{key}: must be in [{low}, {high}], got {value}")
    if parsed.trials_per_gpu > 1 and parsed.gpus_per_trial > 1:
        raise ValueError("resources.trials_per_gpu: packing needs gpus_per_trial <= 1")
    return parsed


def _parse_report(report: Any) -> ReportSettings:
    # Imported here: analysis loads scipy (half a second), which only plan and submit, not every command, pay.
    from ghostsweep.orchestrator.analysis import DEFAULT_TARGET_HALFWIDTH_PP

    settings = _mapping(report, "report")
    parsed = from_dict(ReportSettings, {"target_halfwidth_pp": DEFAULT_TARGET_HALFWIDTH_PP, **settings}, "report.")
    if not (math.isfinite(parsed.target_halfwidth_pp) and parsed.target_halfwidth_pp > 0):
        raise ValueError(f"report.target_halfwidth_pp: must be a number of percentage points > 0, "
                         f"got {parsed.target_halfwidth_pp}")
    return parsed
