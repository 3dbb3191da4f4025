"""One data-directory precedence for `ghostsweep train` and sweep workers alike (trials.datadir.data_root):
--data-dir, else $GHOSTSWEEP_DATA_DIR, else the sweep spec's data_dir, else ~/.cache/ghostsweep/cifar10."""

from __future__ import annotations

from pathlib import Path

import pytest

from ghostsweep.orchestrator.spec.resources import Resources
from ghostsweep.orchestrator.submission import worker
from ghostsweep.orchestrator.sweepdir.directory import SweepIndex
from ghostsweep.trials.config import TrialConfig
from ghostsweep.trials.datadir import DEFAULT_CACHE, data_root
from ghostsweep.trials.trialdir import ExitCode, atomic_write_json


def test_flag_then_variable_then_spec_then_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GHOSTSWEEP_DATA_DIR", raising=False)
    assert data_root() == DEFAULT_CACHE.expanduser()
    assert data_root(spec_data_dir="/spec") == Path("/spec")
    monkeypatch.setenv("GHOSTSWEEP_DATA_DIR", "/machine")
    assert data_root(spec_data_dir="/spec") == Path("/machine")
    assert data_root("/flag", spec_data_dir="/spec") == Path("/flag")


@pytest.mark.parametrize(("variable", "override", "expected"), [
    (None, None, "/spec/cifar"), ("/machine/cifar", None, "/machine/cifar"),
    ("/machine/cifar", "/flag/cifar", "/flag/cifar"),
])
def test_worker_hands_the_runner_the_same_choice(
    variable: str | None, override: str | None, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweep's worker: `submit --data-dir` (recorded in sweep.json) as the flag, then the variable, then the
    spec's data_dir."""
    if variable is None:
        monkeypatch.delenv("GHOSTSWEEP_DATA_DIR", raising=False)
    else:
        monkeypatch.setenv("GHOSTSWEEP_DATA_DIR", variable)
    atomic_write_json(tmp_path / "sweep.json", SweepIndex(
        name="t", created_at=0.0, updated_at=0.0, data_dir="/spec/cifar", data_dir_override=override,
        resources=Resources(), group_resources={}, backend="local", backend_options={}, wandb={},
        target_halfwidth_pp=None, trial_ids=(), trials={}).to_dict())
    trial = tmp_path / "trials" / "t"
    trial.mkdir(parents=True)
    atomic_write_json(trial / "config.json", TrialConfig(model="resnet20").to_dict())
    seen = []

    def runner(_config: TrialConfig, out_dir: Path, data_dir: Path, **_: object) -> dict:
        seen.append(data_dir)
        return {"status": "done"}

    assert worker.run_trial_dir(trial, runner) == ExitCode.DONE
    assert seen == [Path(expected)]
