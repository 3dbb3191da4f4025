"""ghostsweep: reproduce GhostNet's CIFAR-10 claims with seeded sweeps on one machine, Slurm or Ray.

The repository root is this package (see pyproject's `package-dir`): `ghostsweep.model` is the model zoo,
`ghostsweep.trials` one trial, `ghostsweep.orchestrator` the sweep CLI and its backends.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ghostsweep")
except PackageNotFoundError:  # a source tree imported without being installed
    __version__ = "0+unknown"
