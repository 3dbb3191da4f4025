"""`ghostsweep plan`: what a spec would run, and how many GPU-hours (CPU-hours for CPU trials) it would take.

GPU-hours come from measured training throughput (`throughput.json`: images/s per model on a named device);
other depths and options are scaled by MACs (the registry's closed form: no torch) from the same family's
depth-56 entry. A trial without a GPU is planned in CPU-hours from one thread's measured throughput, scaled the
same way. Evaluation passes are counted at three times the training speed (forward only).
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
from collections import Counter
from dataclasses import asdict, dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ghostsweep.model.registry import complexity, model_info
from ghostsweep.orchestrator.spec.resources import Resources
from ghostsweep.orchestrator.spec.sweepspec import SweepSpec
from ghostsweep.orchestrator.sweepdir.cache import read_states
from ghostsweep.orchestrator.sweepdir.directory import SweepDir, describe_trials
from ghostsweep.trials.config import TrialConfig
from ghostsweep.trials.trialdir import TrialStatus

THROUGHPUT_FILE = Path(__file__).with_name("throughput.json")
EVAL_SPEEDUP = 3.0
REFERENCE_DEPTH = 56
# The one CPU measurement: eager training on one thread, batch 128 (bench/results/2026-11-28-cpu-ghost-dense.json).
# Other models on a CPU are scaled by MACs from it; a trial's threads are assumed to scale linearly, so its
# CPU-hours do not depend on how many it gets.
CPU_REFERENCE_MODEL = "ghost_resnet20"
CPU_REFERENCE_IMAGES_PER_S = 391.0
GPU_HOURS, CPU_HOURS = "GPU-h", "CPU-h"


@lru_cache(maxsize=1)
def load_throughput() -> dict[str, Any]:
    return json.loads(THROUGHPUT_FILE.read_text())


@cache
def _macs(name: str, options: tuple[tuple[str, Any], ...]) -> int:
    """The closed form: `plan` never builds a model or imports torch."""
    return complexity(name, **dict(options)).macs


def images_per_s(trial: TrialConfig) -> float:
    """Training throughput of one trial of this model and runtime configuration on the table's device."""
    throughput = load_throughput()
    table = throughput["images_per_s"][_configuration(trial)]
    if trial.model in table and not trial.model_options:
        return float(table[trial.model])
    reference = _reference_model(trial.model)
    options = tuple(sorted(trial.resolved_model_options().items()))
    return table[reference] * throughput["reference_macs"][reference] / _macs(trial.model, options)


def packing_gain(trial: TrialConfig, trials_per_gpu: int) -> float:
    """Aggregate throughput of K packed trials over one trial's, as measured for the trial's family and
    configuration (`packed_images_per_s`, key "<configuration> x<K>"); 1.0 when K = 1 or nothing is measured."""
    if trials_per_gpu == 1:
        return 1.0
    throughput = load_throughput()
    configuration = _configuration(trial)
    packed = throughput["packed_images_per_s"].get(f"{configuration} x{trials_per_gpu}", {})
    single = throughput["images_per_s"][configuration]
    measured = [name for name in (trial.model, _reference_model(trial.model)) if name in packed and name in single]
    return packed[measured[0]] / single[measured[0]] if measured else 1.0


def _training_images(trial: TrialConfig) -> float:
    """Training images plus every evaluation pass, in training-image equivalents."""
    recipe = trial.recipe
    trained = recipe.iterations * recipe.batch_size
    evaluated = recipe.iterations // recipe.eval_interval * trial.data.val_size + trial.data.test_size
    return trained + evaluated / EVAL_SPEEDUP


def estimate_gpu_hours(trial: TrialConfig, trials_per_gpu: int = 1) -> float:
    """GPU-hours one trial costs on the table's device (its share of a GPU when K trials are packed)."""
    return _training_images(trial) / (images_per_s(trial) * packing_gain(trial, trials_per_gpu)) / 3600


