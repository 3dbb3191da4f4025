"""Name → model registry, timm style: each family's metadata (naming, depth, options and their valid values, the
variant label, its baseline) sits beside a reference to its builder, and every model is built through `build`.

The metadata is plain Python: asking about a model (`model_info`, `variant_name`, `validate`, `complexity`) never
imports torch; `build` imports the builder's module on first use.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch.nn as nn


@dataclass(frozen=True)
class Complexity:
    """Parameters and forward multiply-accumulates (the papers' "FLOPs") for one 32×32 image."""

    params: int
    macs: int

    def __add__(self, other: Complexity) -> Complexity:
        return Complexity(self.params + other.params, self.macs + other.macs)


@dataclass(frozen=True)
class Option:
    """One builder option: its default and what it accepts (a short list of values, or a check)."""

    default: object
    choices: tuple[object, ...] = ()
    check: Callable[[object], None] | None = None  # raises a one-line ValueError for a value it rejects
    help: str = ""

    def validate(self, name: str, value: object) -> None:
        if self.choices and value not in self.choices:
            raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(map(str, self.choices))}")
        if self.check is not None:
            self.check(value)


@dataclass(frozen=True)
class Family:
    """Models named `<name><depth>`: one builder, called as `builder(depth, **options)` with every option given."""

    name: str
    builder: str  # "module:function", imported by `build` only, so that the metadata stays torch-free
    options: Mapping[str, Option]
    label: Callable[[Mapping[str, object]], list[str]]  # a variant's label after the model name, from all options
    check_depth: Callable[[int], None]  # raises a one-line ValueError for a depth the family cannot build
    named_depths: tuple[int, ...]  # the depths `available()` lists; any depth `check_depth` accepts builds
    # closed-form params and forward MACs for one 32×32 image from (depth, every option with defaults filled in),
    # so that the control plane never builds a model (tests check it against the built one)
    counts: Callable[[int, Mapping[str, object]], Complexity]
    baseline: str | None = None  # the family this one is compared against at the same depth (Ghost → ResNet)


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one model name."""

    name: str
    family: str
    depth: int
    options: Mapping[str, Option]
    baseline: str | None  # the model it is compared against: ghost_resnet56 → resnet56

    def at_depth(self, depth: int) -> str:
        """The same family's model at another depth."""
        return f"{self.family}{depth}"


_FAMILIES: dict[str, Family] = {}
_OPTIONS: dict[str, Option] = {}


def register_family(family: Family) -> None:
    """Register a family; an option shared with another family must be the same `Option` (one spec per flag)."""
    for name, option in family.options.items():
        if _OPTIONS.setdefault(name, option) is not option:
            raise ValueError(f"option {name!r} of family {family.name!r} differs from another family's")
    _FAMILIES[family.name] = family
    _parse.cache_clear()


def available() -> list[str]:
    """The listed model names, in registration order (other depths of a family build too)."""
    return [f"{family.name}{depth}" for family in _FAMILIES.values() for depth in family.named_depths]


def model_info(name: str) -> ModelInfo:
    """The one place a model name is taken apart; unknown names, names without a depth and depths the family
    cannot build fail with one line."""
    family, depth = _parse(name)
    baseline = f"{family.baseline}{depth}" if family.baseline else None
    return ModelInfo(name, family.name, depth, MappingProxyType(family.options), baseline)


@functools.cache  # a sweep of 10⁴ trials parses the same few names 10⁵ times; cleared by register_family
def _parse(name: str) -> tuple[Family, int]:
    for family in sorted(_FAMILIES.values(), key=lambda f: len(f.name), reverse=True):  # longest prefix first
        digits = name.removeprefix(family.name)
        if digits != name and digits.isascii() and digits.isdigit() and str(int(digits)) == digits:
            family.check_depth(int(digits))
            return family, int(digits)
    raise ValueError(
        f"unknown model {name!r}; valid: {', '.join(available())} (or another depth of {', '.join(_FAMILIES)})"
    )


def model_options(name: str) -> dict[str, object]:
    """The options a model accepts, with their defaults."""
    return {key: option.default for key, option in model_info(name).options.items()}


def option_choices(name: str) -> dict[str, tuple[object, ...]]:
    """The valid values of each of the model's options that takes one of a short list."""
    return {key: option.choices for key, option in model_info(name).options.items() if option.choices}


def known_options() -> dict[str, Option]:
    """Every option any family accepts, by name: the flags of `ghostsweep train`."""
    return dict(_OPTIONS)


def validate(name: str, **options: object) -> None:
    """Check a name and its options against the metadata; the first problem is one line naming the valid ones."""
    valid = model_info(name).options
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r} for model {name!r}; valid: {', '.join(valid) or 'none'}")
    for key, value in options.items():
        valid[key].validate(key, value)


def variant_name(name: str, options: Mapping[str, object]) -> str:
    """The variant seeds are grouped by: the name, then what the options change (`ghost_resnet56-conv-keep-s3d5`)."""
    family, _ = _parse(name)
    return "-".join([name, *family.label(model_options(name) | dict(options))])


def complexity(name: str, **options: object) -> Complexity:
    """Params and forward MACs of `build(name, **options)`, by arithmetic: no torch, no model built."""
    validate(name, **options)
    family, depth = _parse(name)
    return family.counts(depth, model_options(name) | options)


def build(name: str, **options: object) -> nn.Module:
    """Build a registered model; unknown names or bad options fail with one line listing the valid ones."""
    validate(name, **options)
    family, depth = _parse(name)
    module, _, function = family.builder.partition(":")
    builder = getattr(importlib.import_module(module), function)
    return builder(depth, **(model_options(name) | options))
