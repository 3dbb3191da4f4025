"""`ghostsweep plan`: what a spec would run, and how many GPU-hours it would take.

GPU-hours come from measured training throughput (`throughput.json`: images/s per model on a named device);
other depths and options are scaled by counted MACs from the same family's depth-56 entry. Evaluation passes
are counted at three times the training speed (forward only).
"""

from __future__ import annotations

import json
from collections import Counter
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ghostsweep.model.registry import model_info
from ghostsweep.orchestrator.spec import SweepSpec
from ghostsweep.orchestrator.state import read_state
from ghostsweep.orchestrator.sweepdir import SweepDir
from ghostsweep.trials.config import TrialConfig

THROUGHPUT_FILE = Path(__file__).with_name("throughput.json")
EVAL_SPEEDUP = 3.0
REFERENCE_DEPTH = 56


@lru_cache(maxsize=1)
def load_throughput() -> dict[str, Any]:
    return json.loads(THROUGHPUT_FILE.read_text())


@cache
def _macs(name: str, options: tuple[tuple[str, Any], ...]) -> int:
    """Counted on a real CPU model: on the meta device the flop counter loads torch's compiler stack (~1 s)."""
    from ghostsweep import model

    return model.count_macs(model.build(name, **dict(options)))


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


def estimate_gpu_hours(trial: TrialConfig, trials_per_gpu: int = 1) -> float:
    """GPU-hours one trial costs on the table's device (its share of a GPU when K trials are packed):
    training images plus every evaluation pass."""
    recipe = trial.recipe
    trained = recipe.iterations * recipe.batch_size
    evaluated = recipe.iterations // recipe.eval_interval * trial.data.val_size + trial.data.test_size
    rate = images_per_s(trial) * packing_gain(trial, trials_per_gpu)
    return (trained + evaluated / EVAL_SPEEDUP) / rate / 3600


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


def _reference_model(name: str) -> str:
    return model_info(name).at_depth(REFERENCE_DEPTH)


def _variant_table(trials: list[TrialConfig], hours: list[float]) -> Table:
    """Trials and GPU-hours per variant: where a sweep's cost goes (e.g. the Ghost models' slow depthwise convs)."""
    counts: Counter[str] = Counter()
    variant_hours: Counter[str] = Counter()
    for trial, trial_hours in zip(trials, hours, strict=True):
        counts[trial.variant] += 1
        variant_hours[trial.variant] += trial_hours
    total = sum(hours) or 1.0
    table = Table(title=f"{len(counts)} variants", box=None)
    for column in ("variant", "trials", "GPU-h", "share"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for variant, count in counts.items():
        table.add_row(variant, str(count), f"{variant_hours[variant]:.1f}", f"{variant_hours[variant] / total:.0%}")
    return table


def print_plan(spec: SweepSpec, sweep_root: Path, console: Console | None = None) -> None:
    """Trial table, counts per variant, total GPU-hours; given a sweep directory, what submit would do."""
    console = console or Console()
    sweep = SweepDir(sweep_root)
    trial_ids = [trial.trial_id() for trial in spec.trials]  # hashes the whole config: once per trial
    states = {}
    if sweep.index_path.exists():
        states = {trial_id: read_state(sweep.trial_dir(trial_id)).state for trial_id in trial_ids}
    table = Table(title=f"sweep {spec.name!r}: {len(spec.trials)} trials", box=None)
    numeric = ("#", "seed", "iterations", "GPU-h")
    for column in ("#", "trial", "variant", "seed", "iterations", "GPU-h", *(("state",) if states else ())):
        table.add_column(column, justify="right" if column in numeric else "left")
    hours = [estimate_gpu_hours(trial, spec.resources.trials_per_gpu) for trial in spec.trials]
    for number, (trial, trial_id, trial_hours) in enumerate(zip(spec.trials, trial_ids, hours, strict=True), 1):
        state = (states.get(trial_id, "pending"),) if states else ()
        table.add_row(str(number), trial_id, trial.variant, str(trial.seed), f"{trial.recipe.iterations:,}",
                      f"{trial_hours:.2f}", *state)
    console.print(table)
    console.print(_variant_table(spec.trials, hours))
    throughput = load_throughput()
    resources = spec.resources
    console.print(
        f"estimated {sum(hours):.1f} GPU-hours on {throughput['device']} GPUs (throughput per model and "
        f"configuration: {THROUGHPUT_FILE.name}); per trial {resources.gpus_per_trial} GPU(s), "
        f"{resources.cpus_per_trial} CPU(s), {resources.trials_per_gpu} trial(s) per GPU; "
        f"backend {spec.backend}"
    )
    if states:
        would = Counter(states.values())
        console.print(f"{sweep.root}: submit would start {would.get('pending', 0)} trial(s); "
                      + ", ".join(f"{n} {s}" for s, n in would.items()))
    console.print("nothing submitted")
