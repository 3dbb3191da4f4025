"""The report and W&B: log it to a report run (`--wandb`), or build it from the trial runs (`--from-wandb`).

Trial runs are the runner's: name = trial id, group = `SWEEP/ROW LABEL` (`WandbConfig.run_group`), config =
`TrialConfig.to_dict()` plus `trial_id` and the trial's facts (params, MACs, device, ...), summary = the result
fields, history = the eval rows at step = iteration. A sweep's trials carry `wandb.sweep`, `wandb.row` and
`wandb.position` (`sweepdir.sweep_trial_config`), so their runs group, label and order as the sweep's files do.

The report run (job_type "report") is kept beside the report (SWEEP_DIR/wandb/): report.json's numbers as tables
that sort and plot (`numeric_tables`), the plots, report.html, and the headline numbers in its summary. Its record
(SWEEP_DIR/wandb-report-run.json: the inputs it was made from, where it went) lets `report --wandb` on an unchanged
sweep log nothing new: one report run per state of the sweep, not one per command.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

from ghostsweep.orchestrator.report.decisions import Judgement
from ghostsweep.orchestrator.report.model import Metric, Report
from ghostsweep.orchestrator.report.plots import PLOTS
from ghostsweep.orchestrator.report.records import TrialRecord
from ghostsweep.orchestrator.report.stats import Interval
from ghostsweep.trials.files import MAX_RECORD_BYTES, atomic_write_text, read_json
from ghostsweep.trials.trialdir import CURVE_METRIC, Outcome, TrialResult

WANDB_PATH = re.compile(r"(?P<entity>[\w.-]+)/(?P<project>[\w.-]+)(?:/(?P<sweep>[\w.-]+))?")
TRIAL_CONFIG_KEYS = ("model", "seed", "model_options", "recipe", "data", "runtime")
LOGGED_FILE = "wandb-report-run.json"


def records_from_wandb(path: str, api: Any | None = None) -> tuple[str, list[TrialRecord], dict[str, Any]]:
    """Title, one record per trial (a finished run preferred) in plan order, and W&B settings, via the public API.

    `path` is ENTITY/PROJECT, or ENTITY/PROJECT/SWEEP for one sweep of a project that holds several: a report
    never mixes sweeps. Trials without a run (never started) are not in W&B, so not in this report."""
    match = WANDB_PATH.fullmatch(path)
    if match is None:
        raise ValueError(f"--from-wandb: expected ENTITY/PROJECT or ENTITY/PROJECT/SWEEP, got {path!r}")
    entity, project, sweep = match.group("entity", "project", "sweep")
    from ghostsweep.orchestrator.sweepdir.directory import describe_trials
    from ghostsweep.trials.config import TrialConfig

    if api is None:
        import wandb

        api = wandb.Api()
    runs: dict[tuple[str | None, str], Any] = {}
    for run in api.runs(f"{entity}/{project}"):
        trial_id = run.config.get("trial_id")
        key = (_observed(run).get("sweep"), trial_id)
        if trial_id and (key not in runs or run.summary.get("status") == Outcome.DONE):
            runs[key] = run
    sweeps = {name for name, _ in runs}
    if sweep is None and len(sweeps) > 1:
        names = ", ".join(sorted(name or "(runs outside a sweep)" for name in sweeps))
        raise ValueError(f"--from-wandb: {path} holds the runs of several sweeps ({names}); "
                         f"pick one: {path}/SWEEP")
    chosen = [run for (name, _), run in runs.items() if sweep is None or name == sweep]
    if not chosen:
        raise ValueError(f"--from-wandb: no trial runs in {path}")
    chosen.sort(key=_position)  # stable: runs from before `position` keep the API's order
    configs = [TrialConfig.from_dict({k: v for k, v in run.config.items() if k in TRIAL_CONFIG_KEYS})
               for run in chosen]
    described = describe_trials(configs)
    records = []
    for config, run in zip(configs, chosen, strict=True):
        trial = described[config.trial_id()]
        result = _result_from_summary(dict(run.summary))
        curve = [(row["_step"], row[CURVE_METRIC]) for row in run.scan_history(keys=["_step", CURVE_METRIC])
                 if row.get(CURVE_METRIC) is not None]
        records.append(TrialRecord(
            trial_id=config.trial_id(), group=trial.group, label=_observed(run).get("row") or trial.label,
            variant=trial.variant, model=trial.model, first_layer=trial.first_layer,
            block_norm=trial.block_norm, seed=trial.seed, iterations=trial.iterations,
            done=result is not None and result.done, result=result, curve=curve, settings=trial.settings,
            failure=(result.reason or "failed") if result is not None and result.status is Outcome.FAILED else None,
        ))
    title = _observed(chosen[0]).get("sweep") or path
    return title, records, {"entity": entity, "project": project}


def _observed(run: Any) -> dict[str, Any]:
    """The run's `wandb` config section (WandbConfig as the trial ran with it)."""
    return run.config.get("wandb") or {}


