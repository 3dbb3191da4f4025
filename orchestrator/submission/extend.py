"""`ghostsweep extend`: more seeds for the rows and comparisons whose 95% interval is wider than a target.

n is chosen for precision, never "until significant": stopping once p < 0.05 makes a chance difference look real
far more often than 5% of the time, while a half-width target never looks at the difference itself. `--until-
halfwidth` chooses n by Stein's two-stage procedure (decisions.plan_two_stage): the seeds done are the pilot (a row
with fewer than `decisions.MIN_PILOT_SEEDS` is first taken to that many), their spread and df set n, and the
report computes that row's interval from the pilot's spread and df, so that choosing n from the data does not cost
coverage (planning from the observed spread and then using a fixed-n t-interval covers 0.90-0.93, not 0.95).
The pilot is fixed by a row's (or comparison's) first plan in extensions.json, recorded even when it adds nothing:
a later `--until-halfwidth` reuses its n0 and s0 (decisions.replan) and only tops n up, since seeds added after the
pilot, their number chosen from s0, are stage-2 seeds and cannot become a new pilot.
Seeds planned but not done yet count towards n, since they will be done; a seed that failed for good (it
diverged, or failed twice: a rerun would repeat it) does not, and is replaced by a new seed, said in the reason.

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
from ghostsweep.orchestrator.report.decisions import (
    MIN_PILOT_SEEDS,
    STEIN_PROCEDURE,
    TwoStagePlan,
    plan_two_stage,
    replan,
)
from ghostsweep.orchestrator.report.model import Report
from ghostsweep.orchestrator.report.records import TrialRecord, records_from_sweep
from ghostsweep.orchestrator.report.references import DEFAULT_TARGET_HALFWIDTH_PP
from ghostsweep.orchestrator.spec.sweepspec import MAX_SEEDS, MAX_TRIALS
from ghostsweep.orchestrator.sweepdir.directory import (
    EXTENSIONS_FILE,
    ExtensionRecord,
    SweepDir,
    TrialEntry,
    linked_folder,
)
from ghostsweep.orchestrator.sweepdir.state import read_state
from ghostsweep.trials.config import TrialConfig
from ghostsweep.trials.trialdir import CONFIG_FILE, TrialStatus, atomic_write_json, read_json

MIN_SEEDS = MIN_PILOT_SEEDS  # a row or comparison is first taken to 3 seeds done: Stein's pilot, 2 df to plan from
DEFAULT_MAX_SEEDS = 20  # at a 0.2–0.3 pp seed std (ResNets on CIFAR-10), 20 seeds give about ±0.1 pp


class Mode(StrEnum):
    """How the new n was chosen."""

    SEEDS = "seeds"  # one n for every row, set in advance
    UNTIL_HALFWIDTH = "until-halfwidth"  # the n Stein's procedure plans for a target half-width


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
    lost_seeds: dict[int, str] = field(default_factory=dict)  # failed for good: not waited for (seed: why)
    two_stage: dict[str, Any] | None = None  # the TwoStagePlan that chose its n (`report` computes Stein's CI)
    # its first one fixes the row's pilot for later plans (recorded even when it adds nothing)


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
    two_stage: dict[str, Any] | None = None  # the TwoStagePlan of its paired differences


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
        return (f"n chosen to reach a precision by {STEIN_PROCEDURE}: each row's 95% CI half-width, and each "
                f"comparison's paired one, planned for ±{self.target_halfwidth_pp:g} pp from the seeds done "
                f"(rows with fewer than {MIN_SEEDS} first taken to {MIN_SEEDS}; at most {self.max_seeds} seeds); "
                f"precision-based stopping, never until significant ({added}).")

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at, "mode": self.mode.value, "seeds": self.seeds,
            "target_halfwidth_pp": self.target_halfwidth_pp, "max_seeds": self.max_seeds, "note": self.note,
            "trial_ids": [t.trial_id for t in self.new_trials],
            "rows": [asdict(r) for r in self.rows if r.added_seeds or r.lost_seeds or r.two_stage],
            "comparisons": [asdict(c) for c in self.comparisons],
        }


@dataclass
class _Row:
    extension: RowExtension
    template_id: str  # the trial whose config.json and sweep.json entry the new seeds copy
    template_entry: TrialEntry
    seeds: list[int]  # planned, in plan order; grows as seeds are added
    finals: dict[int, float]  # final test accuracy of the seeds done

    @property
    def counted(self) -> int:
        """The seeds that are or will be done: planned, less those that failed for good."""
        return len(self.seeds) - len(self.extension.lost_seeds)

    def add(self, seeds: list[int], reason: str) -> None:
        new = [s for s in seeds if s not in self.seeds]
        if new:
            self.seeds += new
            self.extension.added_seeds += new
            self.extension.reasons.append(reason + self._replacing())

    def take_to(self, total: int, reason: str) -> None:
        """`total` counted seeds: new ones for those missing, a lost seed replaced rather than waited for."""
        self.add(_smallest_unused(self.seeds, total - self.counted), reason)

    def _replacing(self) -> str:
        lost = self.extension.lost_seeds
        if not lost:
            return ""
        return "; not waiting for " + ", ".join(f"seed {seed} ({why})" for seed, why in lost.items()) + \
            ": counted as lost, a new seed in its place"


def target_halfwidth(sweep: SweepDir) -> float:
    """The spec's `report.target_halfwidth_pp` (sweeps from before it was recorded: the default)."""
    target = sweep.index().target_halfwidth_pp
    return DEFAULT_TARGET_HALFWIDTH_PP if target is None else target


