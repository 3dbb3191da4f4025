"""Shared fixtures: where the real CIFAR-10 lives in CI (`../shared`, beside the clone); how pytest-xdist
spreads the suite over the machine's cores."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from ghostsweep.orchestrator.backends.private import PRIVATE_DIR_ENV

CIFAR10_DIR = Path(__file__).resolve().parents[2] / "shared/data/cifar-10-batches-py"


@pytest.fixture(scope="session")
def cifar10_dir() -> Path:
    """The real CIFAR-10 in `cifar-10-batches-py` layout; tests that need it skip where it is absent."""
    if not (CIFAR10_DIR / "test_batch").is_file():
        pytest.skip(f"real CIFAR-10 not found at {CIFAR10_DIR} (../shared exists only beside CI clones)")
    return CIFAR10_DIR


@pytest.fixture(scope="session", autouse=True)
def private_backend_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The backends' private folders (orchestrator/backends/private.py) in the session's temporary folder, not
    in the home directory; the CLI in a subprocess inherits it."""
    root = tmp_path_factory.mktemp("private")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(PRIVATE_DIR_ENV, str(root))
        yield root


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook, which reads the groups into the test ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """One pytest-xdist group per test module (its module-scoped fixtures are built once), except that every Ray
    test shares one group and every other Slurm test another: Ray tests each start a local Ray, and Slurm tests
    share one cluster whose timing (time limits, requeues) they assert, so each kind runs one test at a time.
    A module that names its own group (one with a cluster of its own) keeps it."""
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        group = ("ray" if item.get_closest_marker("ray") else "slurm" if item.get_closest_marker("slurm")
                 else item.nodeid.partition("::")[0])
        item.add_marker(pytest.mark.xdist_group(group))
