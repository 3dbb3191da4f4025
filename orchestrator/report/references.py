"""Published numbers we check against: each source's table, kept once, with where it comes from.

Accuracies are CIFAR-10 test accuracy in percent (100 − the published error). Params/MACs are as printed
(rounded in the papers: 0.85M, 125M), so compare them with a tolerance of the printed precision; how they are
counted is `model.arithmetic.COUNT_CONVENTION`. Each number says what it is (`kind`), how many training images
and what recipe it came from as far as its source says, so that `comparability` can tell a row it is not
comparable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ghostsweep import model

CIFAR10_TRAIN_IMAGES = 50_000
CIFAR10_TEST_IMAGES = 10_000

DEFAULT_TARGET_HALFWIDTH_PP = 0.2  # two-thirds of the paper's 0.3 pp Ghost − ResNet gap: resolves it from 0


@dataclass(frozen=True)
class Source:
    key: str
    title: str
    where: str


class ReferenceKind(StrEnum):
    """What a published number is; the report judges each kind with its own method (orchestrator/report/stats.py)."""

    SINGLE_RUN = "single run"  # the final accuracy of one run
    MEAN_OF_N = "mean of n runs ± std"
    BEST_OF_N = "best of n runs"
    UNKNOWN = "unknown (treated as a single run)"


@dataclass(frozen=True)
class PublishedRecipe:
    """How a published number was trained, as far as its source says (None: not said); `comparability` checks a
    row's settings against it."""

    description: str  # the recipe in words, with where it is stated
    iterations: int | None = None
    batch_size: int | None = None
    milestones: tuple[int, ...] | None = None  # the iterations where the lr drops
    normalization: str | None = None  # `data.normalization`'s name for the source's input normalisation


@dataclass(frozen=True)
class Reference:
    source: Source
    model: str  # registry name; a Ghost reference applies to every first_layer / block_norm variant
    test_acc: float | None = None
    kind: ReferenceKind = ReferenceKind.UNKNOWN
    runs: int | None = None  # n, for MEAN_OF_N and BEST_OF_N
    test_acc_std: float | None = None
    params: float | None = None
    macs: float | None = None
    note: str = ""
    options: tuple[tuple[str, object], ...] = ()  # the model options the number is for; () for every variant
    where: str = ""  # the table or file in the source that prints it
    train_images: int | None = None  # the images it was trained on; None: the source does not say (note why)
    recipe: PublishedRecipe | None = None
    count_note: str = ""  # why our params/MACs differ from the printed ones, where they do and it is known

    def applies_to(self, options: Mapping[str, object]) -> bool:
        """Whether the number is about a model with these (resolved) options."""
        return all(options.get(key) == value for key, value in self.options)


def count_gap(reference: Reference, params: int | None, macs: int | None) -> str | None:
    """Our params/MACs beside the printed ones where they differ by more than the printed precision (one unit of
    the last printed digit), with the reason when known (`Reference.count_note`); None where they agree or are not
    known."""
    gaps = [f"{what} {ours / 1e6:.2f}M, printed {printed / 1e6:g}M"
            for what, ours, printed in (("params", params, reference.params), ("MACs", macs, reference.macs))
            if ours is not None and printed is not None and abs(ours - printed) > _printed_unit(printed)]
    if not gaps:
        return None
    return f"counts differ: ours {'; '.join(gaps)}: " + (reference.count_note or "the reason is not known")


def _printed_unit(printed: float) -> float:
    """One unit of the printed number's last digit (0.85M: 0.01M; 125M: 1M)."""
    return 1e6 * 10.0 ** -len(f"{printed / 1e6:g}".partition(".")[2])


@dataclass(frozen=True)
class Ablation:
    """A published curve: one option of a model varied, the others at their defaults. Its points are the
    `REFERENCES` of that model whose options differ from the defaults in that option alone."""

    source: Source
    model: str
    option: str
    where: str


@dataclass(frozen=True)
class ContextReference:
    """A published method we do not run (a pruned network in the paper's table): shown beside the rows of the
    model it compresses, never judged."""

    source: Source
    method: str
    base_model: str  # the registry model it compresses
    test_acc: float
    params: float | None = None
    macs: float | None = None


