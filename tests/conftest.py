"""Shared fixtures: where the real CIFAR-10 lives in CI (`../shared`, beside the clone)."""

from pathlib import Path

import pytest

CIFAR10_DIR = Path(__file__).resolve().parents[2] / "shared/data/cifar-10-batches-py"


@pytest.fixture(scope="session")
def cifar10_dir() -> Path:
    """The real CIFAR-10 in `cifar-10-batches-py` layout; tests that need it skip where it is absent."""
    if not (CIFAR10_DIR / "test_batch").is_file():
        pytest.skip(f"real CIFAR-10 not found at {CIFAR10_DIR} (../shared exists only beside CI clones)")
    return CIFAR10_DIR
