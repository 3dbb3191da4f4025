"""The recipe learns: ResNet-20, 400 iterations at lr 0.1 on the real CIFAR-10, reaches >= 40% test accuracy.

An akamaster-style reference loop (PIL transforms, DataLoader, same model) reaches about 48% here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_trial_helpers import metrics, result, train


@pytest.mark.slow
def test_resnet20_learns_in_400_iterations(cifar10_dir: Path, tmp_path: Path) -> None:
    code = train("--model", "resnet20", "--iterations", "400", "--lr", "0.1", "--val-size", "0",
                 "--eval-interval", "400", "--data-dir", cifar10_dir, "--out", tmp_path)
    assert code == 0
    summary = result(tmp_path)
    assert summary["status"] == "done" and summary["iterations"] == 400
    assert summary["final_test_acc"] >= 40.0, summary
    assert metrics(tmp_path)[-1]["train_loss"] < 2.0
