"""The pieces of a trial that need no training: data, augmentation, schedule, ranks, RNG state."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ghostsweep.trials import data
from ghostsweep.trials.checkpoint import rng_states, set_rng_states
from ghostsweep.trials.config import Recipe, TrialConfig
from ghostsweep.trials.distributed import Distributed, detect
from ghostsweep.trials.runner import learning_rate


def test_augmentation_is_pad_crop_flip_per_image() -> None:
    images = torch.randn(16, 3, 32, 32)
    aug = data.Augmentation.draw(16, torch.Generator().manual_seed(0))
    out = data.augment(images, aug)
    for i in range(16):
        padded = F.pad(images[i], (4, 4, 4, 4))
        y, x = int(aug.shift_y[i]), int(aug.shift_x[i])
        expected = padded[:, y:y + 32, x:x + 32]
        torch.testing.assert_close(out[i], expected.flip(-1) if aug.flip[i] else expected, rtol=0, atol=0)
    assert aug.flip.any() and not aug.flip.all() and aug.shift_x.min() >= 0 and aug.shift_x.max() <= 8


def test_split_is_fixed_by_the_split_seed() -> None:
    train, val = data.split_indices(5_000, split_seed=0)
    assert len(train) == 45_000 and len(val) == 5_000
    assert len(set(train.tolist()) | set(val.tolist())) == 50_000
    again = data.split_indices(5_000, split_seed=0)
    assert data.split_hash(train, val) == data.split_hash(*again)
    assert data.split_hash(train, val) != data.split_hash(*data.split_indices(5_000, split_seed=1))
    everything, none = data.split_indices(0, split_seed=0)
    assert len(everything) == 50_000 and len(none) == 0


def test_normalizations_on_real_data(cifar10_dir: Path) -> None:
    cifar = data.load_cifar10(cifar10_dir)
    assert cifar.train_images.shape == (50_000, 3, 32, 32) and cifar.train_images.dtype == torch.uint8
    assert torch.bincount(cifar.test_labels).tolist() == [1_000] * 10
    channel = data.Normalizer("channel", cifar.train_images)
    published = {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2470, 0.2435, 0.2616]}  # ../shared/README.md
    assert channel.mean.flatten().tolist() == pytest.approx(published["mean"], abs=1e-4)
    assert channel.std.flatten().tolist() == pytest.approx(published["std"], abs=1e-4)
    pixel_mean = data.Normalizer("pixel_mean", cifar.train_images[:1000])
    centered = pixel_mean(cifar.train_images[:1000]).double().mean(0)
    assert centered.abs().max() < 1e-5  # every pixel of the training split averages to zero
    imagenet = data.Normalizer("imagenet", cifar.train_images[:10])
    assert imagenet(torch.full((1, 3, 1, 1), 255, dtype=torch.uint8)).flatten().tolist() == pytest.approx(
        [(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225], rel=1e-6)


def test_schedule_counts_iterations_with_he_warmup_from_depth_110() -> None:
    recipe = Recipe(milestones=[32_000, 48_000])
    shallow = TrialConfig(model="resnet56", recipe=recipe)
    deep = TrialConfig(model="resnet110", recipe=recipe)
    assert [learning_rate(shallow, i) for i in (0, 399, 31_999, 32_000, 48_000, 63_999)] == pytest.approx(
        [0.1, 0.1, 0.1, 0.01, 0.001, 0.001])
    assert [learning_rate(deep, i) for i in (0, 399, 400)] == pytest.approx([0.01, 0.01, 0.1])


def test_ranks_from_torchrun_or_slurm() -> None:
    assert detect({}) == Distributed(0, 1, 0)
    assert detect({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == Distributed(3, 4, 1)
    assert detect({"SLURM_PROCID": "1", "SLURM_NTASKS": "2", "SLURM_LOCALID": "1"}) == Distributed(1, 2, 1)
    assert detect({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}) == Distributed(0, 1, 0)  # one task: no DDP


def test_rng_states_survive_weights_only_checkpoints() -> None:
    states = rng_states()
    buffer = io.BytesIO()
    torch.save(states, buffer)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    buffer.seek(0)
    set_rng_states(torch.load(buffer, weights_only=True))
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1]) and random.random() == expected[2]
