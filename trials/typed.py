"""Plain data (YAML/JSON) into a typed dataclass tree, by its type hints: the one checker of every config.

A trial's config, a spec's `resources` and a backend's `backend.options` are all read by `parse`, so they refuse
the same mistakes in the same words, one line naming the dotted key: `unknown key 'recipe.lrr'; valid: ...`,
`recipe.lr: must be a number, got 'fast'`, `resources.trials_per_gpu: must be in [1, 64], got 0`. A number's
bounds are declared once, on its field: `iterations: Annotated[int, POSITIVE]`. Torch-free, so a bad config is
refused before anything heavy loads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import types
import typing
from dataclasses import dataclass
from types import NoneType
from typing import Annotated, Any, Literal, TypeVar

from ghostsweep.trials.strict_yaml import shown

T = TypeVar("T")


@dataclass(frozen=True)
class Range:
    """A number's bounds, declared on its field as `Annotated[int, Range(ge=1, le=64)]`; None passes (an
    optional field left unset). Its text is the error's: `>= 1`, `> 0`, `in [0, 50000)`."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def __contains__(self, value: float) -> bool:
        return ((self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
                and (self.le is None or value <= self.le) and (self.lt is None or value < self.lt))

    def __str__(self) -> str:
        low, high = self.ge if self.gt is None else self.gt, self.le if self.lt is None else self.lt
        if low is not None and high is not None:
            return f"in {'[' if self.gt is None else '('}{low}, {high}{']' if self.lt is None else ')'}"
        if low is not None:
            return f"{'>=' if self.gt is None else '>'} {low}"
        return f"{'<=' if self.lt is None else '<'} {high}"


POSITIVE = Range(gt=0)
NON_NEGATIVE = Range(ge=0)


def parse(cls: type[T], data: Any, key: str = "") -> T:
    """`cls` (a dataclass) built from plain data; ValueError, one line naming the dotted key under `key`
    (`resources`, `backend.options`; "" for a whole trial config), for an unknown key, a wrong type or a value
    out of its field's Range."""
    if not isinstance(data, dict):
        raise ValueError(f"{key or 'config'}: must be a mapping, got {type(data).__name__}")
    fields, prefix = _fields(cls), f"{key}." if key else ""
    kwargs = {}
    for name, value in data.items():
        if name not in fields:
            raise ValueError(f"unknown key {shown(f'{prefix}{name}')}; valid: {', '.join(fields) or 'none'}")
        kwargs[name] = _typed(fields[name], value, prefix + name)
    return cls(**kwargs)


def describe(hint: Any, plural: bool = False) -> str:
    """A type hint in words: `int | None` is "an integer", `list[int]` "a list of integers"."""
    origin, args = _shape(hint)
    if origin is Annotated:
        return describe(args[0], plural)
    if origin is typing.Union:
        return " or ".join(describe(arg, plural) for arg in args if arg is not NoneType)
    if origin is Literal:
        return f"one of {', '.join(map(str, args))}"
    if origin is list:
        return f"{'lists' if plural else 'a list'} of {describe(args[0], plural=True)}"
    if origin is dict:
        return f"{'mappings' if plural else 'a mapping'} of {describe(args[0], True)} to {describe(args[1], True)}"
    if dataclasses.is_dataclass(hint):
        return "mappings" if plural else "a mapping"
    return _WORDS.get(hint, (hint.__name__, hint.__name__))[plural]


_WORDS = {int: ("an integer", "integers"), float: ("a number", "numbers"), bool: ("true or false",) * 2,
          str: ("a non-empty string", "non-empty strings"), Any: ("anything",) * 2}


@functools.cache
def _fields(cls: type) -> dict[str, Any]:
    """A dataclass's settable fields and their hints, resolved once: a sweep's expansion parses 10⁵ configs."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


@functools.cache
def _shape(hint: Any) -> tuple[Any, tuple[Any, ...]]:
    """(origin, args) of a hint, with `X | Y` as typing.Union; cached, for the same reason as `_fields`."""
    origin = typing.get_origin(hint)
    return typing.Union if origin is types.UnionType else origin, typing.get_args(hint)


def _typed(hint: Any, value: Any, key: str) -> Any:
    """`value` checked against `hint` (copied where a list or mapping, a float where a number)."""
    if dataclasses.is_dataclass(hint):
        return parse(hint, value, key)
    origin, args = _shape(hint)
    if origin is Annotated:
        value = _typed(args[0], value, key)
        for bounds in args[1:]:
            if isinstance(bounds, Range) and value is not None and value not in bounds:
                raise ValueError(f"{key}: must be {bounds}, got {shown(value)}")
        return value
    if origin is typing.Union:
        if value is None and NoneType in args:
            return None
        members = [arg for arg in args if arg is not NoneType]
        if len(members) == 1:  # `X | None`: X's own error, naming an inner key where it has one
            return _typed(members[0], value, key)
        for member in members:
            with contextlib.suppress(ValueError):
                return _typed(member, value, key)
    elif origin is list and isinstance(value, list | tuple):
        return [_typed(args[0], item, f"{key}[{index}]") for index, item in enumerate(value)]
    elif origin is dict and isinstance(value, dict):
        for name in value:
            try:
                _typed(args[0], name, key)
            except ValueError:
                raise ValueError(f"{key}: keys must be {describe(args[0], plural=True)}, got {shown(name)}") from None
        return {name: _typed(args[1], item, f"{key}.{name}") for name, item in value.items()}
    elif hint is Any or _fits(hint, origin, args, value):
        return float(value) if hint is float else value  # JSON writes a float back as a float
    raise ValueError(f"{key}: must be {describe(hint)}, got {shown(value)}")


def _fits(hint: Any, origin: Any, args: tuple[Any, ...], value: Any) -> bool:
    """A scalar fits its hint: a string is not empty, a bool is no number, an integer is a number (a float)."""
    if origin is Literal:
        return value in args
    if hint is str:
        return isinstance(value, str) and bool(value)
    if hint is bool:
        return isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return origin is None and isinstance(value, hint) and not isinstance(value, bool)
