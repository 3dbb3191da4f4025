"""`ghostsweep train`: one trial from flags or a config file.

Exit codes: 0 done, 1 failed, 2 bad input (one line on stderr), 3 interrupted (requeue me).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ghostsweep.model import registry
from ghostsweep.trials.strict_yaml import load_file
from ghostsweep.trials.trialdir import ExitCode

if TYPE_CHECKING:
    from ghostsweep.trials.config import TrialConfig

HELP = "run one trial (resumes if DIR holds a checkpoint)"

# flag destination → (section, key) in the TrialConfig dict
OVERRIDES = {
    "model": (None, "model"), "seed": (None, "seed"),
    "iterations": ("recipe", "iterations"), "milestones": ("recipe", "milestones"), "lr": ("recipe", "lr"),
    "batch_size": ("recipe", "batch_size"), "weight_decay": ("recipe", "weight_decay"),
    "warmup_iterations": ("recipe", "warmup_iterations"), "eval_interval": ("recipe", "eval_interval"),
    "checkpoint_interval": ("recipe", "checkpoint_interval"), "recipe_preset": ("recipe", "preset"),
    "val_size": ("data", "val_size"), "test_size": ("data", "test_size"),
    "split_seed": ("data", "split_seed"), "test_every_eval": ("observe", "test_every_eval"),
    "normalization": ("data", "normalization"),
    "device": ("runtime", "device"), "compile": ("runtime", "compile"),
    "channels_last": ("runtime", "channels_last"), "precision": ("runtime", "precision"),
    "deterministic": ("runtime", "deterministic"), "depthwise": ("runtime", "depthwise"),
    "sync_bn": ("runtime", "sync_bn"),
    "wandb_mode": ("wandb", "mode"), "wandb_project": ("wandb", "project"),
    "wandb_entity": ("wandb", "entity"),
    "fail_at_iteration": ("faults", "fail_at_iteration"),
} | {option: ("model_options", option) for option in registry.known_options()}


def add_train_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `train` on a subparsers object; the parsed args carry `handler` (returns the exit code)."""
    from ghostsweep.trials import config as trial_config

    p = subparsers.add_parser("train", help=HELP, description="Run one seeded trial of He et al.'s CIFAR-10 recipe.",
                              usage="ghostsweep train (--model M --seed S | --config FILE) --out DIR [flags ...]")
    p.add_argument("--config", type=Path, help="TrialConfig as JSON or YAML; flags below override it")
    p.add_argument("--model", help="required unless --config names it; e.g. resnet20, ghost_resnet56")
    p.add_argument("--seed", type=int, help="the trial's seed (weights, batches); required unless --config sets it")
    p.add_argument("--out", type=Path, required=True, help="trial directory")
    p.add_argument("--data-dir", type=Path,
                   help="cifar-10-batches-py or its parent (default: $GHOSTSWEEP_DATA_DIR, then the cache)")
    p.add_argument("--download", action="store_true", default=None, help="download CIFAR-10 if absent")
    recipe = p.add_argument_group("recipe")
    recipe.add_argument("--recipe-preset", choices=list(trial_config.RECIPE_PRESETS),
                        help="start from this published recipe (default he2016; the flags below override it)")
    recipe.add_argument("--iterations", type=int, help="SGD steps (default 64000)")
    recipe.add_argument("--milestones", type=int, nargs="*", metavar="N",
                        help="iterations at which lr drops ÷10 (default 32000 48000)")
    recipe.add_argument("--lr", type=float, help="initial learning rate (default 0.1)")
    recipe.add_argument("--batch-size", type=int, help="global batch, split across ranks")
    recipe.add_argument("--weight-decay", type=float, help="default 1e-4")
    recipe.add_argument("--warmup-iterations", type=int,
                        help="iterations at lr 0.01 first (default: 400 for depth >= 110, else 0)")
    recipe.add_argument("--eval-interval", type=int, help="iterations between evaluations (default 2000)")
    recipe.add_argument("--checkpoint-interval", type=int, help="iterations between checkpoints (default 1000)")
    options = p.add_argument_group("model options", "each model takes some of these (the registry's options)")
    for name, option in registry.known_options().items():
        options.add_argument(f"--{name.replace('_', '-')}", type=type(option.default), choices=option.choices or None,
                             help=option.help)
    data = p.add_argument_group("data")
    data.add_argument("--val-size", type=int, help="0 trains on all 50k")
    data.add_argument("--split-seed", type=int, help="seed of the train/validation split (default 0)")
    data.add_argument("--test-size", type=int, help="evaluate on the first N test images (smoke runs)")
    data.add_argument("--normalization", choices=trial_config.NORMALIZATIONS,
                      help="per-pixel mean (He et al., default), per-channel standardisation, or ImageNet's")
    data.add_argument("--test-every-eval", action=argparse.BooleanOptionalAction, default=None,
                      help="test accuracy at every evaluation (default); --no-test-every-eval: only at the end")
    runtime = p.add_argument_group("runtime")
    runtime.add_argument("--device", choices=trial_config.DEVICES, help="auto (default): cuda when present")
    runtime.add_argument("--compile", choices=trial_config.COMPILE_MODES, help="torch.compile mode (default off)")
    runtime.add_argument("--channels-last", action="store_true", default=None, help="NHWC memory format")
    runtime.add_argument("--precision", choices=trial_config.PRECISIONS, help="default fp32 with TF32 off")
    runtime.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=None,
                         help="CUDA: fixed cuDNN algorithms (default); --no-deterministic lets cuDNN autotune")
    runtime.add_argument("--depthwise", choices=trial_config.DEPTHWISE_MODES,
                         help="grouped (default) or dense: run grouped convs as equivalent dense convs")
    runtime.add_argument("--sync-bn", action="store_true", default=None,
                         help="DDP: batch norm statistics over all ranks' batches")
    wandb = p.add_argument_group("wandb")
    wandb.add_argument("--wandb-mode", choices=trial_config.WANDB_MODES, help="default disabled")
    wandb.add_argument("--wandb-project", help="default ghostsweep")
    wandb.add_argument("--wandb-entity", help="default: your W&B default entity")
    p.add_argument("--fail-at-iteration", type=int, help=argparse.SUPPRESS)  # test hook
    p.set_defaults(handler=train_command)
    return p


