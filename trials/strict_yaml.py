"""The one reader for the files users hand us (sweep specs, `train --config`): strict and bounded.

`yaml.safe_load` trusts its input's size: nine levels of aliases ("billion laughs") are 10⁹ nodes once
expanded, 10⁵ nested brackets overflow the composer's recursion, and `/dev/zero` is read until memory runs
out. Here the file is read up to a cap, then one pass over the parser's events (iterative: no recursion, and
aliases are counted, not expanded) bounds the nesting depth and the node count with every alias expanded;
only then are objects built, with YAML's plain types only (no `!!python/...` tags) and no repeated keys.
A `.json` file is read with the same cap and parsed as JSON (YAML 1.1 would take `1e-05` for a string), also
without repeated keys.
"""

from __future__ import annotations

import json
import re
import reprlib
from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 1 << 20  # 1 MiB; the shipped specs are 1-2 kB, and 1,000 seeds listed one by one add 5 kB
MAX_DEPTH = 32  # nested mappings/lists; a spec needs 5 (grids, a grid, its values, a list-valued value)
MAX_NODES = 100_000  # values, each alias counted as what it names; a spec of 10⁵ trials needs a few thousand
MAX_SHOWN_CHARS = 80  # an echoed value is cut to this, so that one error stays one short line

MERGE_TAG = "tag:yaml.org,2002:merge"

_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxlist, _SHOWN.maxtuple, _SHOWN.maxdict, _SHOWN.maxset = 3, 8, 8, 6, 8
_SHOWN.maxstring = _SHOWN.maxother = _SHOWN.maxlong = MAX_SHOWN_CHARS


def shown(value: Any) -> str:
    """`repr(value)` for an error message, at most MAX_SHOWN_CHARS long whatever the value's size."""
    text = _SHOWN.repr(value)
    return text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS - 3] + "..."


def _read_text(path: Path, what: str) -> str:
    """The file's text, refused past MAX_FILE_BYTES without reading further (a device, a huge file)."""
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise ValueError(f"cannot read {what} {shown(str(path))}: {error.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{path}: larger than {MAX_FILE_BYTES // 1024} KiB; a {what} is a short text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text (byte {error.start})") from None


def load_file(path: Path, what: str) -> tuple[Any, str]:
    """Read and parse one user file; (data, text). Every problem is a ValueError `<path>: <what is wrong>`."""
    text = _read_text(path, what)
    try:
        return (_load_json(text) if path.suffix == ".json" else load_text(text)), text
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def _load_json(text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as error:
        raise ValueError(f"invalid JSON: line {error.lineno}: {error.msg}") from None
    except RecursionError:
        raise ValueError("invalid JSON: nested too deeply") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {shown(key)}")
        seen.add(key)
    return dict(pairs)


def load_text(text: str) -> Any:
    """Parse YAML (or JSON) text within the bounds above; a ValueError says where and what."""
    try:
        _check_bounds(text)
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506  (a SafeLoader)
    except yaml.constructor.ConstructorError as error:
        if error.problem and "tag" in error.problem:
            raise ValueError(f"{_line(error)}YAML tags such as {_tag(error)} are not allowed") from None
        raise ValueError(f"{_line(error)}{_one_line(error.problem or str(error))}") from None
    except yaml.YAMLError as error:
        raise ValueError(f"invalid YAML: {_one_line(str(error))}") from None


class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's parser when installed
    """`yaml.safe_load` semantics, except that a repeated mapping key is an error instead of last-one-wins."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:  # `<<: *defaults` brings keys that the mapping's own may override
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                repeated = key in seen
            except TypeError:
                raise ValueError(f"line {key_node.start_mark.line + 1}: a key must be a plain value") from None
            if repeated:
                raise ValueError(f"line {key_node.start_mark.line + 1}: duplicate key {shown(key)}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _check_bounds(text: str) -> None:
    """Nesting depth and the alias-expanded node count, from the event stream alone."""
    open_sizes: list[int] = []  # per open collection: nodes inside it so far (itself included)
    anchored: dict[str, int] = {}  # anchor → size of the node it names
    anchors_open: list[str | None] = []
    total = 0
    for event in yaml.parse(text, Loader=_StrictLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            if len(open_sizes) >= MAX_DEPTH:
                raise ValueError(f"line {event.start_mark.line + 1}: nested deeper than {MAX_DEPTH} levels")
            open_sizes.append(1)
            anchors_open.append(event.anchor)
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            size, anchor = open_sizes.pop(), anchors_open.pop()
        elif isinstance(event, yaml.ScalarEvent):
            size, anchor = 1, event.anchor
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor in anchors_open:
                raise ValueError(f"line {event.start_mark.line + 1}: alias *{shown(event.anchor)[1:-1]} is "
                                 f"inside the value it names")
            size, anchor = anchored.get(event.anchor, 1), None
        else:
            continue
        if anchor is not None:
            anchored[anchor] = size
        if open_sizes:
            open_sizes[-1] += size
        else:
            total += size
        if total + sum(open_sizes) > MAX_NODES:
            raise ValueError(f"line {event.start_mark.line + 1}: more than {MAX_NODES:,} values (a YAML alias "
                             f"*name counts the values it names again)")


def _line(error: yaml.MarkedYAMLError) -> str:
    return f"line {error.problem_mark.line + 1}: " if error.problem_mark else ""


def _tag(error: yaml.constructor.ConstructorError) -> str:
    match = re.search(r"tag '([^']+)'", error.problem or "")
    return shown(match[1]) if match else "this one"


def _one_line(message: str) -> str:
    """A parser message on one line, cut short: it may quote the offending text."""
    text = " ".join(message.replace(' in "<unicode string>",', " at").split())
    return text if len(text) <= 300 else text[:297] + "..."
