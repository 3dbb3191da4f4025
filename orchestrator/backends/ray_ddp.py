"""Multi-GPU (DDP) trials on Ray: the Tune trainable calls `TorchTrainer.fit()`, whose ranks run the worker.

Ray Train starts one actor per rank, sets RANK/WORLD_SIZE/LOCAL_RANK and creates the process group, which the
runner joins as it is (`trials.distributed.init_process_group` keeps an existing group). Every rank runs the
worker, which holds the lease and writes the files on rank 0 only.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from ghostsweep.orchestrator.backends.ray import EXPERIMENTS_DIR, POLL_INTERVAL_S, TrialFailed, follow_trial
from ghostsweep.orchestrator.lease import wait_until_released


def ddp_trial(config: dict[str, Any]) -> None:
    """Tune's function trainable for a DDP trial: fit in a thread, report the trial's metrics meanwhile."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    trial_dir = Path(config["trials_root"]) / config["trial_id"]
    wait_until_released([trial_dir], POLL_INTERVAL_S)  # an earlier attempt's worker may still be checkpointing
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

    from ghostsweep.orchestrator import worker

    code = worker.run_trial_dir(Path(loop_config["trial_dir"]))
    if code != worker.EXIT_DONE:
        raise TrialFailed(f"rank {ray.train.get_context().get_world_rank()} worker exited {code}")
