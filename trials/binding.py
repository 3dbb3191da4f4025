"""Which node and GPUs a trial was given, per rank: recorded in result.json so that a run can be checked against
what it asked for (distinct GPUs per array task, one shared GPU per pack, one GPU per DDP rank).

The scheduler's ids (SLURM_STEP_GPUS, else SLURM_JOB_GPUS) and CUDA_VISIBLE_DEVICES say what was given; `gpu` is
the one of those this rank uses (CUDA's device `local_rank` of the visible ones); the device's name and UUID say
what CUDA actually opened, and are absent where no CUDA runs (a CPU trial, or a stand-in GPU in tests).
`cpu_capability` is the ISA of the CPU kernels torch dispatches to (`torch.backends.cpu.get_cpu_capability()`:
DEFAULT, AVX2, AVX512, ...): with the torch version, the device and the world size, what a run's bitwise
reproducibility depends on.
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch-free at import: the worker records a crashed trial's node without loading torch
    import torch

    from ghostsweep.trials.distributed import Distributed

SCHEDULER_GPU_VARIABLES = ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS")


def node_name(env: dict[str, str] | None = None) -> str:
    """The scheduler's name for this node (several Slurm nodes may share one host), else the host name."""
    env = dict(os.environ) if env is None else env
    return env.get("SLURMD_NODENAME") or socket.gethostname()


def rank_binding(world: Distributed, device: torch.device, env: dict[str, str] | None = None) -> dict[str, Any]:
    """This rank's node, the GPUs the scheduler gave it, the one it uses, the CPU kernels torch runs and, on CUDA,
    that device's identity and the cuDNN version: what a run's exact floats depend on besides the code."""
    import torch

    env = dict(os.environ) if env is None else env
    scheduler_gpus = next((env[name] for name in SCHEDULER_GPU_VARIABLES if env.get(name)), None)
    visible = env.get("CUDA_VISIBLE_DEVICES")
    visible_ids = [gpu for gpu in (visible or "").split(",") if gpu]
    binding: dict[str, Any] = {
        "rank": world.rank, "local_rank": world.local_rank, "node": node_name(env),
        "scheduler_gpus": scheduler_gpus, "cuda_visible_devices": visible,
        "gpu": visible_ids[world.local_rank] if world.local_rank < len(visible_ids) else None,
        "device": str(device), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        binding |= {"device_name": properties.name, "device_uuid": str(getattr(properties, "uuid", "")) or None}
    return binding


def gather_bindings(world: Distributed, device: torch.device) -> list[dict[str, Any]]:
    """Every rank's binding, in rank order (a collective: all ranks call it at the same point)."""
    import torch.distributed as dist

    mine = rank_binding(world, device)
    if not (world.enabled and dist.is_initialized()):
        return [mine]
    everyone: list[Any] = [None] * world.world_size
    dist.all_gather_object(everyone, mine)
    return everyone
