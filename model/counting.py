"""Parameters and forward multiply-accumulates, counted from a built model.

Both papers' "FLOPs" are MACs of the forward pass (backward is not counted: torch's flop counter also gets it
wrong for grouped convs). The control plane uses the closed form (`registry.complexity`) instead; this counter is
what the tests check the closed form against, and what a trial records of the model it trains.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ghostsweep.model.registry import Complexity


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape: tuple[int, ...] = (1, 3, 32, 32)) -> int:
    """Forward MACs of every conv and linear layer for one image, from hooks on the built model.

    Equal to `torch.utils.flop_counter`'s forward count / 2 for every registered model (tests check it), but
    without loading torch's compiler stack, which would add a second to every `ghostsweep plan`.
    """
    macs = 0

    def count_conv(module: nn.Conv2d, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal macs
        macs += output.numel() * module.in_channels // module.groups * math.prod(module.kernel_size)

    def count_linear(module: nn.Linear, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal macs
        macs += output.numel() * module.in_features

    handles = [
        module.register_forward_hook(count_conv if isinstance(module, nn.Conv2d) else count_linear)
        for module in model.modules() if isinstance(module, nn.Conv2d | nn.Linear)
    ]
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        with torch.no_grad():
            model(torch.zeros(input_shape, device=device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return macs // input_shape[0]


def count_complexity(model: nn.Module) -> Complexity:
    return Complexity(params=count_params(model), macs=count_macs(model))
