"""CIFAR ResNets and Ghost-ResNets, built by name: `model.build("ghost_resnet56", first_layer="ghost")`."""

from model import resnet as _resnet  # noqa: F401  (registers the builders)
from model.complexity import Complexity, complexity, count_macs, count_params
from model.dense_grouped import DenseGroupedConv2d, densify_grouped_convs
from model.ghost import GhostModule
from model.registry import available, build, model_options, validate

__all__ = [
    "Complexity", "DenseGroupedConv2d", "GhostModule", "available", "build", "complexity", "count_macs",
    "count_params", "densify_grouped_convs", "model_options", "validate",
]
