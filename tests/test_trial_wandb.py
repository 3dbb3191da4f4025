"""W&B observes a trial and never endangers it: offline runs can be read back, nothing leaks the API key."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

from test_trial_helpers import (
    REPO,
    SMOKE,
    result,
    train,
    train_process,
    trial_env,
    wandb_offline_run,
    wandb_run_record,
)

from ghostsweep.orchestrator.report.build import build_report
from ghostsweep.orchestrator.report.records import records_from_sweep
from ghostsweep.orchestrator.report.wandb_io import records_from_wandb
from ghostsweep.orchestrator.spec.sweepspec import parse_spec
from ghostsweep.orchestrator.sweepdir.directory import SweepDir

SECRET = "local-" + "0123456789abcdef" * 2 + "deadbeef"  # shaped like a key; must never be written anywhere
RUN = [*SMOKE, "--iterations", "4", "--eval-interval", "2", "--val-size", "100", "--test-size", "100"]


def test_offline_run_has_group_and_complexity_and_no_key(cifar10_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "trial"
    completed = train_process(*RUN, "--model", "ghost_resnet8", "--data-dir", cifar10_dir, "--out", out,
                              "--wandb-mode", "offline", "--wandb-project", "ghostsweep-test",
                              env=trial_env(WANDB_API_KEY=SECRET), cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    summary = result(out)
    run_dir = Path(summary["wandb_run_dir"])
    assert run_dir.is_dir() and run_dir.name.startswith("offline-run-") and run_dir.is_relative_to(out)
    run = wandb_run_record(run_dir)
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert run.run_group == summary["variant"] == "ghost_resnet8-conv-keep"  # outside a sweep: the variant
    assert run.job_type == "trial" and run.project == "ghostsweep-test"
    assert list(run.tags) == ["ghost_resnet8-conv-keep"]  # outside a sweep: no sweep tag
    assert (config["first_layer"], config["block_norm"], config["ratio"], config["kernel"]) == ("conv", "keep", 2, 3)
    assert (config["params"], config["macs"]) == (summary["params"], summary["macs"])
    assert config["trial_id"] == summary["trial_id"] and config["seed"] == 0
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert not leaked and SECRET not in completed.stdout + completed.stderr


def test_sweep_trial_run_is_grouped_by_its_report_row(cifar10_dir: Path, tmp_path: Path) -> None:
    """A sweep's config.json names the trial's report row: its run's W&B group is `sweep/row label`."""
    spec = parse_spec({"name": "tiny", "seeds": 1, "grids": [{"model": ["resnet8"], "recipe.lr": [0.05, 0.1]}],
                       "recipe": {"iterations": 4, "eval_interval": 2, "batch_size": 32},
                       "data": {"val_size": 100, "test_size": 100},
                       "wandb": {"mode": "offline", "project": "ghostsweep-test", "tags": ["smoke"]}})
    sweep = SweepDir(tmp_path / "sweep")
    sweep.materialize(spec)
    for trial_dir in map(sweep.trial_dir, sweep.trial_ids()):
        completed = train_process("--config", trial_dir / "config.json", "--data-dir", cifar10_dir, "--out",
                                  trial_dir, cwd=tmp_path)
        assert completed.returncode == 0, completed.stderr
    trial_id = sweep.trial_ids()[0]
    trial_dir = sweep.trial_dir(trial_id)
    run = wandb_run_record(Path(result(trial_dir)["wandb_run_dir"]))
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert run.run_group == "tiny/resnet8 recipe.lr=0.05" == f"tiny/{sweep.index().trials[trial_id].label}"
    assert config["wandb"] | {"sweep": "tiny", "row": "resnet8 recipe.lr=0.05", "position": 0} == config["wandb"]
    assert config["trial_id"] == trial_id
    # What the project's run table filters and groups by: top-level keys, the tags, the kind of run.
    assert {key: config[key] for key in ("model", "family", "depth", "variant", "first_layer", "block_norm", "ratio",
                                         "kernel", "shortcut", "seed", "sweep", "row")} == {
        "model": "resnet8", "family": "resnet", "depth": 8, "variant": "resnet8", "first_layer": None,
        "block_norm": None, "ratio": None, "kernel": None, "shortcut": "A", "seed": 0, "sweep": "tiny",
        "row": "resnet8 recipe.lr=0.05"}
    assert config["recipe"]["lr"] == 0.05 and config["runtime"]["compile"] == "off"  # W&B's recipe.lr, runtime.*
    assert list(run.tags) == ["smoke", "sweep:tiny", "resnet8"] and run.job_type == "trial"
    # The offline runs hold the same numbers as the files: `report --from-wandb` on them (read from their logs,
    # as a W&B server would serve them after `wandb sync`) gives the files' report.
    runs = [wandb_offline_run(Path(result(sweep.trial_dir(t))["wandb_run_dir"])) for t in sweep.trial_ids()]
    from_wandb = build_report(*records_from_wandb("lab/ghostsweep-test/tiny", api=SimpleNamespace(runs=lambda _: runs)))
    from_files = build_report(*records_from_sweep(sweep.root))
    assert from_wandb.rows == from_files.rows and from_wandb.trials == from_files.trials
    assert {row.final_test_acc.n for row in from_files.rows} == {1}


def test_unreachable_wandb_does_not_fail_the_trial(cifar10_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "trial.json"
    config.write_text(json.dumps({"model": "resnet8", "wandb": {"mode": "online", "init_timeout_s": 5}}))
    env = trial_env(WANDB_API_KEY=SECRET, WANDB_BASE_URL="http://127.0.0.1:9", WANDB_INIT_TIMEOUT="5",
                    WANDB_HTTP_TIMEOUT="2")
    started = time.time()
    out = tmp_path / "trial"
    completed = train_process("--config", config, *RUN, "--data-dir", cifar10_dir, "--out", out,
                              env=env, cwd=tmp_path, timeout=240)
    assert completed.returncode == 0, completed.stderr
    assert result(out)["status"] == "done"
    assert "W&B" in completed.stderr  # one warning, then training went on
    assert time.time() - started < 200


def test_disabled_leaves_nothing(cifar10_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "trial"
    assert train(*RUN, "--data-dir", cifar10_dir, "--out", out, "--wandb-mode", "disabled") == 0
    assert result(out)["wandb_run_dir"] is None
    assert not list(tmp_path.rglob("wandb")) and not (REPO / "wandb").exists()