def report_options(sweep: SweepDir) -> dict[str, Any]:
    """`build_report`'s precision arguments for this sweep: its target half-width and its extensions."""
    return {"target_halfwidth_pp": target_halfwidth(sweep), "extensions": sweep.extensions()}


def plan_seeds(sweep: SweepDir, seeds: int) -> Extension:
    """Every row taken to `seeds` seeds; a row that has as many already is left alone."""
    if not 1 <= seeds <= MAX_SEEDS:
        raise ValueError(f"--seeds: must be in [1, {MAX_SEEDS}], got {seeds}")
    rows, _ = _rows(sweep, target_halfwidth(sweep))
    for row in rows.values():
        row.take_to(seeds, f"every row taken to {seeds} seeds")
    return _with_trials(sweep, Extension(Mode.SEEDS, seeds, None, None, [r.extension for r in rows.values()], []),
                        rows)


def plan_until_halfwidth(sweep: SweepDir, target: float, max_seeds: int | None = None) -> Extension:
    """Stein's two-stage plan for each row's and each comparison's 95% half-width of `target` pp, from the pilot
    its first plan recorded, else from the seeds done (a row or comparison with fewer than `MIN_SEEDS` done is
    first taken to that many), at most `max_seeds` (default `DEFAULT_MAX_SEEDS`) per row."""
    max_seeds = DEFAULT_MAX_SEEDS if max_seeds is None else max_seeds
    if not (math.isfinite(target) and target > 0):
        raise ValueError(f"--until-halfwidth: must be a number of percentage points > 0, got {target}")
    if not MIN_SEEDS <= max_seeds <= MAX_SEEDS:
        raise ValueError(f"--max-seeds: must be in [{MIN_SEEDS}, {MAX_SEEDS}], got {max_seeds}")
    rows, report = _rows(sweep, target)
    extensions = sweep.extensions()
    row_pilots, comparison_pilots = _pilots(extensions, "rows", "group"), _pilots(extensions, "comparisons",
                                                                                  "difference")
    for row in rows.values():
        finals = [row.finals[s] for s in sorted(row.finals)]
        if (pilot := row_pilots.get(row.extension.group)) is not None:
            plan = replan(pilot, target, max_seeds)
        elif len(finals) < MIN_SEEDS:
            row.take_to(MIN_SEEDS, f"{len(finals)} seeds done: taken to {MIN_SEEDS}, the pilot to plan from")
            continue
        else:
            plan = plan_two_stage(finals, target, max_seeds)
        row.extension.two_stage = asdict(plan)
        if plan.total > row.counted:
            row.take_to(plan.total, plan.describe())
    needs = []
    for comparison in report.comparisons:
        pair = rows[comparison.treatment], rows[comparison.reference]
        common = sorted(pair[0].finals.keys() & pair[1].finals.keys())
        if (pilot := comparison_pilots.get(comparison.difference)) is not None:
            plan = replan(pilot, target, max_seeds)
            if plan.total <= len(common):
                continue
            wanted, reason, plan_dict = plan.total, f"paired Δ: {plan.describe()}", asdict(plan)
        elif len(common) < MIN_SEEDS:
            wanted, reason, plan_dict = MIN_SEEDS, f"{len(common)} pairs done: taken to {MIN_SEEDS}", None
        else:
            plan = plan_two_stage([pair[0].finals[s] - pair[1].finals[s] for s in common], target, max_seeds)
            if plan.total <= len(common):
                continue
            wanted, reason, plan_dict = plan.total, f"paired Δ: {plan.describe()}", asdict(plan)
        reason = f"{comparison.difference}: {reason}"
        for row, seeds in zip(pair, _pair_seeds(*pair, wanted), strict=True):
            row.add(seeds[:max(0, max_seeds - len(row.seeds))], reason)
        needs.append(ComparisonNeed(comparison.difference, comparison.treatment, comparison.reference,
                                    len(common), comparison.paired and comparison.paired.halfwidth,
                                    comparison.seeds_needed, wanted, reason, plan_dict))
    extension = Extension(Mode.UNTIL_HALFWIDTH, None, target, max_seeds, [r.extension for r in rows.values()], needs)
    return _with_trials(sweep, extension, rows)


