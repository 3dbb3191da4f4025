"""CIFAR ResNets and Ghost-ResNets, built by name: `model.build("ghost_resnet56", first_layer="ghost")`."""

from ghostsweep.model import resnet as _resnet  # noqa: F401  (registers the builders)
from ghostsweep.model.complexity import Complexity, complexity, count_macs, count_params
from ghostsweep.model.dense_grouped import DenseGroupedConv2d, densify_grouped_convs
from ghostsweep.model.ghost import GhostModule
from ghostsweep.model.registry import available, build, model_options, validate

__all__ = [
    "Complexity", "DenseGroupedConv2d", "GhostModule", "available", "build", "complexity", "count_macs",
    "count_params", "densify_grouped_convs", "model_options", "validate",
]
