"""CIFAR ResNets and Ghost-ResNets, built by name: `model.build("ghost_resnet56", first_layer="ghost")`.

Importing the package and asking the registry about a model, its params and MACs included (`complexity`), stay
torch-free (the orchestrator's commands plan and report without it); the layers and the hook counters below load
torch on first use.
"""

from importlib import import_module

from ghostsweep.model import families as _families  # noqa: F401  (registers the model families)
from ghostsweep.model import vgg_family as _vgg_family  # noqa: F401  (registers the VGG families)
from ghostsweep.model.registry import (
    Complexity,
    ModelInfo,
    available,
    build,
    complexity,
    model_info,
    model_options,
    option_choices,
    validate,
    variant_name,
)

_LAZY = {  # name → the submodule that defines it (and imports torch)
    "count_complexity": "counting", "count_macs": "counting", "count_params": "counting",
    "DenseGroupedConv2d": "dense_grouped", "densify_grouped_convs": "dense_grouped", "GhostModule": "ghost",
}


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)


__all__ = [
    "Complexity", "DenseGroupedConv2d", "GhostModule", "ModelInfo", "available", "build", "complexity",
    "count_complexity", "count_macs", "count_params", "densify_grouped_convs", "model_info", "model_options",
    "option_choices", "validate", "variant_name",
]