def _pilots(extensions: list[ExtensionRecord], section: str, key: str) -> dict[str, TwoStagePlan]:
    """Per row group (or comparison), the first two-stage plan extensions.json records: it fixes the pilot."""
    pilots: dict[str, TwoStagePlan] = {}
    for extension in extensions:
        for entry in extension.data.get(section) or []:
            if isinstance(entry, dict) and entry.get("two_stage"):
                try:
                    pilots.setdefault(entry[key], TwoStagePlan(**entry["two_stage"]))
                except (KeyError, TypeError) as error:
                    raise ValueError(f"unreadable {EXTENSIONS_FILE}: {section}: a two-stage plan that is not what "
                                     f"`extend` writes ({type(error).__name__}: {error})") from None
    return pilots


def _smallest_unused(taken: list[int], count: int) -> list[int]:
    found, seed = [], 0
    while len(found) < count:
        if seed not in taken:
            found.append(seed)
        seed += 1
    return found


def _pair_seeds(treatment: _Row, reference: _Row, pairs: int) -> tuple[list[int], list[int]]:
    """What each row lacks of `pairs` common seeds: the common ones, then those one row has, then fresh ones; a
    seed either row lost for good does not pair."""
    lost = treatment.extension.lost_seeds.keys() | reference.extension.lost_seeds.keys()
    common = [s for s in treatment.seeds if s in reference.seeds and s not in lost]
    one_side = sorted((set(treatment.seeds) ^ set(reference.seeds)) - lost)
    wanted = [*common, *one_side, *_smallest_unused(treatment.seeds + reference.seeds, pairs)][:pairs]
    return ([s for s in wanted if s not in treatment.seeds], [s for s in wanted if s not in reference.seeds])


def _rows(sweep: SweepDir, target: float) -> tuple[dict[str, _Row], Report]:
    """Per report group, in plan order: its planned seeds, and the report's view of it at `target`."""
    index = sweep.index()
    sweep.extensions()  # the file this extension is appended to: one that cannot be read stops the plan, dry or not
    title, records, wandb = records_from_sweep(sweep.root)
    report = build_report(title, records, wandb, target_halfwidth_pp=target)
    members: dict[str, list[TrialRecord]] = {}
    for record in records:
        members.setdefault(record.group, []).append(record)
    rows = {}
    for summary in report.rows:
        trials, final = members[summary.group], summary.final_test_acc
        extension = RowExtension(summary.group, summary.label, len(trials), summary.seeds_done, final.std,
                                 final.halfwidth, final.seeds_needed,
                                 lost_seeds={t.seed: _why_lost(t) for t in trials if t.failed_for_good})
        finals = {t.seed: t.result.final_test_acc for t in trials
                  if t.done and t.result is not None and t.result.final_test_acc is not None}
        template = next((t.trial_id for t in trials if not linked_folder(sweep.trial_dir(t.trial_id))),
                        trials[0].trial_id)  # a linked folder's config.json is anyone's
        rows[summary.group] = _Row(extension, template, index.trials[template], [t.seed for t in trials], finals)
    return rows, report


