"""`ghostsweep extend`: more seeds for the rows and comparisons whose 95% interval is wider than a target.

n is chosen for precision, never "until significant": stopping once p < 0.05 makes a chance difference look real
far more often than 5% of the time, while a half-width target never looks at the difference itself. The seeds
needed come from the spread observed so far (`stats.seeds_for_halfwidth`, the number the report shows); seeds
planned but not done yet count towards n, since they will be done.

A new trial is a row's config.json with another seed, so its report group (every setting but the seed) is the
row's. A row takes its smallest unused seeds and a comparison's two rows take the same seeds, so that they pair.
Each extension is appended to extensions.json in the sweep directory (`Extension.to_dict`); `submit` of the same
spec keeps the added trials (`SweepDir.extension_trials`) and `report` lists the extensions.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from ghostsweep.orchestrator.report.build import build_report
from ghostsweep.orchestrator.report.model import Report
from ghostsweep.orchestrator.report.records import records_from_sweep
from ghostsweep.orchestrator.report.references import DEFAULT_TARGET_HALFWIDTH_PP
from ghostsweep.orchestrator.sweepdir.directory import EXTENSIONS_FILE, SweepDir, TrialEntry
from ghostsweep.orchestrator.sweepdir.state import read_state
from ghostsweep.trials.config import TrialConfig
from ghostsweep.trials.trialdir import CONFIG_FILE, TrialStatus, atomic_write_json, read_json

MIN_SEEDS = 3  # a row or comparison with no spread yet (< 2 seeds done) is first taken to 3: 2 df to plan from
DEFAULT_MAX_SEEDS = 20  # at a 0.2–0.3 pp seed std (ResNets on CIFAR-10), 20 seeds give about ±0.1 pp
SEED_LIMIT = 1000  # as for the spec's `seeds`


class Mode(StrEnum):
    """How the new n was chosen."""

    SEEDS = "seeds"  # one n for every row, set in advance
    UNTIL_HALFWIDTH = "until-halfwidth"  # the n the observed spread needs for a target half-width


@dataclass
class RowExtension:
    """One row: its seeds before, the precision that asked for more, the seeds added and why."""

    group: str
    label: str
    seeds_before: int  # planned, done or not
    seeds_done: int
    std: float | None  # of the final test accuracy over the seeds done
    halfwidth: float | None  # of its 95% CI
    seeds_needed: int | None  # for the target at this std (None: no spread yet, or more than 1000)
    added_seeds: list[int] = field(default_factory=list)
    trial_ids: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


@dataclass
class ComparisonNeed:
    """A comparison whose paired interval is wider than the target (or missing): both rows get its seeds."""

    difference: str
    treatment: str  # report groups
    reference: str
    n_pairs: int  # done
    halfwidth: float | None
    seeds_needed: int | None
    pairs_wanted: int
    reason: str


@dataclass
class NewTrial:
    trial_id: str
    config: dict[str, Any]  # its config.json
    entry: TrialEntry  # its sweep.json `trials` entry


@dataclass
class Extension:
    """One `extend`; extensions.json is the list of their `to_dict()`, oldest first."""

    mode: Mode
    seeds: int | None  # --seeds N
    target_halfwidth_pp: float | None  # --until-halfwidth PP
    max_seeds: int | None
    rows: list[RowExtension]
    comparisons: list[ComparisonNeed]
    new_trials: list[NewTrial] = field(default_factory=list)
    at: float = field(default_factory=time.time)

    @property
    def note(self) -> str:
        """One sentence for the report: how n was chosen and what was added."""
        added = ", ".join(f"+{len(r.added_seeds)} to {r.label}" for r in self.rows if r.added_seeds)
        if self.mode is Mode.SEEDS:
            return f"n set in advance: every row taken to {self.seeds} seeds ({added})."
        return (f"n chosen to reach a precision: seeds added until each row's 95% CI half-width, and each "
                f"comparison's paired one, would be at most ±{self.target_halfwidth_pp:g} pp at the spread observed "
                f"so far (at most {self.max_seeds} seeds); precision-based stopping, never until significant "
                f"({added}).")

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at, "mode": self.mode.value, "seeds": self.seeds,
            "target_halfwidth_pp": self.target_halfwidth_pp, "max_seeds": self.max_seeds, "note": self.note,
            "trial_ids": [t.trial_id for t in self.new_trials],
            "rows": [asdict(r) for r in self.rows if r.added_seeds],
            "comparisons": [asdict(c) for c in self.comparisons],
        }


@dataclass
class _Row:
    extension: RowExtension
    template_id: str  # the trial whose config.json and sweep.json entry the new seeds copy
    template_entry: TrialEntry
    seeds: list[int]  # planned, in plan order; grows as seeds are added

    def add(self, seeds: list[int], reason: str) -> None:
        new = [s for s in seeds if s not in self.seeds]
        if new:
            self.seeds += new
            self.extension.added_seeds += new
            self.extension.reasons.append(reason)


def target_halfwidth(sweep: SweepDir) -> float:
    """The spec's `report.target_halfwidth_pp` (sweeps from before it was recorded: the default)."""
    target = sweep.index().target_halfwidth_pp
    return DEFAULT_TARGET_HALFWIDTH_PP if target is None else target


