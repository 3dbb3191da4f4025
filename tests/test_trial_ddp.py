"""N ranks = 1 rank: each rank trains on its slice of the same global batch, SyncBN sees the whole batch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from test_trial_helpers import REPO, checkpoint, result, train, trial_env

from ghostsweep import model
from ghostsweep.trials.runner import derive_seed

# lr 0.001: at lr 0.1, fp32 rounding alone (the batch summed as 64 + 64 instead of 128; on one rank, merely
# another thread count) grows chaotically to ~1e-2 relative within 20 iterations. At lr 0.001 it stays small.
RUN = ["--model", "resnet8", "--seed", "0", "--batch-size", "128", "--iterations", "20", "--eval-interval", "20",
       "--lr", "0.001", "--val-size", "100", "--test-size", "100"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


def flat(state: dict[str, torch.Tensor]) -> torch.Tensor:
    """All parameters (BN running statistics excluded) as one float64 vector."""
    return torch.cat([v.flatten().double() for k, v in state.items()
                      if v.is_floating_point() and "running" not in k])


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def test_two_gloo_ranks_with_sync_bn_equal_one_rank(cifar10_dir: Path, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    command = [*TORCHRUN, "-m", "ghostsweep.trials", "train", *RUN, "--sync-bn", "--data-dir", cifar10_dir,
               "--out", two]
    completed = subprocess.run(list(map(str, command)), env=trial_env(), cwd=REPO, capture_output=True,
                               text=True, timeout=400)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.count("done: ") == 1  # rank 0 alone reports (and writes files)
    assert train(*RUN, "--sync-bn", "--data-dir", cifar10_dir, "--out", one) == 0
    assert (result(one)["world_size"], result(two)["world_size"]) == (1, 2)

    torch.manual_seed(derive_seed(0, "init"))
    initial = flat(model.build("resnet8").state_dict())
    after_one, after_two = flat(checkpoint(one)["model"]), flat(checkpoint(two)["model"])
    print(f"relative difference: parameters {relative(after_two, after_one):.1e}, "
          f"updates {relative(after_two - initial, after_one - initial):.1e}")
    assert relative(after_two, after_one) < 1e-5
    # The updates agree too: a wrong gradient scale, or a rank on the wrong images, would break this.
    assert relative(after_two - initial, after_one - initial) < 1e-2
