"""CIFAR ResNets of He et al. 2016 (§4.2) and their Ghost versions (GhostNet, CVPR 2020, §4.1).

The builders, called by `registry.build` with every option given and already checked (`families.py` says what
is valid and what the defaults are).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

from ghostsweep.model.arithmetic import STAGE_WIDTHS
from ghostsweep.model.ghost import GhostModule

ConvFactory = Callable[[int, int, int, bool], nn.Module]  # (in, out, stride, relu_inside) -> module


def _plain_conv(in_channels: int, out_channels: int, stride: int, relu_inside: bool) -> nn.Module:
    return nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)


def _ghost_conv(
    in_channels: int, out_channels: int, stride: int, relu_inside: bool, *, ratio: int, cheap_kernel: int
) -> nn.Module:
    return GhostModule(in_channels, out_channels, 3, ratio, cheap_kernel, stride, relu=relu_inside)


class PadShortcut(nn.Module):
    """Option A: parameter-free identity that subsamples and zero-pads the new channels."""

    def __init__(self, out_channels: int, in_channels: int) -> None:
        super().__init__()
        self.pad = (out_channels - in_channels) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class BasicBlock(nn.Module):
    """Two 3×3 convs with a shortcut. With `fused_norm`, the convs bring their own BN/ReLU (Ghost only)."""

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, make_conv: ConvFactory, shortcut: str,
        fused_norm: bool,
    ) -> None:
        super().__init__()
        self.conv1 = make_conv(in_channels, out_channels, stride, fused_norm)
        self.bn1 = nn.Identity() if fused_norm else nn.BatchNorm2d(out_channels)
        self.relu1 = nn.Identity() if fused_norm else nn.ReLU(inplace=True)
        self.conv2 = make_conv(out_channels, out_channels, 1, False)
        self.bn2 = nn.Identity() if fused_norm else nn.BatchNorm2d(out_channels)
        if stride == 1 and in_channels == out_channels:
            self.shortcut: nn.Module = nn.Identity()
        elif shortcut == "A":
            self.shortcut = PadShortcut(out_channels, in_channels)
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """Stem 3→16, three stages of n blocks (16/32/64 channels), global average pool, linear 64→10."""

    def __init__(
        self, depth: int, block_conv: ConvFactory, stem_conv: ConvFactory, shortcut: str,
        fused_norm: bool = False, num_classes: int = 10,
    ) -> None:
        super().__init__()
        blocks_per_stage = (depth - 2) // 6
        self.conv1 = stem_conv(3, STAGE_WIDTHS[0], 1, False)
        self.bn1 = nn.BatchNorm2d(STAGE_WIDTHS[0])
        in_channels = STAGE_WIDTHS[0]
        stages = []
        for index, width in enumerate(STAGE_WIDTHS):
            blocks = []
            for block in range(blocks_per_stage):
                stride = 2 if index > 0 and block == 0 else 1
                blocks.append(BasicBlock(in_channels, width, stride, block_conv, shortcut, fused_norm))
                in_channels = width
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.linear = nn.Linear(STAGE_WIDTHS[-1], num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def _init_weights(model: nn.Module) -> None:
    """He et al.'s init for every conv (Ghost modules included); BN starts as identity.

    Skipped on the meta device (bench/throughput.py counts MACs there): there are no values to set, and torch's
    meta `normal_` pulls in its compiler stack, a second of start-up.
    """
    if next(model.parameters()).is_meta:
        return
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def cifar_resnet(depth: int, *, shortcut: str) -> CifarResNet:
    """He et al.'s CIFAR ResNet (option A shortcuts in the paper's CIFAR experiments)."""
    return CifarResNet(depth, _plain_conv, _plain_conv, shortcut)


def ghost_resnet(
    depth: int, *, shortcut: str, first_layer: str, block_norm: str, ratio: int, cheap_kernel: int
) -> CifarResNet:
    """Every conv in the residual blocks becomes a GhostModule; `families.GHOST_OPTIONS` explains the options."""
    ghost_conv = partial(_ghost_conv, ratio=ratio, cheap_kernel=cheap_kernel)
    # Seed compatibility: builders before the registry's metadata validated the options by building this
    # module, which draws its init from the seed's `init` stream first. Every Ghost trial's weights depend on
    # that draw, so it stays: a seed gives the same model as in sweeps run before.
    GhostModule(16, 16, 3, ratio, cheap_kernel)
    stem = ghost_conv if first_layer == "ghost" else _plain_conv
    return CifarResNet(depth, ghost_conv, stem, shortcut, fused_norm=block_norm == "fused")
