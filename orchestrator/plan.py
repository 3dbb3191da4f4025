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

from orchestrator.spec import SweepSpec
from orchestrator.state import read_state
from orchestrator.sweepdir import SweepDir
from trials.config import TrialConfig

THROUGHPUT_FILE = Path(__file__).with_name("throughput.json")
EVAL_SPEEDUP = 3.0
REFERENCE_DEPTH = 56


@lru_cache(maxsize=1)
def load_throughput() -> dict[str, Any]:
    return json.loads(THROUGHPUT_FILE.read_text())


@cache
def _macs(name: str, options: tuple[tuple[str, Any], ...]) -> int:
    """Counted on a real CPU model: on the meta device the flop counter loads torch's compiler stack (~1 s)."""
    import model

    return model.count_macs(model.build(name, **dict(options)))


def images_per_s(trial: TrialConfig) -> float:
    """Training throughput of this trial's model and runtime configuration on the throughput table's device.

    The configuration measured with the trial's compile/precision/channels_last, else one with its compile
    mode, else eager.
    """
    throughput = load_throughput()
    runtime = {key: getattr(trial.runtime, key) for key in ("compile", "precision", "channels_last")}
    configurations = throughput["configurations"]
    same_mode = [name for name, fields in configurations.items() if fields["compile"] == runtime["compile"]]
    exact = [name for name in same_mode if configurations[name] == runtime]
    table = throughput["images_per_s"][(exact or same_mode or ["eager"])[0]]
    if trial.model in table and not trial.model_options:
        return float(table[trial.model])
    reference = f"{trial.model.rstrip('0123456789')}{REFERENCE_DEPTH}"
    options = tuple(sorted(trial.resolved_model_options().items()))
    return table[reference] * throughput["reference_macs"][reference] / _macs(trial.model, options)


def estimate_gpu_hours(trial: TrialConfig) -> float:
    """One trial on one GPU of the table's device: training images plus every evaluation pass."""
    recipe = trial.recipe
    trained = recipe.iterations * recipe.batch_size
    evaluated = recipe.iterations // recipe.eval_interval * trial.data.val_size + trial.data.test_size
    return (trained + evaluated / EVAL_SPEEDUP) / images_per_s(trial) / 3600


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
    hours = [estimate_gpu_hours(trial) for trial in spec.trials]
    for number, (trial, trial_id, trial_hours) in enumerate(zip(spec.trials, trial_ids, hours, strict=True), 1):
        state = (states.get(trial_id, "pending"),) if states else ()
        table.add_row(str(number), trial_id, trial.variant, str(trial.seed), f"{trial.recipe.iterations:,}",
                      f"{trial_hours:.2f}", *state)
    console.print(table)
    variants = Counter(trial.variant for trial in spec.trials)
    console.print(f"{len(variants)} variants: " + ", ".join(f"{v} x{n}" for v, n in variants.items()))
    throughput = load_throughput()
    resources = spec.resources
    console.print(
        f"estimated {sum(hours):.1f} GPU-hours, assuming one {throughput['device']} per trial (eager fp32 "
        f"unless compiled; {THROUGHPUT_FILE.name}); per trial {resources.gpus_per_trial} GPU(s), "
        f"{resources.cpus_per_trial} CPU(s), {resources.trials_per_gpu} trial(s) per GPU; "
        f"backend {spec.backend}"
    )
    if states:
        would = Counter(states.values())
        console.print(f"{sweep.root}: submit would start {would.get('pending', 0)} trial(s); "
                      + ", ".join(f"{n} {s}" for s, n in would.items()))
    console.print("nothing submitted")