def _position(run: Any) -> float:
    position = _observed(run).get("position")
    return math.inf if position is None else position


def _result_from_summary(summary: dict[str, Any]) -> TrialResult | None:
    """The result the runner logged to its run's summary; None while the run has not ended (no `status`)."""
    try:
        return TrialResult.from_dict(summary)
    except ValueError:
        return None


def numeric_tables(report: Report) -> dict[str, list[dict[str, Any]]]:
    """The report as flat tables of numbers (strings only for names and verdicts), one dict per table row:
    `rows` (each accuracy summary as `<metric>_<stat>`), `references` (each published number against its row),
    `comparisons` (paired Δ = treatment − reference, Welch beside it), `claims` (each source's Δ against ours),
    `answer` (the report's opening sentences). Each carries the provenance of what it is computed from: a row's
    (`provenance`, `provenance_flag`), a comparison's warnings (`provenance`)."""
    rows = [{
        "group": row.group, "label": row.label, "variant": row.variant, "model": row.model, "family": row.family,
        "first_layer": row.first_layer, "block_norm": row.block_norm, "seeds_planned": row.seeds_planned,
        "seeds_done": row.seeds_done, "missing_seeds": " ".join(map(str, row.missing_seeds)),
        "failed_seeds": " ".join(map(str, row.outcomes.failed)),
        "diverged_seeds": " ".join(map(str, row.outcomes.diverged)),
        **{f"{metric.value}_{stat}": value
           for metric in Metric for stat, value in row.summary(metric).to_dict().items()},
        "params": row.params, "macs": row.macs, "gpu_hours": row.gpu_hours, "cpu_hours": row.cpu_hours,
        "notes": "; ".join(row.notes), "provenance": row.provenance and row.provenance.describe(),
        "provenance_flag": row.provenance_flag,
    } for row in report.rows]
    references = [{
        "group": row.group, "label": row.label, "source": ref.source, "kind": ref.kind.value, "runs": ref.runs,
        "metric": ref.metric.value, "test_acc": ref.test_acc, "test_acc_std": ref.test_acc_std, "params": ref.params,
        "macs": ref.macs, "ours_mean": ref.ours_mean, "ours_minus_paper": ref.ours_minus_paper,
        "interval_low": ref.interval and ref.interval.low, "interval_high": ref.interval and ref.interval.high,
        "p_value": ref.p_value, "method": ref.method, **_judgement_columns(ref.judgement),
        "provenance_flag": row.provenance_flag,
    } for row in report.rows for ref in row.references]
    comparisons = [{
        "factor": c.factor, "difference": c.difference, "treatment": c.treatment, "reference": c.reference,
        "treatment_label": c.treatment_label, "reference_label": c.reference_label, "differing": " ".join(c.differing),
        "n_pairs": c.n_pairs, **_interval_columns(c.paired), **_interval_columns(c.welch, "welch_"),
        "method": c.method.value, "treatment_lost": " ".join(map(str, c.treatment_seeds.lost)),
        "reference_lost": " ".join(map(str, c.reference_seeds.lost)),
        "seeds_needed": c.seeds_needed, "params_ratio": c.params_ratio, "macs_ratio": c.macs_ratio,
        "provenance": "; ".join(c.provenance),
    } for c in report.comparisons]
    claims = [{
        "difference": c.difference, "treatment_label": c.treatment_label, "reference_label": c.reference_label,
        "ours_delta": (c.paired or c.welch) and (c.paired or c.welch).estimate, "source": claim.source,
        "claim_delta": claim.delta, "claim_params_ratio": claim.params_ratio, "claim_macs_ratio": claim.macs_ratio,
        "prediction_low": claim.prediction and claim.prediction.low,
        "prediction_high": claim.prediction and claim.prediction.high, **_judgement_columns(claim.judgement),
        "provenance": "; ".join(c.provenance),
    } for c in report.comparisons for claim in c.claims]
    answer = [{"difference": c.difference, "sentence": c.sentence} for c in report.comparisons]
    return {"rows": rows, "references": references, "comparisons": comparisons, "claims": claims, "answer": answer}


def _judgement_columns(judgement: Judgement) -> dict[str, str | float | None]:
    """A judgement as table columns: the final verdict, the one before adjustment, the margin, raw and adjusted p."""
    return {"verdict": (judgement.final_verdict or judgement.verdict).value, "raw_verdict": judgement.verdict.value,
            "margin": judgement.margin, "p_difference": judgement.p_difference,
            "p_difference_adjusted": judgement.p_difference_adjusted, "p_equivalence": judgement.p_equivalence,
            "p_equivalence_adjusted": judgement.p_equivalence_adjusted}