# Primary sources. GhostNet's table values are the paper's (arXiv:1911.11907v2, §4.1, Tables 2-4); its Ghost-VGG-16
# params/MACs at every s and d agree with our counted all-ghost model to the printed digit (tests/test_vgg.py).
GHOSTNET = Source(
    "ghostnet", "Han et al., GhostNet: More Features from Cheap Operations, CVPR 2020",
    "arXiv:1911.11907, §4.1 (CIFAR-10): Table 2 (d) and Table 3 (s) on Ghost-VGG-16, Table 4 (VGG-16, ResNet-56, "
    "their Ghost and pruned versions)",
)
HE2016 = Source(
    "he2016", "He et al., Deep Residual Learning for Image Recognition, CVPR 2016",
    "arXiv:1512.03385, §4.2 (CIFAR-10), Table 6 (test error)",
)
AKAMASTER = Source(
    "akamaster", "Idelbayev, Proper ResNet implementation for CIFAR10/CIFAR100 in PyTorch",
    "github.com/akamaster/pytorch_resnet_cifar10: README.md table ('Test err(this impl.)'), trainer.py",
)

HE2016_RECIPE = PublishedRecipe(
    "He et al. §4.2: SGD momentum 0.9, wd 1e-4, batch 128, lr 0.1 ÷10 at 32k and 48k iterations, 64k iterations "
    "(chosen on a 45k/5k split), per-pixel mean subtracted; ResNet-110 and -1202 warm up at lr 0.01",
    iterations=64_000, batch_size=128, milestones=(32_000, 48_000), normalization="pixel_mean",
)
# The first author, asked for the ResNet-56 and Ghost-ResNet-56 settings: "for a fair comparison, our paper used the
# strategy of the original ResNet paper" (iamhankai/ghostnet.pytorch#13). The paper itself states no recipe; the
# answer is about "our paper", and no other is given for the VGGs (the 400-epoch schedule of ghostnet.pytorch#7 is
# the author's advice for a higher accuracy, not the paper's), so it stands for every GhostNet row.
GHOSTNET_RECIPE = PublishedRecipe(
    "He et al.'s strategy, per GhostNet's first author (iamhankai/ghostnet.pytorch#13): batch 128, lr 0.1 ÷10 at "
    "32k and 48k, 64k iterations; the paper states none",
    iterations=64_000, batch_size=128, milestones=(32_000, 48_000),
)
# trainer.py: 200 epochs of the 50k images at batch 128, 391 iterations an epoch (the last one partial).
AKAMASTER_RECIPE = PublishedRecipe(
    "trainer.py: SGD momentum 0.9, wd 1e-4, batch 128, lr 0.1 ÷10 at epochs 100 and 150 of 200 (391 iterations "
    "an epoch: 78,200), ImageNet mean/std; ResNet-110 and -1202 start at lr 0.01",
    iterations=78_200, batch_size=128, milestones=(39_100, 58_650), normalization="imagenet",
)
_GHOSTNET_DATA = ("§4.1 names CIFAR-10's 50k training and 10k test images but not whether a validation split was "
                  "held out (asked of the authors in TingsongYu/ghostnet_cifar10#1, not answered there)")
_HE_DATA = ("§4.2: 'trained on the training set and evaluated on the test set' (50k); the 45k/5k split only chose "
            "the 64k iterations")

_HE_PARAMS = {20: 0.27e6, 32: 0.46e6, 44: 0.66e6, 56: 0.85e6, 110: 1.7e6, 1202: 19.4e6}
_HE_ERROR = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.61, 1202: 7.93}  # 110: the mean of 5 runs
_HE_BEST_110_ERROR = 6.43
_AKAMASTER_ERROR = {20: 8.27, 32: 7.37, 44: 6.90, 56: 6.61, 110: 6.32, 1202: 6.18}

_PAPER_GHOST = (("ratio", 2), ("cheap_kernel", 3))  # GhostNet's s=2, d=3
# GhostNet Table 2 (d, at s=2) and Table 3 (s, at d=3) on Ghost-VGG-16: (test %, params, MACs); s=2, d=3 is the
# Table 4 row, kept once below.
_GHOST_VGG_D = {1: (93.5, 7.6e6, 157e6), 5: (93.4, 7.7e6, 160e6), 7: (93.1, 7.7e6, 163e6)}
_GHOST_VGG_S = {3: (93.4, 5.2e6, 107e6), 4: (93.0, 4.0e6, 80e6), 5: (92.9, 3.3e6, 65e6)}

_GHOST_VGG_COUNT = ("the paper's counts are of all 13 convs ghosted (first_layer ghost), cut to the printed digit "
                    "(tests/test_vgg.py); this row's plain first conv adds the difference")


def _ghostnet(model_name: str, test_acc: float, params: float, macs: float, where: str, **fields: Any) -> Reference:
    """A GhostNet number: it does not say how many runs (unknown, judged as a single run) nor the training set."""
    return Reference(GHOSTNET, model_name, test_acc=test_acc, params=params, macs=macs, where=where,
                     train_images=None, recipe=GHOSTNET_RECIPE, **fields)


