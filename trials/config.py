"""A trial's full configuration: one plain dataclass tree, the single source of truth for the recipe.

The defaults are He et al. 2016's CIFAR-10 recipe (§4.2); a sweep or the `train` CLI overrides fields, and
`recipe: {preset: vgg}` starts from another published recipe (`RECIPE_PRESETS`, sources in
`RECIPE_PRESET_SOURCES`) instead.
`TrialConfig.trial_id()` is the one definition of trial identity.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from ghostsweep import model
from ghostsweep.trials.strict_yaml import shown
from ghostsweep.trials.typed import NON_NEGATIVE, POSITIVE, Range, parse

Normalization = Literal["pixel_mean", "channel", "imagenet"]
Device = Literal["auto", "cpu", "cuda"]  # auto: cuda when present
CompileMode = Literal["off", "default", "cudagraphs"]
Precision = Literal["fp32", "tf32", "bf16"]
DepthwiseMode = Literal["grouped", "dense"]
WandbMode = Literal["online", "offline", "disabled"]
NORMALIZATIONS, DEVICES, COMPILE_MODES, PRECISIONS, DEPTHWISE_MODES, WANDB_MODES = map(
    typing.get_args, (Normalization, Device, CompileMode, Precision, DepthwiseMode, WandbMode))


@dataclass
class Recipe:
    """He et al.: SGD 0.9, wd 1e-4, batch 128, lr 0.1 ÷10 at 32k and 48k, stop at 64k iterations."""

    iterations: Annotated[int, POSITIVE] = 64_000
    milestones: list[int] = field(default_factory=lambda: [32_000, 48_000])  # positive, increasing: __post_init__
    lr: Annotated[float, POSITIVE] = 0.1
    lr_decay: float = 0.1
    momentum: Annotated[float, NON_NEGATIVE] = 0.9
    weight_decay: Annotated[float, NON_NEGATIVE] = 1e-4
    batch_size: Annotated[int, POSITIVE] = 128
    # None: He et al.'s 400 iterations at lr 0.01 for depth >= 110, else 0
    warmup_iterations: Annotated[int | None, NON_NEGATIVE] = None
    warmup_lr: Annotated[float, NON_NEGATIVE] = 0.01
    eval_interval: Annotated[int, POSITIVE] = 2_000
    checkpoint_interval: Annotated[int, POSITIVE] = 1_000


RECIPE_PRESET_KEY = "preset"  # `recipe: {preset: NAME, ...}`: the preset's values, the other keys laid over them
RECIPE_PRESETS: dict[str, Recipe] = {
    "he2016": Recipe(),
    # Li et al. 2017's CIFAR VGG-16 baseline as Liu et al. 2019 publish it (rethinking-network-pruning,
    # cifar/l1-norm-pruning/main.py): SGD 0.9, wd 1e-4, batch 64, lr 0.1 ÷10 at 50% and 75% of 160 epochs of the
    # 50k training images (160 × 50,000 / 64 = 125,000 iterations), no warm-up.
    "vgg": Recipe(iterations=125_000, milestones=[62_500, 93_750], batch_size=64, warmup_iterations=0,
                  eval_interval=2_500),
}
RECIPE_PRESET_SOURCES: dict[str, str] = {  # one line each: where the preset comes from
    "he2016": "He et al. 2016 §4.2, the ResNets' recipe (any model: VGG-16 gets no warm-up); GhostNet's first author "
              "says the paper used it (iamhankai/ghostnet.pytorch#13) and names no other for its VGGs",
    "vgg": "the pruning papers' VGG-16 baseline (Li et al. 2017 as Liu et al. 2019 publish it): 160 epochs at batch "
           "64; the recipe of the VGG-16 GhostNet compares with, not GhostNet's own",
}


def paper_recipe(model_name: str) -> str:
    """The preset behind a model's published numbers: He et al.'s for every family, the GhostNet VGGs included
    (`RECIPE_PRESET_SOURCES`); the published recipes, per source, are `report.references.PublishedRecipe`."""
    model.model_info(model_name)  # an unknown name still fails here
    return "he2016"


def expand_recipe_preset(recipe: dict[str, Any]) -> dict[str, Any]:
    """A recipe mapping without `preset`: the named preset's values with the mapping's other keys over them."""
    if RECIPE_PRESET_KEY not in recipe:
        return recipe
    overrides = dict(recipe)
    name = overrides.pop(RECIPE_PRESET_KEY)
    if not isinstance(name, str) or name not in RECIPE_PRESETS:
        raise ValueError(f"recipe.preset: must be one of {', '.join(RECIPE_PRESETS)}, got {shown(name)}")
    return dataclasses.asdict(RECIPE_PRESETS[name]) | overrides


@dataclass
class DataConfig:
    split_seed: int = 0
    # 0 trains on all 50k (akamaster's choice) and evaluates on test only
    val_size: Annotated[int, Range(ge=0, lt=50_000)] = 5_000
    normalization: Normalization = "pixel_mean"
    augment: bool = True
    # evaluate on the first N test images; fewer only to keep smoke runs cheap
    test_size: Annotated[int, Range(gt=0, le=10_000)] = 10_000


@dataclass
class RuntimeConfig:
    """How the trial runs. Defaults keep the recipe faithful (fp32, eager)."""

    device: Device = "auto"
    compile: CompileMode = "off"
    channels_last: bool = False
    precision: Precision = "fp32"
    deterministic: bool = True  # CUDA: fixed cuDNN algorithms (same seed → same run); false lets cuDNN autotune
    depthwise: DepthwiseMode = "grouped"  # dense: grouped convs run as block-diagonal dense convs
    sync_bn: bool = False


@dataclass
class WandbConfig:
    mode: WandbMode = "disabled"
    project: str = "ghostsweep"
    entity: str | None = None
    job_type: str = "trial"
    tags: list[str] = field(default_factory=list)
    init_timeout_s: float = 30.0
    # Written by the sweep into config.json (None outside a sweep), so that W&B groups runs by report row and
    # `report --from-wandb` rebuilds the rows in the files' order.
    sweep: str | None = None  # the sweep's name
    row: str | None = None  # the label of the trial's report row
    position: int | None = None  # the trial's place in the sweep's plan

    def run_group(self, variant: str) -> str:
        """The W&B group: the report row (`sweep/label`), or the variant for a trial outside a sweep."""
        return f"{self.sweep}/{self.row}" if self.sweep and self.row else variant


@dataclass
class ObserveConfig:
    """What a trial measures besides its result. Never changes the training, so not part of the trial's identity."""

    # Test accuracy at every evaluation (the report's best-test-epoch figure, `max_test_acc`); false evaluates the
    # test set only at the end, which makes smoke runs with frequent evaluations several times cheaper.
    test_every_eval: bool = True