def report_options(sweep: SweepDir) -> dict[str, Any]:
    """`build_report`'s precision arguments for this sweep: its target half-width and its extensions."""
    return {"target_halfwidth_pp": target_halfwidth(sweep), "extensions": sweep.extensions()}


def plan_seeds(sweep: SweepDir, seeds: int) -> Extension:
    """Every row taken to `seeds` seeds; a row that has as many already is left alone."""
    if not 1 <= seeds <= SEED_LIMIT:
        raise ValueError(f"--seeds: must be in [1, {SEED_LIMIT}], got {seeds}")
    rows, _ = _rows(sweep, target_halfwidth(sweep))
    for row in rows.values():
        row.add(_smallest_unused(row.seeds, seeds - len(row.seeds)), f"every row taken to {seeds} seeds")
    return _with_trials(sweep, Extension(Mode.SEEDS, seeds, None, None, [r.extension for r in rows.values()], []),
                        rows)


def plan_until_halfwidth(sweep: SweepDir, target: float, max_seeds: int | None = None) -> Extension:
    """The seeds each row's and each comparison's observed spread needs for a 95% half-width of `target` pp,
    at most `max_seeds` (default `DEFAULT_MAX_SEEDS`) per row."""
    max_seeds = DEFAULT_MAX_SEEDS if max_seeds is None else max_seeds
    if not (math.isfinite(target) and target > 0):
        raise ValueError(f"--until-halfwidth: must be a number of percentage points > 0, got {target}")
    if not MIN_SEEDS <= max_seeds <= SEED_LIMIT:
        raise ValueError(f"--max-seeds: must be in [{MIN_SEEDS}, {SEED_LIMIT}], got {max_seeds}")
    rows, report = _rows(sweep, target)
    for summary in report.rows:
        row, final = rows[summary.group], summary.final_test_acc
        wanted = _wanted(final.halfwidth, final.seeds_needed, summary.seeds_done, "seeds", target, max_seeds)
        if wanted is not None:
            row.add(_smallest_unused(row.seeds, wanted[0] - len(row.seeds)), wanted[1])
    needs = []
    for comparison in report.comparisons:
        halfwidth = comparison.paired and comparison.paired.halfwidth
        wanted = _wanted(halfwidth, comparison.seeds_needed, comparison.n_pairs, "pairs", target, max_seeds)
        if wanted is None:
            continue
        reason = f"{comparison.difference}: {wanted[1]}"
        pair = rows[comparison.treatment], rows[comparison.reference]
        for row, seeds in zip(pair, _pair_seeds(*pair, wanted[0]), strict=True):
            row.add(seeds[:max(0, max_seeds - len(row.seeds))], reason)
        needs.append(ComparisonNeed(comparison.difference, comparison.treatment, comparison.reference,
                                    comparison.n_pairs, halfwidth, comparison.seeds_needed, wanted[0], reason))
    extension = Extension(Mode.UNTIL_HALFWIDTH, None, target, max_seeds, [r.extension for r in rows.values()], needs)
    return _with_trials(sweep, extension, rows)


def _wanted(halfwidth: float | None, needed: int | None, done: int, unit: str, target: float,
            max_seeds: int) -> tuple[int, str] | None:
    """How many seeds (or pairs) a row (or comparison) should have, and why; None when it is precise enough."""
    if halfwidth is None:
        return MIN_SEEDS, f"{done} {unit} done, no spread yet: taken to {MIN_SEEDS} to estimate it"
    if halfwidth <= target:
        return None
    why = f"±{halfwidth:.2f} pp over {done} {unit} needs {needed or f'more than {SEED_LIMIT}'} for ±{target:g}"
    if needed is None or needed > max_seeds:
        return max_seeds, f"{why}, capped at {max_seeds}"
    return needed, why


