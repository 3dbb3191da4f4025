"""Plain data (YAML/JSON) into a typed dataclass tree, by its type hints: the one checker of every config.

A trial's config, a spec's `resources` and a backend's `backend.options` are all read by `parse`, so they refuse
the same mistakes in the same words, one line naming the dotted key: `unknown key 'recipe.lrr'; valid: ...`,
`recipe.lr: must be a number, got 'fast'`, `resources.mem_gb: must be in [0.1, 4096], got 0`. A number's
bounds are declared once, on its field: `iterations: Annotated[int, POSITIVE]`. Torch-free, so a bad config is
refused before anything heavy loads.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from ghostsweep.trials.strict_yaml import shown

T = TypeVar("T")
Converter = Callable[[Any, str], Any]  # (value, its dotted key) -> the typed value, or ValueError


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
    return _converter(cls)(data, key)


def describe(hint: Any, plural: bool = False) -> str:
    """A type hint in words: `int | None` is "an integer", `list[int]` "a list of integers"."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        return describe(args[0], plural)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(arg, plural) for arg in args if arg is not type(None))
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
def _converter(hint: Any) -> Converter:
    """The check of one type hint, built once: a sweep's expansion parses 10⁵ trial configs."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _dataclass_converter(hint)
    if origin is Annotated:
        return _bounded(_converter(args[0]), [extra for extra in args[1:] if isinstance(extra, Range)])
    if origin in (typing.Union, types.UnionType):
        return _union(hint, [_converter(arg) for arg in args if arg is not type(None)], type(None) in args)
    if origin is Literal:
        return _scalar(hint, lambda value: value in args)
    if origin is list:
        return _list(hint, _converter(args[0]))
    if origin is dict:
        return _dict(hint, _converter(args[0]), _converter(args[1]), describe(args[0], plural=True))
    if hint is Any:
        return lambda value, key: value
    if hint is float:  # an integer is a number too; stored as a float, as JSON writes it back
        number = _scalar(hint, lambda value: isinstance(value, int | float) and not isinstance(value, bool))
        return lambda value, key: float(number(value, key))
    if hint is str:
        return _scalar(hint, lambda value: isinstance(value, str) and bool(value))
    if hint is bool:
        return _scalar(hint, lambda value: isinstance(value, bool))
    return _scalar(hint, lambda value: isinstance(value, hint) and not isinstance(value, bool))


def _dataclass_converter(cls: type) -> Converter:
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {f.name: _converter(hints[f.name]) for f in dataclasses.fields(cls) if f.init}
    valid = ", ".join(fields) or "none"

    def convert(value: Any, key: str) -> Any:
        if not isinstance(value, dict):
            raise ValueError(f"{key or 'config'}: must be a mapping, got {type(value).__name__}")
        prefix = f"{key}." if key else ""
        kwargs = {}
        for name, item in value.items():
            field = fields.get(name)
            if field is None:
                raise ValueError(f"unknown key {shown(f'{prefix}{name}')}; valid: {valid}")
            kwargs[name] = field(item, prefix + name)
        return cls(**kwargs)

    return convert


def _scalar(hint: Any, accepts: Callable[[Any], bool]) -> Converter:
    def convert(value: Any, key: str) -> Any:
        if not accepts(value):
            raise ValueError(f"{key}: must be {describe(hint)}, got {shown(value)}")
        return value

    return convert


def _bounded(inner: Converter, ranges: list[Range]) -> Converter:
    def convert(value: Any, key: str) -> Any:
        value = inner(value, key)
        for bounds in ranges:
            if value is not None and value not in bounds:
                raise ValueError(f"{key}: must be {bounds}, got {shown(value)}")
        return value

    return convert


def _union(hint: Any, members: list[Converter], optional: bool) -> Converter:
    """`X | None` checks as X (its errors name the inner key); `str | int` takes the first member that fits."""
    if len(members) == 1:
        return lambda value, key: None if optional and value is None else members[0](value, key)

    def convert(value: Any, key: str) -> Any:
        if optional and value is None:
            return None
        for member in members:
            try:
                return member(value, key)
            except ValueError:
                continue
        raise ValueError(f"{key}: must be {describe(hint)}, got {shown(value)}")

    return convert


def _list(hint: Any, item: Converter) -> Converter:
    def convert(value: Any, key: str) -> list[Any]:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{key}: must be {describe(hint)}, got {shown(value)}")
        return [item(element, f"{key}[{index}]") for index, element in enumerate(value)]

    return convert


def _dict(hint: Any, keys: Converter, values: Converter, keys_described: str) -> Converter:
    def convert(value: Any, key: str) -> dict[Any, Any]:
        if not isinstance(value, dict):
            raise ValueError(f"{key}: must be {describe(hint)}, got {shown(value)}")
        for name in value:
            try:
                keys(name, key)
            except ValueError:
                raise ValueError(f"{key}: keys must be {keys_described}, got {shown(name)}") from None
        return {name: values(item, f"{key}.{name}") for name, item in value.items()}

    return convert