@dataclass
class FaultInjection:
    """Test hooks: fail at an iteration on the first `times` attempts (0 = every attempt)."""

    fail_at_iteration: int | None = None
    times: int = 0


@dataclass
class TrialConfig:
    model: str = "resnet20"
    seed: Annotated[int, NON_NEGATIVE] = 0
    model_options: dict[str, Any] = field(default_factory=dict)
    recipe: Recipe = field(default_factory=Recipe)
    data: DataConfig = field(default_factory=DataConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)
    observe: ObserveConfig = field(default_factory=ObserveConfig)
    faults: FaultInjection = field(default_factory=FaultInjection)

    # Sections that change how a trial is observed or where it runs, never what it computes.
    NON_IDENTITY: typing.ClassVar[tuple[str, ...]] = ("wandb", "observe", "faults")

    def __post_init__(self) -> None:
        """What the fields' types and ranges cannot say (`parse` checks those): the model and its options exist,
        the milestones increase."""
        model.validate(self.model, **self.model_options)
        milestones = self.recipe.milestones
        if any(b <= a for a, b in zip(milestones, milestones[1:], strict=False)) or any(m <= 0 for m in milestones):
            raise ValueError(f"recipe.milestones: must be positive and strictly increasing, got {milestones}")

    @property
    def depth(self) -> int:
        return model.model_info(self.model).depth

    @property
    def warmup_iterations(self) -> int:
        if self.recipe.warmup_iterations is not None:
            return self.recipe.warmup_iterations
        return 400 if self.depth >= 110 else 0

    @property
    def variant(self) -> str:
        """The model variant a seed belongs to: the start of its report row and W&B group."""
        return model.variant_name(self.model, self.model_options)

    def resolved_model_options(self) -> dict[str, Any]:
        """Model options with defaults filled in, so identical models hash identically."""
        return model.model_options(self.model) | self.model_options

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)

    def identity_dict(self) -> dict[str, Any]:
        """Everything that determines the trial's result, with defaults made explicit."""
        d = {name: _plain(getattr(self, name)) for name in _field_names(TrialConfig) if name not in self.NON_IDENTITY}
        d["model_options"] = self.resolved_model_options()
        d["recipe"]["warmup_iterations"] = self.warmup_iterations
        return d

    def trial_id(self) -> str:
        """Readable prefix plus a short hash of the full identity: `ghost_resnet56-conv-keep-s3-1a2b3c4d`."""
        return _trial_id(self.variant, self.identity_dict())

    def seed_trial_ids(self, seeds: Iterable[int]) -> list[str]:
        """`trial_id()` of this config at each seed, its identity built once: a sweep's expansion hashes 10⁴ ids."""
        variant, identity = self.variant, self.identity_dict()
        return [_trial_id(variant, identity | {"seed": seed}) for seed in seeds]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialConfig:
        """Build from plain data (JSON/YAML), rejecting unknown keys, wrong types and values out of range by
        their dotted name; a recipe `preset` is expanded first."""
        if isinstance(data, dict) and isinstance(data.get("recipe"), dict):
            data = data | {"recipe": expand_recipe_preset(data["recipe"])}
        return parse(cls, data)


def _trial_id(variant: str, identity: dict[str, Any]) -> str:
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return f"{variant}-s{identity['seed']}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _plain(value: Any) -> Any:
    """`dataclasses.asdict` for this config's field types (dataclasses, lists, tuples, dicts, scalars), several
    times faster: a sweep of 10⁵ trials computes 10⁵ trial ids."""
    if type(value) in _SCALARS:
        return value
    if dataclasses.is_dataclass(value):
        return {name: _plain(getattr(value, name)) for name in _field_names(type(value))}
    if isinstance(value, list | tuple):
        return type(value)(_plain(item) for item in value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))
