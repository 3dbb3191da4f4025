"""The report and W&B: log it to a summary run (`--wandb`), or build it from trial runs (`--from-wandb`).

Trial runs are the runner's: name = trial id, config = `TrialConfig.to_dict()` plus `trial_id`, summary = the
result fields, history = the eval rows at step = iteration.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ghostsweep.orchestrator.report import CURVE_METRIC, TABLE_COLUMNS, TrialRecord, table_rows

PROJECT_PATH = re.compile(r"[\w.-]+/[\w.-]+")
PLOTS = ("accuracy-vs-params", "learning-curves")
TRIAL_CONFIG_KEYS = ("model", "seed", "model_options", "recipe", "data", "runtime")


def records_from_wandb(path: str, api: Any | None = None) -> tuple[str, list[TrialRecord], dict[str, Any]]:
    """Title, one record per trial id (a finished run preferred) and W&B settings, via the public API."""
    if not PROJECT_PATH.fullmatch(path):
        raise ValueError(f"--from-wandb: expected ENTITY/PROJECT, got {path!r}")
    from ghostsweep.orchestrator.sweepdir import describe_trials
    from ghostsweep.trials.config import TrialConfig

    if api is None:
        import wandb

        api = wandb.Api()
    runs: dict[str, Any] = {}
    for run in api.runs(path):
        trial_id = run.config.get("trial_id")
        if trial_id and (trial_id not in runs or run.summary.get("status") == "done"):
            runs[trial_id] = run
    if not runs:
        raise ValueError(f"--from-wandb: no trial runs in {path}")
    configs = [TrialConfig.from_dict({k: v for k, v in run.config.items() if k in TRIAL_CONFIG_KEYS})
               for run in runs.values()]
    described = describe_trials(configs)
    records = []
    for config, run in zip(configs, runs.values(), strict=True):
        trial = described[config.trial_id()]
        summary = dict(run.summary)
        curve = [(row["_step"], row[CURVE_METRIC]) for row in run.scan_history(keys=["_step", CURVE_METRIC])
                 if row.get(CURVE_METRIC) is not None]
        records.append(TrialRecord(
            trial_id=config.trial_id(), group=trial["group"], label=trial["label"], variant=trial["variant"],
            model=trial["model"], first_layer=trial["first_layer"], block_norm=trial["block_norm"],
            seed=trial["seed"], iterations=trial["iterations"], done=summary.get("status") == "done",
            result=summary, curve=curve,
        ))
    entity, project = path.split("/")
    return path, records, {"entity": entity, "project": project}


def log_report(report: dict[str, Any], paths: dict[str, Path]) -> str:
    """Log the table and the plots to one W&B run (job_type "report"); returns where it went."""
    import wandb

    settings = report["wandb"]
    mode = settings.get("mode")
    run = wandb.init(
        project=settings.get("project", "ghostsweep"), entity=settings.get("entity"), job_type="report",
        name=f"report-{report['title'].replace('/', '-')}", config={"sweep": report["title"]},
        **({"mode": mode} if mode and mode != "disabled" else {}),
    )
    images = {f"report/{name}": wandb.Image(str(paths[name])) for name in PLOTS}
    run.log({"report/table": wandb.Table(columns=list(TABLE_COLUMNS), data=table_rows(report)), **images})
    for row in report["rows"]:
        stats = row["final_test_acc"]
        run.summary[f"{row['label']}/final_test_acc_mean"] = stats["mean"]
        run.summary[f"{row['label']}/final_test_acc_std"] = stats["std"]
        run.summary[f"{row['label']}/seeds_done"] = row["seeds_done"]
    where = run.url or str(Path(run.dir).parent)
    run.finish()
    return where
