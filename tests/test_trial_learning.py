"""The recipe learns: ResNet-8, 400 iterations at lr 0.1 (÷ 10 at 300) on the real CIFAR-10, reaches >= 40% test
accuracy on the first 2,000 test images, and a train loss under 1.7 over its last 100 iterations.

ResNet-8 rather than ResNet-20: a third of the compute, and the same recipe, data pipeline and optimizer are what
is under test. The lr drop at 300 is the recipe's schedule compressed, and what makes the bound's margin real: at
a constant lr 0.1 test accuracy still swings by up to 8 pp between evaluations (seed 0: 26.45, 36.3, 42.65,
49.65% at iterations 100-400; seed 1: 36.7, 38.5, 46.6, 39.15%, under the bound). With the drop (two threads;
measured for issue 29; chance is 10%):

    kernels          seed   test % at iteration 100, 200, 300, 400   train loss, iterations 301-400
    AVX2             0      26.45, 36.3, 42.65, 54.6                  1.33
    AVX2             1      36.7, 38.5, 46.6, 56.35                   1.26
    non-vectorised   0      30.15, 35.3, 45.65, 53.95                 1.34

The lowest final accuracy, 53.95%, is 14 pp above the bound (the three spread over 2.4 pp), the highest loss 0.36
below its bound. Another kernel set moves the run about as much as another seed, so the test runs on this CPU's
own kernels and, where those are not AVX2's (an AVX-512 CPU), again on AVX2's (`cpu_kernels`). Evaluating every
100 iterations costs nothing here (no validation split, test set at the end only) and puts the last 100
iterations' loss in the last row.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_trial_helpers import OWN_AND_AVX2_KERNELS, metrics, result, train_learning


@pytest.mark.slow
@OWN_AND_AVX2_KERNELS
def test_resnet8_learns_in_400_iterations(kernels: str | None, cifar10_dir: Path, tmp_path: Path) -> None:
    code = train_learning(kernels, "--model", "resnet8", "--seed", "0", "--iterations", "400", "--lr", "0.1",
                          "--milestones", "300", "--val-size", "0", "--test-size", "2000", "--eval-interval", "100",
                          "--no-test-every-eval",
                          "--data-dir", cifar10_dir, "--out", tmp_path, threads=2)
    assert code == 0
    summary = result(tmp_path)
    assert summary["status"] == "done" and summary["iterations"] == 400
    assert summary["final_test_acc"] >= 40.0, summary
    assert metrics(tmp_path)[-1]["train_loss"] < 1.7
