"""Parameters and forward multiply-accumulates, counted from the built model.

Both papers' "FLOPs" are MACs. `FlopCounterMode` counts forward convs exactly (depthwise included) and
reports 2 FLOPs per MAC; its backward count is wrong for grouped convs, so only the forward is counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class Complexity:
    params: int
    macs: int


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape: tuple[int, ...] = (1, 3, 32, 32)) -> int:
    """Forward MACs for one image, with the model in eval mode so BN statistics are untouched."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(input_shape, device=device))
    model.train(was_training)
    return counter.get_total_flops() // 2 // input_shape[0]


def complexity(model: nn.Module) -> Complexity:
    return Complexity(params=count_params(model), macs=count_macs(model))
