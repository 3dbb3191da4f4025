"""Published numbers we check against: each source's table, kept once, with where it comes from.

Accuracies are CIFAR-10 test accuracy in percent (100 − the published error). Params/MACs are as printed
(rounded in the papers: 0.85M, 125M), so compare them with a tolerance of the printed precision.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class Source:
    key: str
    title: str
    where: str


class ReferenceKind(StrEnum):
    """What a published number is; the report judges each kind with its own method (orchestrator/stats.py)."""

    SINGLE_RUN = "single run"
    MEAN_OF_N = "mean of n runs ± std"
    BEST_OF_N = "best of n runs"
    TEST_SELECTED = "selected on the test set"  # the epoch with the best test accuracy: optimistic
    UNKNOWN = "unknown (treated as a single run)"


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


GHOSTNET = Source(
    "ghostnet", "Han et al., GhostNet: More Features from Cheap Operations, CVPR 2020",
    "§4.1, CIFAR-10 comparison table (ResNet-56 rows), arXiv:1911.11907",
)
HE2016 = Source(
    "he2016", "He et al., Deep Residual Learning for Image Recognition, CVPR 2016",
    "Table 6 (CIFAR-10 test error), arXiv:1512.03385",
)
AKAMASTER = Source(
    "akamaster", "Idelbayev, Proper ResNet implementation for CIFAR10/CIFAR100 in PyTorch",
    "github.com/akamaster/pytorch_resnet_cifar10, README table (this implementation's test error)",
)

_HE_PARAMS = {20: 0.27e6, 32: 0.46e6, 44: 0.66e6, 56: 0.85e6, 110: 1.7e6, 1202: 19.4e6}
_HE_ERROR = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.61, 1202: 7.93}  # 110: the mean of 5 runs
_HE_BEST_110_ERROR = 6.43
_AKAMASTER_ERROR = {20: 8.27, 32: 7.37, 44: 6.90, 56: 6.61, 110: 6.32, 1202: 6.18}

REFERENCES: tuple[Reference, ...] = (
    # GhostNet does not say how many runs its CIFAR-10 numbers are: unknown, judged as single runs.
    Reference(GHOSTNET, "resnet56", test_acc=93.0, params=0.85e6, macs=125e6),
    Reference(GHOSTNET, "ghost_resnet56", test_acc=92.7, params=0.43e6, macs=63e6,
              note="s=2, d=3; the paper does not say whether the stem or the block BNs were ghosted/fused"),
    # He et al. Table 6: single runs, except ResNet-110, "best (mean ± std)" over 5 runs: 6.43 (6.61 ± 0.16) %.
    *(
        Reference(HE2016, f"resnet{d}", test_acc=round(100 - _HE_ERROR[d], 2), params=_HE_PARAMS[d],
                  kind=ReferenceKind.SINGLE_RUN)
        for d in _HE_PARAMS if d != 110
    ),
    Reference(HE2016, "resnet110", test_acc=round(100 - _HE_ERROR[110], 2), params=_HE_PARAMS[110],
              kind=ReferenceKind.MEAN_OF_N, runs=5, test_acc_std=0.16),
    Reference(HE2016, "resnet110", test_acc=round(100 - _HE_BEST_110_ERROR, 2), params=_HE_PARAMS[110],
              kind=ReferenceKind.BEST_OF_N, runs=5),
    # akamaster keeps the checkpoint with the best test accuracy (`best_prec1`): one run, selected on the test set.
    *(
        Reference(AKAMASTER, f"resnet{d}", test_acc=round(100 - _AKAMASTER_ERROR[d], 2), params=_HE_PARAMS[d],
                  kind=ReferenceKind.TEST_SELECTED, note="trained on all 50k, ImageNet normalisation")
        for d in _AKAMASTER_ERROR
    ),
)


def references_for(model_name: str) -> list[Reference]:
    """Every published number for this registry model name, in source order (GhostNet, He et al., akamaster)."""
    return [ref for ref in REFERENCES if ref.model == model_name]
