"""The CIFAR VGG with batch norm of the pruning papers GhostNet compares with, and Ghost-VGG (GhostNet §4.1).

Called by `registry.build` with every option given and already checked; `vgg_family.py` says which VGG this is
and why, and what is valid.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

from ghostsweep.model.arithmetic import IMAGE_CHANNELS, NUM_CLASSES
from ghostsweep.model.ghost import GhostModule
from ghostsweep.model.vgg_family import CLASSIFIER_WIDTH, POOL, VGG_LAYERS

LayerFactory = Callable[[int, int], list[nn.Module]]  # (in, out) -> one 3×3, stride-1 layer with its BN and ReLU


def _plain_layer(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True)]


def _ghost_layer(in_channels: int, out_channels: int, *, ratio: int, cheap_kernel: int, fused: bool) -> list[nn.Module]:
    """keep: the module (its ReLUs off) in place of the conv, the layer's BN and ReLU after it; fused: the module
    with its own BNs and ReLUs is the whole layer."""
    module = GhostModule(in_channels, out_channels, 3, ratio, cheap_kernel, relu=fused)
    return [module] if fused else [module, nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


class CifarVGG(nn.Module):
    """Conv (or Ghost module) → BN → ReLU per layer, max-pools between blocks, a 2×2 average pool, then
    linear 512→512 → BN → ReLU → linear 512→10 (Liu et al.'s re-implementation of Li et al.'s VGG-16)."""

    def __init__(self, depth: int, make_layer: LayerFactory, make_first_layer: LayerFactory) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = IMAGE_CHANNELS
        for width in VGG_LAYERS[depth]:
            if width == POOL:
                layers.append(nn.MaxPool2d(2, 2))
                continue
            layers += (make_first_layer if in_channels == IMAGE_CHANNELS else make_layer)(in_channels, width)
            in_channels = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(in_channels, CLASSIFIER_WIDTH), nn.BatchNorm1d(CLASSIFIER_WIDTH), nn.ReLU(inplace=True),
            nn.Linear(CLASSIFIER_WIDTH, NUM_CLASSES),
        )
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(F.avg_pool2d(self.features(x), 2).flatten(1))


def _init_weights(model: nn.Module) -> None:
    """Liu et al.'s init, Ghost modules' convs and BNs included: convs N(0, 2/(k·k·out)) (Kaiming, fan_out), 2-d
    BN weight 0.5 and bias 0, linear N(0, 0.01) with bias 0; the classifier's 1-d BN keeps PyTorch's defaults.
    Skipped on the meta device, as for the ResNets (no values to set)."""
    if next(model.parameters()).is_meta:
        return
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.constant_(module.weight, 0.5)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.01)
            nn.init.zeros_(module.bias)


def cifar_vgg(depth: int) -> CifarVGG:
    """VGG-11/13/16/19 with batch norm, as the CIFAR pruning papers train it."""
    return CifarVGG(depth, _plain_layer, _plain_layer)


def ghost_vgg(depth: int, *, first_layer: str, block_norm: str, ratio: int, cheap_kernel: int) -> CifarVGG:
    """Every conv after the first becomes a GhostModule, the first too with first_layer=ghost; `vgg_family.py`
    says which choice the sources support."""
    ghost = partial(_ghost_layer, ratio=ratio, cheap_kernel=cheap_kernel, fused=block_norm == "fused")
    return CifarVGG(depth, ghost, ghost if first_layer == "ghost" else _plain_layer)