def estimate_cpu_hours(trial: TrialConfig) -> float:
    """CPU-hours (thread-hours) one trial costs, from one thread's measured throughput scaled by MACs."""
    options = tuple(sorted(trial.resolved_model_options().items()))
    rate = CPU_REFERENCE_IMAGES_PER_S * _macs(CPU_REFERENCE_MODEL, ()) / _macs(trial.model, options)
    return _training_images(trial) / rate / 3600


def runs_on_cpu(trial: TrialConfig, resources: Resources) -> bool:
    return trial.runtime.device == "cpu" or resources.gpus_per_trial == 0


@cache
def detected_cpu() -> str:
    """This machine's CPU model and core count (where a CPU sweep runs unless a cluster runs it)."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            name = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name or 'unknown CPU'}, {os.cpu_count()} cores"


def _configuration(trial: TrialConfig) -> str:
    """The measured configuration with the trial's runtime options (compile, precision, channels_last,
    deterministic, depthwise), else one with its compile mode, else eager: the first of those that measured the
    trial's model family."""
    throughput = load_throughput()
    configurations = throughput["configurations"]
    same_mode = [name for name, fields in configurations.items() if fields["compile"] == trial.runtime.compile]
    exact = [name for name in same_mode
             if all(getattr(trial.runtime, key) == value for key, value in configurations[name].items())]
    measured = {trial.model, _reference_model(trial.model)}
    return next(name for name in (*exact, *same_mode, "eager") if measured & throughput["images_per_s"][name].keys())


# Families not measured on the GPU yet: (their own reference model, the measured model of the same kind their
# throughput is scaled from by MACs until theirs is in throughput.json). `plan` names them.
STAND_INS = {"vgg": ("vgg16", "resnet56"), "ghost_vgg": ("ghost_vgg16", "ghost_resnet56")}


@cache
def _reference_model(name: str) -> str:
    info = model_info(name)
    if info.family not in STAND_INS:
        return info.at_depth(REFERENCE_DEPTH)
    own, stand_in = STAND_INS[info.family]
    return own if any(own in table for table in load_throughput()["images_per_s"].values()) else stand_in


def unmeasured(trials: list[TrialConfig]) -> dict[str, str]:
    """Model → the measured model its throughput is scaled from, for the models of families not measured yet."""
    models = dict.fromkeys(trial.model for trial in trials)
    return {name: reference for name in models if model_info(name).family in STAND_INS
            and (reference := _reference_model(name)) != STAND_INS[model_info(name).family][0]}


def describe_resources(resources: Resources) -> str:
    """One trial's request in a few words: GPUs (and packing), CPUs, memory, time limit, nodes."""
    packing = f" ({resources.trials_per_gpu}/GPU)" if resources.trials_per_gpu > 1 else ""
    nodes = f", {resources.nodes} nodes" if resources.nodes > 1 else ""
    return (f"{resources.gpus_per_trial} GPU{packing}, {resources.cpus_per_trial} CPU, {resources.mem_gb:g} GB, "
            f"{resources.time_limit_min} min{nodes}")


@dataclass(frozen=True)
class PlannedTrial:
    """One row of the plan: what `--format json|csv` writes and the trial table shows."""

    number: int
    trial_id: str
    variant: str
    row: str  # its report row's label: the variant and the settings that tell it from its variant's other rows
    model: str
    seed: int
    iterations: int
    hours: float
    unit: str  # GPU_HOURS or CPU_HOURS
    resources: str
    state: str | None  # in the sweep directory, when there is one


