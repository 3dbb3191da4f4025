"""`trials.typed.parse`, the one checker of trial configs, spec resources and backend options: one line per
mistake naming the dotted key, bounds declared on the field."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

import pytest

from ghostsweep.trials.typed import NON_NEGATIVE, POSITIVE, Range, parse


@dataclass
class Inner:
    rate: Annotated[float, POSITIVE] = 0.1
    share: Annotated[float, Range(ge=0, lt=1)] = 0.5


@dataclass
class Outer:
    count: Annotated[int | None, NON_NEGATIVE] = None
    mode: Literal["fast", "slow"] = "fast"
    flags: dict[str, str | int] = field(default_factory=dict)
    steps: list[int] = field(default_factory=list)
    inner: Inner = field(default_factory=Inner)


@pytest.mark.parametrize(("data", "message"), [
    ({"inner": {"rate": 0}}, "opts.inner.rate: must be > 0, got 0.0"),
    ({"inner": {"share": 1}}, "opts.inner.share: must be in [0, 1), got 1.0"),
    ({"inner": {"rate": "high"}}, "opts.inner.rate: must be a number, got 'high'"),
    ({"inner": {"rat": 1}}, "unknown key 'opts.inner.rat'; valid: rate, share"),
    ({"inner": [1]}, "opts.inner: must be a mapping, got list"),
    ({"count": -1}, "opts.count: must be >= 0, got -1"),
    ({"count": True}, "opts.count: must be an integer, got True"),
    ({"mode": "medium"}, "opts.mode: must be one of fast, slow, got 'medium'"),
    ({"flags": {"a": [1]}}, "opts.flags.a: must be a non-empty string or an integer, got [1]"),
    ({"flags": {1: "a"}}, "opts.flags: keys must be non-empty strings, got 1"),
    ({"steps": [1, "2"]}, "opts.steps[1]: must be an integer, got '2'"),
    ({"steps": 3}, "opts.steps: must be a list of integers, got 3"),
])
def test_each_mistake_is_one_line_naming_the_dotted_key(data, message):
    with pytest.raises(ValueError) as error:
        parse(Outer, data, "opts")
    assert str(error.value) == message


def test_valid_data_is_typed_and_copied():
    steps = [1, 2]
    parsed = parse(Outer, {"count": None, "flags": {"a": 1, "b": "x"}, "steps": steps, "inner": {"rate": 1}})
    assert parsed == Outer(flags={"a": 1, "b": "x"}, steps=[1, 2], inner=Inner(rate=1.0))
    assert isinstance(parsed.inner.rate, float) and parsed.steps is not steps


def test_a_root_that_is_no_mapping_is_named_config():
    with pytest.raises(ValueError, match="^config: must be a mapping, got list$"):
        parse(Outer, [])


@pytest.mark.parametrize(("bounds", "text"), [
    (Range(ge=1), ">= 1"), (Range(gt=0), "> 0"), (Range(le=5), "<= 5"), (Range(ge=0.1, le=4096), "in [0.1, 4096]"),
    (Range(gt=0, le=10), "in (0, 10]"),
])
def test_a_range_reads_as_its_error_says(bounds, text):
    assert str(bounds) == text