REFERENCES: tuple[Reference, ...] = (
    _ghostnet("resnet56", 93.0, 0.85e6, 125e6, "Table 4", note=_GHOSTNET_DATA),
    _ghostnet("ghost_resnet56", 92.7, 0.43e6, 63e6, "Table 4", options=_PAPER_GHOST, note=(
        "s=2, d=3; the paper does not say whether the first conv or the block BNs were ghosted/fused; "
        + _GHOSTNET_DATA), count_note=(
        "the depthwise cheap convs (2.32M MACs): without them we count 433,114 / 62.96M (first conv plain), the "
        "paper's 0.43M / 63M (or half of ResNet-56's), so its count leaves them out (model/arithmetic.py)")),
    _ghostnet("vgg16", 93.6, 15e6, 313e6, "Table 4", note=_GHOSTNET_DATA),
    _ghostnet("ghost_vgg16", 93.7, 7.7e6, 158e6, "Table 4 (also Table 2's d=3 and Table 3's s=2)",
              options=_PAPER_GHOST, note="s=2, d=3; " + _GHOSTNET_DATA, count_note=_GHOST_VGG_COUNT),
    *(_ghostnet("ghost_vgg16", acc, params, macs, "Table 2", options=(("ratio", 2), ("cheap_kernel", d)),
                note=f"d={d}; " + _GHOSTNET_DATA, count_note=_GHOST_VGG_COUNT)
      for d, (acc, params, macs) in _GHOST_VGG_D.items()),
    *(_ghostnet("ghost_vgg16", acc, params, macs, "Table 3", options=(("ratio", s), ("cheap_kernel", 3)),
                note=f"s={s}; " + _GHOSTNET_DATA, count_note=_GHOST_VGG_COUNT)
      for s, (acc, params, macs) in _GHOST_VGG_S.items()),
    # He et al. Table 6: single runs, except ResNet-110, "best (mean ± std)" over 5 runs: 6.43 (6.61 ± 0.16) %.
    *(
        Reference(HE2016, f"resnet{d}", test_acc=round(100 - _HE_ERROR[d], 2), params=_HE_PARAMS[d],
                  kind=ReferenceKind.SINGLE_RUN, where="Table 6", train_images=CIFAR10_TRAIN_IMAGES,
                  recipe=HE2016_RECIPE, note=_HE_DATA)
        for d in _HE_PARAMS if d != 110
    ),
    Reference(HE2016, "resnet110", test_acc=round(100 - _HE_ERROR[110], 2), params=_HE_PARAMS[110],
              kind=ReferenceKind.MEAN_OF_N, runs=5, test_acc_std=0.16, where="Table 6 (mean ± std of 5 runs)",
              train_images=CIFAR10_TRAIN_IMAGES, recipe=HE2016_RECIPE, note=_HE_DATA),
    Reference(HE2016, "resnet110", test_acc=round(100 - _HE_BEST_110_ERROR, 2), params=_HE_PARAMS[110],
              kind=ReferenceKind.BEST_OF_N, runs=5, where="Table 6 (best of 5 runs)",
              train_images=CIFAR10_TRAIN_IMAGES, recipe=HE2016_RECIPE, note=_HE_DATA),
    # akamaster: one run each, its final weights. trainer.py writes model.th with the weights of the last epoch
    # (best_prec1 is only a number stored beside them), and the shipped checkpoints score the README's accuracy
    # (tests/test_model_conformance.py: 91.73 / 92.63 / 93.10 / 93.39 for depths 20-56, not their best_prec1).
    *(
        Reference(AKAMASTER, f"resnet{d}", test_acc=round(100 - _AKAMASTER_ERROR[d], 2), params=_HE_PARAMS[d],
                  kind=ReferenceKind.SINGLE_RUN, where="README.md table; trainer.py",
                  train_images=CIFAR10_TRAIN_IMAGES, recipe=AKAMASTER_RECIPE,
                  note="the final weights of one run on all 50k images (no validation split), ImageNet "
                       "normalisation, 200 epochs")
        for d in _AKAMASTER_ERROR
    ),
)


ABLATION_SYMBOLS = {"ratio": "s", "cheap_kernel": "d"}  # the papers' letters for the Ghost module's options
ABLATIONS: tuple[Ablation, ...] = (
    Ablation(GHOSTNET, "ghost_vgg16", "cheap_kernel", "Table 2: the cheap kernel d at s=2"),
    Ablation(GHOSTNET, "ghost_vgg16", "ratio", "Table 3: the ratio s at d=3"),
)

