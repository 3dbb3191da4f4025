"""Weights & Biases for one trial, rank 0 only. W&B is an observer: when it fails or hangs, training goes on.

`wandb.init` and `run.finish` run in daemon threads with a deadline; any error turns the logger into a no-op
with one warning. The API key is never passed, stored or printed here: wandb reads it from its environment.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

from ghostsweep.model.registry import model_info
from ghostsweep.trials.config import TrialConfig, WandbConfig

MAX_TAG_LENGTH = 64  # W&B refuses longer tags


def filter_fields(config: TrialConfig) -> dict[str, Any]:
    """Top-level config keys W&B users filter and group a project's run table by, beside the trial's nested config
    (whose `recipe.*`, `runtime.*` and `data.*` W&B shows as dotted columns already): the model's family, depth and
    resolved options (defaults included, which the nested `model_options` leaves out), the seed, the sweep and its
    report row (the run's group is `sweep/row`)."""
    options = config.resolved_model_options()
    info = model_info(config.model)
    return {
        "model": config.model, "family": info.family, "depth": info.depth, "variant": config.variant,
        "first_layer": options.get("first_layer"), "block_norm": options.get("block_norm"),
        "ratio": options.get("ratio"), "kernel": options.get("cheap_kernel"), "shortcut": options.get("shortcut"),
        "seed": config.seed, "sweep": config.wandb.sweep, "row": config.wandb.row,
    }


def run_tags(config: TrialConfig) -> list[str]:
    """The spec's tags, then `sweep:NAME` and the variant, so that the run table filters to one sweep or model with
    one click (the row is the run's group: a label can be longer than a tag may be)."""
    tags = [*config.wandb.tags, *((f"sweep:{config.wandb.sweep}",) if config.wandb.sweep else ()), config.variant]
    return [tag[:MAX_TAG_LENGTH] for tag in dict.fromkeys(tags)]


class WandbLogger:
    def __init__(
        self, settings: WandbConfig, out_dir: Path, name: str, group: str, config: dict[str, Any],
        tags: list[str], resume_id: str | None = None,
    ) -> None:
        self.run: Any = None
        self.mode = settings.mode
        if settings.mode == "disabled":
            return
        kwargs = dict(
            project=settings.project, entity=settings.entity, group=group, job_type=settings.job_type,
            tags=tags, name=name, config=config, dir=str(Path(out_dir).absolute()), mode=settings.mode,
            id=resume_id, resume="allow" if resume_id else None, reinit="create_new",
        )
        timeout_s = settings.init_timeout_s
        self.run = _call_with_deadline(lambda: _init(kwargs, timeout_s), timeout_s + 5, "wandb.init")

    @property
    def run_id(self) -> str | None:
        return self.run.id if self.run is not None else None

    @property
    def run_dir(self) -> str | None:
        """The directory `wandb sync` takes for an offline run (…/wandb/offline-run-…), absolute so that it holds
        wherever `submit` ran; None when disabled."""
        if self.run is None:
            return None
        return str(Path(self.run.dir).parent.absolute())

    def log(self, metrics: dict[str, Any], step: int) -> None:
        if self.run is None:
            return
        try:
            self.run.log(metrics, step=step)
        except Exception as error:  # noqa: BLE001  (observer must never stop training)
            self._give_up("log", error)

    def finish(self, summary: dict[str, Any], exit_code: int, timeout_s: float = 60.0) -> None:
        if self.run is None:
            return
        run = self.run

        def finish() -> None:
            run.summary.update(summary)
            run.finish(exit_code=exit_code)

        _call_with_deadline(finish, timeout_s, "wandb finish")
        self.run = None

    def _give_up(self, what: str, error: BaseException) -> None:
        _warn(f"{what} failed ({type(error).__name__}: {error}); continuing without W&B")
        self.run = None


def _init(kwargs: dict[str, Any], timeout_s: float) -> Any:
    import wandb  # imported lazily: a disabled trial never touches wandb

    return wandb.init(**kwargs, settings=wandb.Settings(init_timeout=timeout_s, silent=True))


def _call_with_deadline(fn: Any, timeout_s: float, what: str) -> Any:
    """Run `fn` in a daemon thread; its result, or None (with a warning) on error or after `timeout_s`."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as error:  # noqa: BLE001
            outcome["error"] = error

    thread = threading.Thread(target=target, name=what, daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        _warn(f"{what} did not finish within {timeout_s:.0f} s; continuing without W&B")
        return None
    if "error" in outcome:
        error = outcome["error"]
        _warn(f"{what} failed ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
              "continuing without W&B")
        return None
    return outcome.get("value")


def _warn(message: str) -> None:
    print(f"ghostsweep: warning: W&B {message}", file=sys.stderr, flush=True)