def config_from_args(args: argparse.Namespace) -> TrialConfig:
    """The config file (if any) with the given flags laid over it; invalid values raise ValueError."""
    from ghostsweep.trials.config import TrialConfig

    data: dict[str, Any] = _read_config_file(args.config) if args.config else {}
    for dest, (section, key) in OVERRIDES.items():
        value = getattr(args, dest)
        if value is not None:
            (data.setdefault(section, {}) if section else data)[key] = value
    missing = [f"--{key}" for key in ("model", "seed") if key not in data]
    if missing:  # a trial's identity is never a silent default
        them = "them" if len(missing) > 1 else "it"
        raise ValueError(f"give {' and '.join(missing)} (or a --config that sets {them})")
    return TrialConfig.from_dict(data)


def _read_config_file(path: Path) -> dict[str, Any]:
    """JSON or YAML, through the sweep specs' strict, bounded reader."""
    data, _ = load_file(path, "config")
    if not isinstance(data, dict):
        raise ValueError(f"config {path} must hold a mapping")
    data.pop("trial_id", None)  # config.json as the runner writes it is a valid --config
    return data


def train_command(args: argparse.Namespace) -> int:
    """Ends its process's business: SIGUSR2/SIGTERM stay ignored afterwards, so that a late duplicate of the
    stop signal cannot kill an exit that reports "interrupted" (Python resets handlers to terminate at exit)."""
    try:
        config = config_from_args(args)  # before torch loads: a bad --config is refused at once, in little memory
    except ValueError as error:
        print(f"ghostsweep train: error: {error}", file=sys.stderr)
        return ExitCode.USAGE
    from ghostsweep.trials.distributed import detect  # torch loads only when a trial runs
    from ghostsweep.trials.runner import TrialInputError, run_trial
    from ghostsweep.trials.stop import ignore_late_signals, request_stop_on_signals

    stop = request_stop_on_signals()
    try:
        result = run_trial(config, args.out, args.data_dir, download=args.download, stop_event=stop)
    except (ValueError, TrialInputError) as error:  # config, model, data and directory errors
        print(f"ghostsweep train: error: {error}", file=sys.stderr)
        return ExitCode.USAGE
    finally:
        ignore_late_signals()
    if detect().is_main:
        accuracy = result.final_test_acc
        summary = f"test {accuracy:.2f}%" if accuracy is not None else result.reason
        print(f"{result.status}: {result.trial_id} {summary}", flush=True)
    return ExitCode.for_outcome(result.status)
