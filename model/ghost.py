"""GhostModule as in the GhostNet authors' public code (huawei-noah/ghostnet)."""

from __future__ import annotations

import torch
import torch.nn as nn

from ghostsweep.model.arithmetic import ghost_split
from ghostsweep.model.families import check_cheap_kernel, check_ghost_ratio


class GhostModule(nn.Module):
    """A k×k primary conv makes ceil(out/s) maps; a cheap depthwise d×d conv makes the rest.

    The primary conv carries the stride. Outputs are concatenated and cut to `out_channels`,
    exactly like the authors' `GhostModule`, including its BN after each conv.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        ratio: int = 2,
        cheap_kernel: int = 3,
        stride: int = 1,
        relu: bool = True,
    ) -> None:
        super().__init__()
        check_ghost_ratio(ratio)
        check_cheap_kernel(cheap_kernel)
        self.out_channels = out_channels
        init_channels, new_channels = ghost_split(out_channels, ratio)
        self.primary_conv = nn.Sequential(
            nn.Conv2d(in_channels, init_channels, kernel_size, stride, kernel_size // 2, bias=False),
            nn.BatchNorm2d(init_channels),
            nn.ReLU(inplace=True) if relu else nn.Identity(),
        )
        self.cheap_operation = nn.Sequential(
            nn.Conv2d(init_channels, new_channels, cheap_kernel, 1, cheap_kernel // 2,
                      groups=init_channels, bias=False),
            nn.BatchNorm2d(new_channels),
            nn.ReLU(inplace=True) if relu else nn.Identity(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        primary = self.primary_conv(x)
        cheap = self.cheap_operation(primary)
        return torch.cat([primary, cheap], dim=1)[:, : self.out_channels]
