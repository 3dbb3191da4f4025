"""Building the report: `TrialRecord`s (`records`) grouped into rows, concluded (`analysis`), and wrapped in a
`model.Report` with what it was made from; `inputs_sha256` digests those inputs, so that an unchanged sweep reuses
its files (`files.reusable_report`)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from functools import cache
from typing import Any

from ghostsweep.model.registry import model_info
from ghostsweep.orchestrator import report as report_package
from ghostsweep.orchestrator.report.analysis import RowInput, analyse
from ghostsweep.orchestrator.report.decisions import TwoStagePlan
from ghostsweep.orchestrator.report.model import PROVENANCE_ASPECTS, Metric, Provenance, Report, TrialEntry
from ghostsweep.orchestrator.report.records import TrialRecord
from ghostsweep.orchestrator.report.references import DEFAULT_TARGET_HALFWIDTH_PP, REFERENCES
from ghostsweep.orchestrator.sweepdir.cache import TrialRead
from ghostsweep.orchestrator.sweepdir.directory import ExtensionRecord, SweepDir, trial_settings
from ghostsweep.trials.config import TrialConfig
from ghostsweep.trials.files import source_digest
from ghostsweep.trials.provenance import UNKNOWN
from ghostsweep.trials.trialdir import TrialResult


@cache
def _defaults(model: str) -> dict[str, Any]:
    """Every setting at its default for this model: which of two compared rows is the reference."""
    return trial_settings(TrialConfig(model=model))


def _baseline_of(model: str) -> str | None:
    return model_info(model).baseline


def _row_input(members: list[TrialRecord], two_stage: TwoStagePlan | None) -> RowInput:
    first = members[0]
    done = [m for m in members if m.done and m.result is not None and m.result.final_test_acc is not None]
    values: dict[Metric, dict[int, float]] = {metric: {} for metric in Metric}
    hours = {"GPU": 0.0, "CPU": 0.0}
    for member in done:
        result = member.result
        for metric in Metric:
            value = getattr(result, metric.value)
            if value is not None:
                values[metric][member.seed] = value
        kind = "CPU" if (result.device or "cpu") == "cpu" else "GPU"
        hours[kind] += (result.wall_time_s or 0.0) * (result.world_size or 1) / 3600
    return RowInput(
        group=first.group, label=first.label, variant=first.variant, model=first.model,
        settings=first.settings, defaults=_defaults(first.model), seeds_planned=[m.seed for m in members],
        notes=[f"seed {m.seed} unreadable, not counted: {m.unreadable}" for m in members if m.unreadable],
        values=values, params=next((m.result.params for m in done if m.result.params), None),
        macs=next((m.result.macs for m in done if m.result.macs), None), gpu_hours=hours["GPU"],
        cpu_hours=hours["CPU"], iterations=first.iterations, first_layer=first.first_layer,
        block_norm=first.block_norm, seeds_failed=[m.seed for m in members if m.failure and not m.diverged],
        seeds_diverged=[m.seed for m in members if m.diverged], two_stage=two_stage, provenance=_provenance(done),
    )


def _provenance(done: list[TrialRecord]) -> Provenance | None:
    """Per aspect, which done seeds ran with which value ("unknown": result.json did not record it)."""
    if not done:
        return None
    aspects: dict[str, dict[str, list[int]]] = {aspect: {} for aspect in PROVENANCE_ASPECTS}
    for member in done:
        result = member.result
        for aspect, value in (("code", result.code_version), ("torch", result.torch_version),
                              ("cuda", result.cuda_version), ("cudnn", result.cudnn_version),
                              ("device", _device_model(result))):
            aspects[aspect].setdefault(value or UNKNOWN, []).append(member.seed)
    return Provenance(**aspects)


def _device_model(result: TrialResult) -> str | None:
    """"cpu" or the GPU's model; an older result names it only in `device` ("cuda:0 (NVIDIA H100 ...)")."""
    if result.gpu_model or result.device is None or result.device == "cpu":
        return result.gpu_model or result.device
    return result.device.partition("(")[2].removesuffix(")") or result.device


def two_stage_plans(extensions: Sequence[ExtensionRecord]) -> dict[str, TwoStagePlan]:
    """Per report group, the plan of the last `extend --until-halfwidth` that chose its seeds by Stein's
    procedure (extensions.json's rows' `two_stage`)."""
    return {group: TwoStagePlan(**asdict(plan)) for extension in extensions
            for group, plan in extension.two_stage.items()}


def build_report(
    title: str, records: list[TrialRecord], wandb: dict[str, Any] | None = None,
    target_halfwidth_pp: float = DEFAULT_TARGET_HALFWIDTH_PP, extensions: Sequence[ExtensionRecord] = (),
    inputs_sha256: str | None = None,
) -> Report:
    """Everything the report shows (report.json is its `to_dict`); `inputs_sha256` is recorded when given."""
    groups: dict[str, list[TrialRecord]] = {}
    for record in records:
        groups.setdefault(record.group, []).append(record)
    plans = two_stage_plans(extensions)
    conclusions = analyse([_row_input(members, plans.get(group)) for group, members in groups.items()],
                          _baseline_of, target_halfwidth_pp)
    used = {ref.source for row in conclusions.rows for ref in row.references}
    trials = [TrialEntry(r.trial_id, r.group, r.seed, r.done,
                         *(None if r.result is None else getattr(r.result, m.value) for m in Metric), r.curve,
                         *(None,) * 5 if r.result is None else (
                             r.result.code_version, r.result.torch_version, r.result.cuda_version,
                             r.result.cudnn_version, _device_model(r.result)))
              for r in records]
    return Report(
        **vars(conclusions), title=title, generated_at=time.time(),
        extensions=[extension.data for extension in extensions],
        sources={ref.source.key: ref.source for ref in REFERENCES if ref.source.key in used}, wandb=wandb or {},
        trials=trials, inputs_sha256=inputs_sha256,
    )


def inputs_sha256(sweep: SweepDir, reads: list[TrialRead], options: dict[str, Any]) -> str:
    """What a sweep's report is made from, digested: sweep.json (title, W&B settings, each trial's row and
    settings), `build_report`'s options, each trial's read (its `digest`: a remembered trial's is in the read
    cache, so an unchanged sweep is checked without building its records), and the code that turns them into a
    report. Equal digests make the same report (but for `generated_at`)."""
    digest = hashlib.sha256(sweep.index_path.read_bytes())
    digest.update(source_digest(report_package).encode())  # the code that makes a report: this package
    written = options | {"extensions": [extension.data for extension in options.get("extensions", ())]}
    digest.update(json.dumps([written, [read.digest for read in reads]], separators=(",", ":")).encode())
    return digest.hexdigest()