# The pruning baselines of GhostNet's Table 4, as printed there ("-": not given).
CONTEXT: tuple[ContextReference, ...] = (
    ContextReference(GHOSTNET, "ℓ1-VGG-16 (Li et al. 2017)", "vgg16", 93.4, 5.4e6, 206e6),
    ContextReference(GHOSTNET, "SBP-VGG-16 (Neklyudov et al. 2017)", "vgg16", 92.5, None, 136e6),
    ContextReference(GHOSTNET, "CP-ResNet-56 (He et al. 2017)", "resnet56", 92.0, None, 63e6),
    ContextReference(GHOSTNET, "ℓ1-ResNet-56 (Li et al. 2017)", "resnet56", 92.5, 0.73e6, 91e6),
    ContextReference(GHOSTNET, "AMC-ResNet-56 (He et al. 2018)", "resnet56", 91.9, None, 63e6),
)


def references_for(model_name: str, options: Mapping[str, object] | None = None) -> list[Reference]:
    """Every published number for this registry model with these options (default: the model's defaults), in
    source order (GhostNet, He et al., akamaster)."""
    resolved = model.model_options(model_name) | dict(options or {})
    return [ref for ref in REFERENCES if ref.model == model_name and ref.applies_to(resolved)]


def published_variants(model_name: str) -> list[Reference]:
    """The numbers with params published for this model at options other than its defaults (ablation points)."""
    defaults = model.model_options(model_name)
    return [ref for ref in REFERENCES
            if ref.model == model_name and ref.params is not None and not ref.applies_to(defaults)]


def ablation_points(ablation: Ablation) -> dict[object, Reference]:
    """The published curve: option value → the number, in the order of the value."""
    defaults = model.model_options(ablation.model)
    points = {}
    for ref in REFERENCES:
        options = dict(ref.options)
        if ref.model == ablation.model and ref.source == ablation.source and ablation.option in options and all(
                value == defaults[key] for key, value in options.items() if key != ablation.option):
            points[options[ablation.option]] = ref
    return dict(sorted(points.items()))


@dataclass(frozen=True)
class AblationDifference:
    """One published difference of an ablation: the accuracy at `value` minus the accuracy at `reference_value`
    (the option's default, the paper's setting), in pp. Both are printed to 0.1, so it is known to ±0.1."""

    value: object
    reference_value: object
    published_delta: float
    reference: Reference  # the number at `value`
    baseline: Reference  # the number at `reference_value`


def ablation_differences(ablation: Ablation) -> list[AblationDifference]:
    """The paper's claims as differences (d = 1 vs 3, s = 4 vs 2, ...), in the order of the value: what a row
    pair of the ablation should reproduce, beside each point's level."""
    points = ablation_points(ablation)
    reference_value = model.model_options(ablation.model)[ablation.option]
    baseline = points[reference_value]
    return [AblationDifference(value, reference_value, round(ref.test_acc - baseline.test_acc, 1), ref, baseline)
            for value, ref in points.items() if value != reference_value]


def comparability(reference: Reference, settings: Mapping[str, Any]) -> list[str]:
    """Why a row's number is not comparable with `reference` (empty: comparable as far as the source says).

    `settings` is the row's flattened trial identity (`RowInput.settings`, `sweepdir.trial_settings`): it reads
    "data.val_size", "data.test_size", "data.normalization", "recipe.iterations", "recipe.batch_size" and
    "recipe.milestones"; a key it lacks is not checked. Only what the source states is checked."""
    reasons = []
    if reference.train_images is not None and "data.val_size" in settings:
        ours = CIFAR10_TRAIN_IMAGES - int(settings["data.val_size"])
        if ours != reference.train_images:
            reasons.append(f"trained on {ours:,} images, {reference.source.key} on {reference.train_images:,}")
    if int(settings.get("data.test_size", CIFAR10_TEST_IMAGES)) != CIFAR10_TEST_IMAGES:
        reasons.append(f"tested on {int(settings['data.test_size']):,} of the {CIFAR10_TEST_IMAGES:,} test images")
    recipe = reference.recipe
    if recipe is None:
        return reasons
    for key, published in (("recipe.iterations", recipe.iterations), ("recipe.batch_size", recipe.batch_size),
                           ("data.normalization", recipe.normalization)):
        if published is not None and key in settings and settings[key] != published:
            reasons.append(f"{key} {_shown(settings[key])}, {reference.source.key} {_shown(published)}")
    if recipe.milestones is not None and "recipe.milestones" in settings and tuple(
            settings["recipe.milestones"]) != recipe.milestones:
        reasons.append(f"lr drops at {_shown(list(settings['recipe.milestones']))}, {reference.source.key} at "
                       f"{_shown(list(recipe.milestones))}")
    return reasons


def _shown(value: object) -> str:
    if isinstance(value, list):
        return "/".join(map(_shown, value))
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
