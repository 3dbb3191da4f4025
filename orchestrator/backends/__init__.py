"""Backends by name, imported lazily so `local` never needs Slurm or Ray installed."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from ghostsweep.orchestrator.backends.base import Backend
from ghostsweep.orchestrator.spec.resources import Resources

BACKEND_MODULES = {
    "local": "ghostsweep.orchestrator.backends.local",
    "slurm": "ghostsweep.orchestrator.backends.slurm",
    "ray": "ghostsweep.orchestrator.backends.ray",
}


def get_backend(name: str, resources: Resources, options: Mapping[str, Any] | None = None) -> Backend:
    """The backend class named `name` (its `name` ClassVar), built with these resources and the spec's options
    (a ValueError naming `backend.options.KEY` when one is unknown or of the wrong type)."""
    if name not in BACKEND_MODULES:
        raise ValueError(f"unknown backend {name!r}; valid: {', '.join(BACKEND_MODULES)}")
    try:
        module = importlib.import_module(BACKEND_MODULES[name])
    except ModuleNotFoundError as error:
        raise ValueError(f"backend {name!r} is not available here: {error}") from None
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, Backend) and getattr(value, "name", None) == name:
            return value.from_spec(resources, options or {})
    raise ValueError(f"{module.__name__} defines no Backend subclass with name = {name!r}")