def _interval_columns(interval: Interval | None, prefix: str = "") -> dict[str, float | int | None]:
    """An interval as table columns: `delta` (its estimate), `low`, `high`, `halfwidth`, `p_value`."""
    values = (None,) * 5 if interval is None else (interval.estimate, interval.low, interval.high, interval.halfwidth,
                                                   interval.p_value)
    return {f"{prefix}{column}": value
            for column, value in zip(("delta", "low", "high", "halfwidth", "p_value"), values, strict=True)}


def report_summary(report: Report) -> dict[str, float | int | None]:
    """The headline numbers, one summary key each: per row its final test accuracy, per comparison its paired Δ."""
    summary: dict[str, float | int | None] = {}
    for row in report.rows:
        final, prefix = row.final_test_acc, f"rows/{row.label}/{Metric.FINAL.value}"
        summary |= {f"rows/{row.label}/seeds_done": row.seeds_done, f"{prefix}_mean": final.mean,
                    f"{prefix}_std": final.std, f"{prefix}_ci_low": final.ci_low, f"{prefix}_ci_high": final.ci_high,
                    f"{prefix}_halfwidth": final.halfwidth}
    for comparison in report.comparisons:
        summary |= {f"comparisons/{comparison.difference}/{column}": value
                    for column, value in _interval_columns(comparison.paired).items()}
        summary[f"comparisons/{comparison.difference}/n_pairs"] = comparison.n_pairs
    return summary


def log_report(report: Report, paths: dict[str, Path], out_dir: Path) -> str:
    """Log the report to one W&B run (job_type "report") kept in `out_dir`/wandb: its tables, plots, report.html
    and headline numbers. Returns the run's URL, or its folder when offline (for `wandb sync`)."""
    import wandb

    settings = report.wandb
    mode = settings.get("mode")
    run = wandb.init(
        project=settings.get("project", "ghostsweep"), entity=settings.get("entity"), job_type="report",
        group=report.title, name=f"report-{report.title.replace('/', '-')}", dir=str(out_dir),
        config={"sweep": report.title, "target_halfwidth_pp": report.target_halfwidth_pp},
        reinit="create_new", **({"mode": mode} if mode and mode != "disabled" else {}),
        # silent: the two lines `report` prints say where the run went, and `ghostsweep sync` (not wandb's advice
        # to `wandb sync` each run by hand) pushes it
        settings=wandb.Settings(silent=True),
    )
    tables = {f"report/{name}": wandb.Table(columns=list(lines[0]), data=[list(line.values()) for line in lines])
              for name, lines in numeric_tables(report).items() if lines}
    images = {f"report/{name}": wandb.Image(str(paths[name])) for name in PLOTS}
    page = wandb.Html(paths["html"].read_text(), inject=False)
    run.log({**tables, **images, "report/html": page})
    run.summary.update({key: value for key, value in report_summary(report).items() if value is not None})
    where = str(Path(run.dir).parent) if run.offline else run.url
    run.finish()
    if report.inputs_sha256:
        atomic_write_text(out_dir / LOGGED_FILE, json.dumps(
            {"inputs_sha256": report.inputs_sha256, "wandb": _destination(report), "where": where}, indent=1) + "\n")
    return where


def logged_before(report: Report, out_dir: Path) -> str | None:
    """Where `log_report` logged this report before (a URL, or an offline run's folder that is still there), when
    it was made from the same inputs for the same W&B project and mode; else None. A record that is not what
    `log_report` writes (the folder is anyone's to edit) is no record."""
    try:
        data = read_json(out_dir / LOGGED_FILE, MAX_RECORD_BYTES)
    except (ValueError, OSError):
        return None
    if not isinstance(data, dict) or not report.inputs_sha256 or data.get("inputs_sha256") != report.inputs_sha256 \
            or data.get("wandb") != _destination(report) or not isinstance(where := data.get("where"), str):
        return None
    return where if where.startswith(("https://", "http://")) or (out_dir / "wandb" / Path(where).name).is_dir() \
        else None


def report_run_mode(report: Report) -> str | None:
    """The W&B mode the report run takes (`log_report`): the spec's, else W&B's own setting (WANDB_MODE)."""
    mode = report.wandb.get("mode")
    return os.environ.get("WANDB_MODE") if mode in (None, "disabled") else mode


def _destination(report: Report) -> dict[str, str | None]:
    """Where the report run goes: the spec's project and entity, and its mode (offline then online is a new run)."""
    return {"project": report.wandb.get("project"), "entity": report.wandb.get("entity"),
            "mode": report_run_mode(report)}