def _why_lost(record: TrialRecord) -> str:
    return record.failure if record.diverged else f"failed {record.attempts} times: {record.failure}"


def _with_trials(sweep: SweepDir, extension: Extension, rows: dict[str, _Row]) -> Extension:
    """The new trials: the row's first trial's config.json and sweep.json entry, with the new seed; ValueError
    (one line) when the sweep would outgrow a spec's caps (a row's seeds, the sweep's trials)."""
    crowded = next((row for row in rows.values() if len(row.seeds) > MAX_SEEDS), None)
    if crowded is not None:
        raise ValueError(f"extend: row {crowded.extension.label!r} would have {len(crowded.seeds):,} seeds, more "
                         f"than the cap of {MAX_SEEDS} per trial setting (as for a spec's `seeds`)")
    total = len(sweep.index().trial_ids) + sum(len(row.extension.added_seeds) for row in rows.values())
    if total > MAX_TRIALS:
        raise ValueError(f"extend: the sweep would have {total:,} trials, more than the cap of {MAX_TRIALS:,} per "
                         f"sweep (as for a spec); split the sweep")
    for row in rows.values():
        template_dir = sweep.trial_dir(row.template_id)
        template = None if linked_folder(template_dir) else read_json(template_dir / CONFIG_FILE)
        if row.extension.added_seeds and not isinstance(template, dict):
            raise ValueError(f"{template_dir / CONFIG_FILE}: missing, not a JSON object, or in a folder that is a "
                             "symbolic link; cannot copy it")
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
    with sweep.updating():  # submit, extend or materialize at once would lose one another's trials
        planned = len(sweep.index().trial_ids)
        for position, new in enumerate(extension.new_trials, planned):
            trial_dir = sweep.trial_dir(new.trial_id)
            if linked_folder(trial_dir):  # `status` shows it unreadable; `submit` leaves it out
                continue
            trial_dir.mkdir(parents=True, exist_ok=True)
            if not (trial_dir / CONFIG_FILE).exists():  # its W&B run is ordered where sweep.json lists it
                new.config.setdefault("wandb", {})["position"] = position
                atomic_write_json(trial_dir / CONFIG_FILE, new.config)
        atomic_write_json(sweep.root / EXTENSIONS_FILE, [*(e.data for e in sweep.extensions()), extension.to_dict()])
        added = {new.trial_id: new.entry for new in extension.new_trials}
        sweep.write_index(sweep.index().with_trials(added, extension.at))
    return [t.trial_id for t in extension.new_trials
            if read_state(sweep.trial_dir(t.trial_id)).state == TrialStatus.PENDING]


def describe(extension: Extension) -> list[str]:
    """The plan as `extend` prints it: per row, seeds and precision now, then what is added and why."""
    if extension.mode is Mode.SEEDS:
        lines = [f"every row to {extension.seeds} seeds:"]
    else:
        lines = [f"until each 95% half-width is at most ±{extension.target_halfwidth_pp:g} pp by {STEIN_PROCEDURE} "
                 f"(rows and paired comparisons; at most {extension.max_seeds} seeds per row):"]
    for row in extension.rows:
        precision = "no interval yet" if row.halfwidth is None else f"±{row.halfwidth:.2f} pp, std {row.std:.2f}"
        if row.lost_seeds:
            precision += f", {len(row.lost_seeds)} lost for good"
        added = ("+ seeds " + ", ".join(map(str, row.added_seeds)) + ": " + "; ".join(row.reasons)
                 if row.added_seeds else "nothing to add")
        lines.append(f"  {row.label}: {row.seeds_before} seeds ({row.seeds_done} done), {precision} -> {added}")
    return lines