def _smallest_unused(taken: list[int], count: int) -> list[int]:
    found, seed = [], 0
    while len(found) < count:
        if seed not in taken:
            found.append(seed)
        seed += 1
    return found


def _pair_seeds(treatment: _Row, reference: _Row, pairs: int) -> tuple[list[int], list[int]]:
    """What each row lacks of `pairs` common seeds: the common ones, then those one row has, then fresh ones."""
    common = [s for s in treatment.seeds if s in reference.seeds]
    one_side = sorted(set(treatment.seeds) ^ set(reference.seeds))
    wanted = [*common, *one_side, *_smallest_unused(treatment.seeds + reference.seeds, pairs)][:pairs]
    return ([s for s in wanted if s not in treatment.seeds], [s for s in wanted if s not in reference.seeds])


def _rows(sweep: SweepDir, target: float) -> tuple[dict[str, _Row], Report]:
    """Per report group, in plan order: its planned seeds, and the report's view of it at `target`."""
    index = sweep.index()
    report = build_report(*records_from_sweep(sweep.root), target_halfwidth_pp=target)
    members: dict[str, list[str]] = {}
    for trial_id in index.trial_ids:
        members.setdefault(index.trials[trial_id].group, []).append(trial_id)
    rows = {}
    for summary in report.rows:
        trial_ids, final = members[summary.group], summary.final_test_acc
        extension = RowExtension(summary.group, summary.label, len(trial_ids), summary.seeds_done, final.std,
                                 final.halfwidth, final.seeds_needed)
        rows[summary.group] = _Row(extension, trial_ids[0], index.trials[trial_ids[0]],
                                   [index.trials[i].seed for i in trial_ids])
    return rows, report


def _with_trials(sweep: SweepDir, extension: Extension, rows: dict[str, _Row]) -> Extension:
    """The new trials: the row's first trial's config.json and sweep.json entry, with the new seed."""
    for row in rows.values():
        template = read_json(sweep.trial_dir(row.template_id) / CONFIG_FILE)
        if row.extension.added_seeds and template is None:
            raise ValueError(f"{sweep.trial_dir(row.template_id) / CONFIG_FILE}: missing; cannot copy it")
        for seed in row.extension.added_seeds:
            config = {k: v for k, v in template.items() if k != "trial_id"} | {"seed": seed}
            trial_id = TrialConfig.from_dict(config).trial_id()
            row.extension.trial_ids.append(trial_id)
            extension.new_trials.append(NewTrial(trial_id, config | {"trial_id": trial_id},
                                                 replace(row.template_entry, seed=seed)))
    return extension


def apply_extension(sweep: SweepDir, extension: Extension) -> list[str]:
    """Write the new trials' folders, append the extension to extensions.json and the trials to sweep.json;
    the new trials that still have to run (a folder left by an earlier spec may hold a done one)."""
    planned = len(sweep.index().trial_ids)
    for position, new in enumerate(extension.new_trials, planned):
        trial_dir = sweep.trial_dir(new.trial_id)
        trial_dir.mkdir(parents=True, exist_ok=True)
        if not (trial_dir / CONFIG_FILE).exists():  # its W&B run is ordered where sweep.json lists it
            new.config.setdefault("wandb", {})["position"] = position
            atomic_write_json(trial_dir / CONFIG_FILE, new.config)
    atomic_write_json(sweep.root / EXTENSIONS_FILE, [*sweep.extensions(), extension.to_dict()])
    added = {new.trial_id: new.entry for new in extension.new_trials}
    sweep.write_index(sweep.index().with_trials(added, extension.at))
    return [t.trial_id for t in extension.new_trials
            if read_state(sweep.trial_dir(t.trial_id)).state == TrialStatus.PENDING]


def describe(extension: Extension) -> list[str]:
    """The plan as `extend` prints it: per row, seeds and precision now, then what is added and why."""
    if extension.mode is Mode.SEEDS:
        lines = [f"every row to {extension.seeds} seeds:"]
    else:
        lines = [f"until each 95% half-width is at most ±{extension.target_halfwidth_pp:g} pp "
                 f"(rows and paired comparisons; at most {extension.max_seeds} seeds per row):"]
    for row in extension.rows:
        precision = "no interval yet" if row.halfwidth is None else f"±{row.halfwidth:.2f} pp, std {row.std:.2f}"
        added = ("+ seeds " + ", ".join(map(str, row.added_seeds)) + ": " + "; ".join(row.reasons)
                 if row.added_seeds else "nothing to add")
        lines.append(f"  {row.label}: {row.seeds_before} seeds ({row.seeds_done} done), {precision} -> {added}")
    return lines