def plan_trials(spec: SweepSpec, sweep_root: Path) -> list[PlannedTrial]:
    """Every trial of the spec with its cost and, given an existing sweep directory, its state."""
    sweep = SweepDir(sweep_root)
    trial_ids = spec.trial_ids  # hashed once, at expansion
    states: dict[str, str] = {}
    if sweep.index_path.exists():  # settled trials from the read cache that `status` and `report` keep
        known = {state.trial_id: str(state.state) for state in read_states(sweep)}
        states = {trial_id: known.get(trial_id, str(TrialStatus.PENDING)) for trial_id in trial_ids}
    rows = describe_trials(list(spec.trials))
    planned = []
    for number, (trial, trial_id) in enumerate(zip(spec.trials, trial_ids, strict=True), 1):
        resources = spec.resources_for(trial_id)
        cpu = runs_on_cpu(trial, resources)
        hours = estimate_cpu_hours(trial) if cpu else estimate_gpu_hours(trial, resources.trials_per_gpu)
        planned.append(PlannedTrial(
            number, trial_id, trial.variant, rows[trial_id].label, trial.model, trial.seed, trial.recipe.iterations,
            hours, CPU_HOURS if cpu else GPU_HOURS, describe_resources(resources),
            states.get(trial_id) if states else None,
        ))
    return planned


def _per(key: str, planned: list[PlannedTrial]) -> list[dict[str, Any]]:
    """Trials, hours and resources per variant or per report row (`key`): where a sweep's cost goes (e.g. the
    Ghost models' slow depthwise convs), and what each asks the scheduler for (a grid may have its own resources)."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for row in planned:
        group = groups.setdefault((getattr(row, key), row.unit), {
            key: getattr(row, key), "trials": 0, "hours": 0.0, "unit": row.unit, "resources": {}})
        group["trials"] += 1
        group["hours"] += row.hours
        group["resources"][row.resources] = None
    totals = _totals(planned)
    return [group | {"share": group["hours"] / (totals[group["unit"]] or 1.0),
                     "resources": "; ".join(group["resources"])} for group in groups.values()]


def _totals(planned: list[PlannedTrial]) -> dict[str, float]:
    totals: Counter[str] = Counter()
    for row in planned:
        totals[row.unit] += row.hours
    return dict(totals)


def _hours_column(units: set[str]) -> tuple[str, bool]:
    """The hours column's header, and whether each value names its unit (a sweep with GPU and CPU trials)."""
    return (next(iter(units)), False) if len(units) == 1 else ("hours", True)


def _hours(value: float, unit: str, with_unit: bool) -> str:
    return f"{value:.2f} {unit}" if with_unit else f"{value:.2f}"


def print_plan(
    spec: SweepSpec, sweep_root: Path, console: Console | None = None, output_format: str = "table",
) -> None:
    """The plan as a table for people (trial ids whole: folded, never cut) or as json/csv for scripts."""
    planned = plan_trials(spec, sweep_root)
    console = console or Console()
    if output_format == "json":
        console.file.write(json.dumps(plan_document(spec, sweep_root, planned), indent=2) + "\n")
    elif output_format == "csv":
        console.file.write(plan_csv(planned))
    else:
        _print_tables(spec, sweep_root, planned, console)


def plan_document(spec: SweepSpec, sweep_root: Path, planned: list[PlannedTrial]) -> dict[str, Any]:
    """`plan --format json`: every trial, the variants and report rows, the totals per unit and the devices they
    assume."""
    units = {row.unit for row in planned}
    states = Counter(row.state for row in planned if row.state is not None)
    return {
        "sweep": spec.name, "sweep_dir": str(sweep_root), "backend": spec.backend,
        "trials": [asdict(row) for row in planned], "variants": _per("variant", planned),
        "rows": _per("row", planned), "totals": _totals(planned),
        "gpu_device": load_throughput()["device"] if GPU_HOURS in units else None,
        "cpu_device": detected_cpu() if CPU_HOURS in units else None,
        "scaled_by_macs_from": unmeasured(list(spec.trials)),
        "submit_would_start": states.get(str(TrialStatus.PENDING), 0) if states else None,
    }


