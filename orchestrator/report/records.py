"""Reading a sweep for its report: one `TrialRecord` per trial, from a sweep directory (`records_from_sweep`) or
from W&B runs (`wandb_io.records_from_wandb`). `build.build_report` concludes from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ghostsweep.orchestrator.sweepdir.cache import TrialRead, read_trials
from ghostsweep.orchestrator.sweepdir.directory import SweepDir
from ghostsweep.trials.trialdir import TrialResult, TrialStatus

DIVERGED = "diverged"  # how the runner's reason for a non-finite loss begins (trials/runner.py)


@dataclass
class TrialRecord:
    """One trial as the report sees it, whether read from a sweep directory or from W&B."""

    trial_id: str
    group: str
    label: str
    variant: str
    model: str
    first_layer: str | None
    block_norm: str | None
    seed: int
    iterations: int
    done: bool
    result: TrialResult | None = None  # None before the trial (or its W&B run) has ended
    curve: list[tuple[int, float]] = field(default_factory=list)  # (iteration, val_acc)
    settings: dict[str, Any] = field(default_factory=dict)  # sweepdir.trial_settings: what rows are compared by
    failure: str | None = None  # why it failed (result.json's `reason`), when its last attempt failed for good
    attempts: int = 0  # submissions so far (queued.json's `attempt`; 0: never submitted)
    unreadable: str | None = None  # why its result.json or queued.json cannot be read, and the rerun that repairs it

    @property
    def diverged(self) -> bool:
        """A failure by a non-finite loss: the runner's reason says "diverged at iteration N"."""
        return self.failure is not None and self.failure.startswith(DIVERGED)

    @property
    def failed_for_good(self) -> bool:
        """A failure a rerun would repeat: a divergence (training is deterministic given the seed), or a second
        failed attempt. `extend` stops waiting for such a seed."""
        return self.failure is not None and (self.diverged or self.attempts >= 2)


def records_from_sweep(sweep_dir: Path | SweepDir, reads: list[TrialRead] | None = None,
                       ) -> tuple[str, list[TrialRecord], dict[str, Any]]:
    """Title, records in plan order and W&B settings, from the files of a sweep directory: its `read_trials`
    with curves (settled trials through the read cache), or `reads` when the caller has them."""
    sweep = sweep_dir if isinstance(sweep_dir, SweepDir) else SweepDir(sweep_dir)
    index = sweep.index()
    records = []
    for trial_id, read in zip(index.trial_ids, reads or read_trials(sweep, curves=True), strict=True):
        trial, state = index.trials[trial_id], read.state
        records.append(TrialRecord(
            trial_id=trial_id, group=trial.group, label=trial.label, variant=trial.variant,
            model=trial.model, first_layer=trial.first_layer, block_norm=trial.block_norm,
            seed=trial.seed, iterations=trial.iterations, done=state.state == TrialStatus.DONE,
            result=state.result, curve=read.curve, settings=trial.settings,
            failure=state.reason if state.state == TrialStatus.FAILED else None,
            attempts=state.attempt,
            unreadable=state.reason if state.state == TrialStatus.UNREADABLE else None,
        ))
    return index.name, records, index.wandb
