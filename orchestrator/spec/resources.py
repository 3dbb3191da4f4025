"""What one trial asks of a scheduler: GPUs, CPUs, memory, time, nodes (the spec's `resources`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resources:
    """What one trial needs. `trials_per_gpu = K` packs K trials onto one GPU (or one CPU slot)."""

    gpus_per_trial: int = 0
    trials_per_gpu: int = 1
    cpus_per_trial: int = 1
    mem_gb: float = 4.0
    time_limit_min: int = 240
    nodes: int = 1