def plan_csv(planned: list[PlannedTrial]) -> str:
    """`plan --format csv`: one row per trial, the header first."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[field for field in PlannedTrial.__dataclass_fields__], lineterminator="\n")
    writer.writeheader()
    writer.writerows(asdict(row) | {"state": row.state or ""} for row in planned)
    return out.getvalue()


def _differs(row: PlannedTrial) -> str:
    """What tells a trial's row from its variant's other rows: its label past the variant (the id names that)."""
    return row.row.removeprefix(row.variant).strip()


def _trial_lines(planned: list[PlannedTrial], header: str, with_unit: bool) -> list[str]:
    """The trial table as plain aligned lines: ids whole (the id `rerun --trial` takes; a terminal narrower than a
    line wraps it, nothing is cut), and fast for 10,000 trials, where a rich table takes seconds to lay out. A
    variant with several rows (e.g. fast and faithful runtimes) names what differs in a last column."""
    states = any(row.state is not None for row in planned)
    differs = any(_differs(row) for row in planned)
    rows = [("#", "trial", "seed", "iterations", header, *(("state",) if states else ()),
             *(("row: differs in",) if differs else ()))] + [
        (str(row.number), row.trial_id, str(row.seed), f"{row.iterations:,}", _hours(row.hours, row.unit, with_unit),
         *((row.state or "",) if states else ()), *((_differs(row),) if differs else ())) for row in planned]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    left = {1, 5, 6}  # the trial id, the state and what differs; numbers are right-aligned
    return ["  ".join(cell.ljust(width) if column in left else cell.rjust(width)
                      for column, (cell, width) in enumerate(zip(row, widths, strict=True))).rstrip()
            for row in rows]


def _print_tables(spec: SweepSpec, sweep_root: Path, planned: list[PlannedTrial], console: Console) -> None:
    """Trial table, counts per report row, the estimated totals; given a sweep directory, what submit would do."""
    header, with_unit = _hours_column({row.unit for row in planned})
    states = any(row.state is not None for row in planned)
    console.print(f"sweep {spec.name!r}: {len(planned)} trials", style="italic", highlight=False)
    console.file.write("\n".join(_trial_lines(planned, header, with_unit)) + "\n")
    rows = _per("row", planned)
    row_table = Table(title=f"{len(rows)} report rows", box=None)
    row_table.add_column("row", overflow="fold")
    for column in ("trials", header, "share"):
        row_table.add_column(column, justify="right", overflow="fold")
    row_table.add_column("resources per trial", overflow="fold")
    for row in rows:
        row_table.add_row(Text(row["row"]), str(row["trials"]), _hours(row["hours"], row["unit"], with_unit),
                          f"{row['share']:.0%}", Text(row["resources"]))
    console.print(row_table)
    totals = _totals(planned)
    where = {GPU_HOURS: f"GPU-hours on {load_throughput()['device']} GPUs (throughput per model and configuration: "
                        f"{THROUGHPUT_FILE.name})",
             CPU_HOURS: f"CPU-hours on this machine's CPU ({detected_cpu()}; one thread's throughput measured for "
                        f"{CPU_REFERENCE_MODEL}, scaled by MACs)"}
    console.print(
        "estimated " + " and ".join(f"{hours:.{1 if hours >= 10 else 2}f} {where[unit]}"
                                    for unit, hours in totals.items())
        + f"; per trial {describe_resources(spec.resources)}"
        f"{' unless its grid has its own' if spec.trial_resources else ''}; backend {spec.backend}"
    )
    if stand_ins := unmeasured(list(spec.trials)):
        console.print("not measured on the GPU yet, scaled by MACs: " + ", ".join(
            f"{name} (from {reference})" for name, reference in stand_ins.items()))
    if states:
        would = Counter(row.state for row in planned)
        console.print(f"{SweepDir(sweep_root).root}: submit would start {would.get(str(TrialStatus.PENDING), 0)} "
                      "trial(s); " + ", ".join(f"{n} {s}" for s, n in would.items()))
    console.print("nothing submitted")
