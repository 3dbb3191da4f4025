"""Name → builder registry, timm style: every model is built the same way, through `build`."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from functools import cache, partial

import torch
import torch.nn as nn

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_FAMILIES: dict[str, Callable[..., nn.Module]] = {}
_FAMILY_NAME = re.compile(r"^(?P<family>[a-z_]+?)(?P<depth>\d+)$")


def register_model(name: str, builder: Callable[..., nn.Module]) -> None:
    """Register a named builder (`resnet56`, `ghost_resnet56`, ...)."""
    _BUILDERS[name] = builder


def register_family(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a depth-parameterised builder so any valid depth (`resnet26`) can be built by name."""

    def decorate(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _FAMILIES[name] = fn
        return fn

    return decorate


def available() -> list[str]:
    """Registered model names, in registration order."""
    return list(_BUILDERS)


def _resolve(name: str) -> Callable[..., nn.Module]:
    if name in _BUILDERS:
        return _BUILDERS[name]
    match = _FAMILY_NAME.match(name)
    if match and match["family"] in _FAMILIES:
        return partial(_FAMILIES[match["family"]], int(match["depth"]))
    raise ValueError(f"unknown model {name!r}; valid: {', '.join(available())} (or any <family><6n+2>)")


def model_options(name: str) -> dict[str, object]:
    """The options a model accepts, with their defaults."""
    params = inspect.signature(_resolve(name)).parameters
    return {k: p.default for k, p in params.items() if p.kind is p.KEYWORD_ONLY}


def build(name: str, **options: object) -> nn.Module:
    """Build a registered model; unknown names or options fail with one line listing the valid ones."""
    builder = _resolve(name)
    valid = model_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown option {unknown[0]!r} for model {name!r}; valid: {', '.join(valid) or 'none'}"
        )
    return builder(**options)


def validate(name: str, **options: object) -> None:
    """Check a name and options without allocating: the builders' own checks run on the meta device."""
    _validate_cached(name, tuple(sorted(options.items())))


@cache
def _validate_cached(name: str, options: tuple[tuple[str, object], ...]) -> None:
    with torch.device("meta"):
        build(name, **dict(options))
