"""CIFAR-10 for a trial: loaded once, validated, split, held as uint8 on the training device.

Augmentation and normalisation run on the device, per image, driven by a seeded `torch.Generator` on the CPU,
so the same seed gives the same images on any device and any number of ranks.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from ghostsweep.trials.datadir import (  # noqa: F401  (re-exported: `cifar.resolve_data_dir` is one import for trials)
    FOLDER,
    TEST_FILE,
    TRAIN_FILES,
    DataError,
    load_batch,
    missing_files,
    resolve_data_dir,
)

IMAGES_PER_FILE = 10_000
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # akamaster's Normalize
IMAGENET_STD = (0.229, 0.224, 0.225)
PAD = 4


@dataclass
class Cifar10:
    """All 60k images as uint8 NCHW tensors with int64 labels."""

    train_images: torch.Tensor  # 50000×3×32×32 uint8
    train_labels: torch.Tensor
    test_images: torch.Tensor  # 10000×3×32×32 uint8
    test_labels: torch.Tensor


def load_cifar10(folder: Path) -> Cifar10:
    """Read the python-pickle batches (no `filenames` key needed) and validate every file."""
    missing = missing_files(folder)
    if missing:
        raise DataError(f"CIFAR-10 at {folder} is incomplete: missing {', '.join(missing)}")
    train = [_load_batch(folder / name) for name in TRAIN_FILES]
    test_images, test_labels = _load_batch(folder / TEST_FILE)
    return Cifar10(
        train_images=torch.cat([images for images, _ in train]),
        train_labels=torch.cat([labels for _, labels in train]),
        test_images=test_images,
        test_labels=test_labels,
    )


def _load_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    batch = load_batch(path)
    try:
        data, labels = batch["data"], batch["labels"]
    except Exception as error:  # a list, a dict without the keys: anything
        raise DataError(f"CIFAR-10 file {path} is unreadable: {type(error).__name__}: {error}") from None
    images = torch.as_tensor(data)
    labels = torch.as_tensor(labels, dtype=torch.int64)
    if images.dtype != torch.uint8 or tuple(images.shape) != (IMAGES_PER_FILE, 3 * 32 * 32):
        raise DataError(
            f"CIFAR-10 file {path} has data {images.dtype} {tuple(images.shape)}, "
            f"expected uint8 ({IMAGES_PER_FILE}, 3072)"
        )
    if tuple(labels.shape) != (IMAGES_PER_FILE,) or labels.min() < 0 or labels.max() > 9:
        raise DataError(f"CIFAR-10 file {path} has {labels.numel()} labels or labels outside 0..9")
    return images.reshape(IMAGES_PER_FILE, 3, 32, 32), labels


def split_indices(val_size: int, split_seed: int, total: int = 50_000) -> tuple[torch.Tensor, torch.Tensor]:
    """Train/val indices of the 50k training images: a function of the split seed only, shared by a sweep."""
    order = torch.randperm(total, generator=torch.Generator().manual_seed(split_seed))
    return order[val_size:].sort().values, order[:val_size].sort().values


def split_hash(train_indices: torch.Tensor, val_indices: torch.Tensor) -> str:
    """Short digest of the split, recorded with every result so trials can be checked to share it."""
    digest = hashlib.sha256()
    for indices in (train_indices, val_indices):
        digest.update(indices.to(torch.int64).numpy().tobytes())
        digest.update(b"|")
    return digest.hexdigest()[:16]


class Normalizer:
    """uint8 images → float: scale to [0, 1], then subtract the per-pixel mean (He et al.) or standardise."""

    def __init__(self, kind: str, train_images: torch.Tensor) -> None:
        if kind == "pixel_mean":
            self.mean, self.std = _pixel_moments(train_images)[0].float(), torch.ones(1, 1, 1)
        elif kind == "channel":
            mean, mean_square = (moment.mean((1, 2)) for moment in _pixel_moments(train_images))
            self.mean = mean.float().view(3, 1, 1)
            self.std = (mean_square - mean**2).sqrt().float().view(3, 1, 1)
        elif kind == "imagenet":
            self.mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
            self.std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
        else:
            raise ValueError(f"unknown normalization {kind!r}; valid: pixel_mean, channel, imagenet")
        self.mean = self.mean.to(train_images.device)
        self.std = self.std.to(train_images.device)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return (images.float() / 255 - self.mean) / self.std


def _pixel_moments(images: torch.Tensor, chunk: int = 2_500) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel E[x] and E[x²] of images scaled to [0, 1]: exact integer sums, then float64."""
    total = torch.zeros(images.shape[1:], dtype=torch.int64, device=images.device)
    total_square = torch.zeros_like(total)
    for part in images.split(chunk):
        pixels = part.int()
        total += pixels.sum(0)
        total_square += (pixels * pixels).sum(0)
    return total.double() / (255 * len(images)), total_square.double() / (255**2 * len(images))


@dataclass
class Augmentation:
    """Per-image random translation (pad 4 + 32×32 crop) and horizontal flip, drawn on the CPU."""

    shift_y: torch.Tensor  # offsets into the padded image, 0..2*PAD
    shift_x: torch.Tensor
    flip: torch.Tensor  # bool

    @classmethod
    def draw(cls, count: int, generator: torch.Generator) -> Augmentation:
        shifts = torch.randint(0, 2 * PAD + 1, (2, count), generator=generator)
        flip = torch.randint(0, 2, (count,), generator=generator).bool()
        return cls(shifts[0], shifts[1], flip)

    def slice(self, start: int, stop: int) -> Augmentation:
        return Augmentation(self.shift_y[start:stop], self.shift_x[start:stop], self.flip[start:stop])


def augment(images: torch.Tensor, aug: Augmentation) -> torch.Tensor:
    """Zero-pad normalised images by 4 (as fb.resnet.torch did), crop each at its own offset, flip some."""
    count, size = images.shape[0], images.shape[-1]
    device = images.device
    padded = torch.nn.functional.pad(images, (PAD, PAD, PAD, PAD))
    steps = torch.arange(size, device=device)
    rows = (aug.shift_y.to(device)[:, None] + steps)[:, None, :, None]  # N×1×H×1
    cols = aug.shift_x.to(device)[:, None] + steps
    cols = torch.where(aug.flip.to(device)[:, None], cols.flip(1), cols)[:, None, None, :]  # N×1×1×W
    batch = torch.arange(count, device=device)[:, None, None, None]
    channels = torch.arange(images.shape[1], device=device)[None, :, None, None]
    return padded[batch, channels, rows, cols]
