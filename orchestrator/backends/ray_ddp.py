"""Multi-GPU (DDP) trials on Ray: the Tune trainable calls `TorchTrainer.fit()`, whose ranks run the runner.

Ray Train starts one actor per rank, sets RANK/WORLD_SIZE/LOCAL_RANK and creates the process group, which the
runner joins as it is (`trials.distributed.init_process_group` keeps an existing group). Rank 0 runs the trial
under its lease through the worker; the other ranks run the runner alone, since only rank 0 writes files.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from orchestrator.backends.ray import EXPERIMENTS_DIR, TrialFailed, follow_trial, wait_for_lease
from orchestrator.fsutil import read_json
from orchestrator.sweepdir import CONFIG_FILE


def ddp_trial(config: dict[str, Any]) -> None:
    """Tune's function trainable for a DDP trial: fit in a thread, report the trial's metrics meanwhile."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    trial_dir = Path(config["trials_root"]) / config["trial_id"]
    wait_for_lease(trial_dir)
    trainer = TorchTrainer(
        _rank,
        train_loop_config={"trial_dir": str(trial_dir)},
        scaling_config=ScalingConfig(num_workers=config["ddp_workers"], use_gpu=config["use_gpu"]),
        run_config=RunConfig(name=trial_dir.name,
                             storage_path=str(trial_dir.parents[1] / EXPERIMENTS_DIR / "train")),
    )
    errors: list[BaseException] = []

    def fit() -> None:
        try:
            trainer.fit()
        except Exception as error:  # noqa: BLE001  (follow_trial reports the trial's own reason)
            errors.append(error)

    thread = threading.Thread(target=fit, name=f"fit-{trial_dir.name}", daemon=True)
    thread.start()
    try:
        follow_trial(trial_dir, lambda: None if thread.is_alive() else len(errors))
    except TrialFailed as failure:
        raise TrialFailed(f"{failure}; ray train: {errors[0] if errors else 'ok'}") from None


def _rank(loop_config: dict[str, Any]) -> None:
    """One DDP rank inside a Ray Train worker."""
    import ray.train

    from orchestrator import worker
    from trials.config import TrialConfig
    from trials.runner import run_trial

    trial_dir = Path(loop_config["trial_dir"])
    if ray.train.get_context().get_world_rank() == 0:
        code = worker.run_trial_dir(trial_dir)
        if code != worker.EXIT_DONE:
            raise TrialFailed(f"rank 0 worker exited {code}")
        return
    data = read_json(trial_dir / CONFIG_FILE)
    data.pop("trial_id", None)
    result = run_trial(TrialConfig.from_dict(data), trial_dir, worker._data_dir(trial_dir))
    if result.get("status") != "done":
        raise TrialFailed(f"rank {ray.train.get_context().get_world_rank()}: {result.get('reason')}")
