"""What one trial asks of a scheduler: GPUs, CPUs, memory, time, nodes (the spec's `resources`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from ghostsweep.trials.typed import Range


@dataclass(frozen=True)
class Resources:
    """What one trial needs. `trials_per_gpu = K` packs K trials onto one GPU (or one CPU slot). The ranges are
    the spec's: any scheduler could be asked for more, none would grant it."""

    gpus_per_trial: Annotated[int, Range(ge=0, le=64)] = 0
    trials_per_gpu: Annotated[int, Range(ge=1, le=64)] = 1
    cpus_per_trial: Annotated[int, Range(ge=1, le=1024)] = 1
    mem_gb: Annotated[float, Range(ge=0.1, le=4096)] = 4.0
    time_limit_min: Annotated[int, Range(ge=1, le=525_600)] = 240
    nodes: Annotated[int, Range(ge=1, le=1024)] = 1
