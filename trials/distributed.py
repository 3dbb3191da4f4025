"""Which rank am I: torchrun's environment, else Slurm's, else a single process."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def detect(env: dict[str, str] | None = None) -> Distributed:
    """torchrun sets RANK/WORLD_SIZE/LOCAL_RANK; `srun` sets SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID."""
    env = dict(os.environ) if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env:
        return Distributed(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))
    if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        rank, local_rank = int(env["SLURM_PROCID"]), int(env.get("SLURM_LOCALID", 0))
        return Distributed(rank, int(env["SLURM_NTASKS"]), local_rank)
    return Distributed()


def init_process_group(info: Distributed, device: torch.device) -> bool:
    """Join the group (gloo on CPU, NCCL on GPU). Returns whether this call created it, so it also ends it."""
    if not info.enabled or dist.is_initialized():
        return False
    os.environ.setdefault("MASTER_ADDR", _slurm_first_host() or "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(29_500 + int(os.environ.get("SLURM_JOB_ID", "0")) % 10_000))
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(
        backend, init_method="env://", rank=info.rank, world_size=info.world_size,
        device_id=device if device.type == "cuda" else None,
    )
    return True


def _slurm_first_host() -> str | None:
    nodelist = os.environ.get("SLURM_JOB_NODELIST") or os.environ.get("SLURM_NODELIST")
    if not nodelist:
        return None
    try:
        command = ["scontrol", "show", "hostnames", nodelist]
        hosts = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return hosts[0] if hosts else None


def all_reduce_sum(tensor: torch.Tensor, info: Distributed) -> torch.Tensor:
    if info.enabled:
        dist.all_reduce(tensor)
    return tensor


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose backward sums the gradients over ranks (the identity without a process group)."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        if dist.is_initialized():
            dist.all_reduce(tensor)
        return tensor

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return _AllReduceSum.apply(grad)


class CpuSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d with batch statistics over all ranks, for CPU, where torch's SyncBatchNorm refuses to run.

    Two differentiable all-reduces (sum, then squared deviations) give the two-pass mean and biased variance
    of the global batch. One rank runs the same arithmetic, so 1 rank and N ranks differ only in how the
    batch sums are split.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        channels = (0, 2, 3)
        count = _AllReduceSum.apply(torch.tensor(float(x.numel() // x.shape[1]), dtype=x.dtype))
        mean = _AllReduceSum.apply(x.sum(channels)) / count
        centered = x - mean[None, :, None, None]
        var = _AllReduceSum.apply((centered * centered).sum(channels)) / count
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * count / (count - 1), self.momentum)
        scale = (self.weight * torch.rsqrt(var + self.eps))[None, :, None, None]
        return centered * scale + self.bias[None, :, None, None]


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm2d synchronised across ranks: torch's SyncBatchNorm on GPU, ours on CPU (any world)."""
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            synced = CpuSyncBatchNorm(child.num_features, child.eps, child.momentum)
            synced.load_state_dict(child.state_dict())
            setattr(module, name, synced)
        else:
            convert_sync_batchnorm(child, device)
    return module
