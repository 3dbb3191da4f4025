"""The model families as metadata (no torch): names, depths, options and their valid values, variant labels.

He et al.'s CIFAR ResNets (2016, §4.2) and their Ghost versions (GhostNet, CVPR 2020, §4.1); the builders are
in `resnet.py`, their closed-form counts in `arithmetic.py`. The checks here are the only statement of what a
valid option is: `GhostModule` calls them too.
"""

from __future__ import annotations

from collections.abc import Mapping

from ghostsweep.model.arithmetic import ghost_resnet_counts, resnet_counts
from ghostsweep.model.registry import Family, Option, register_family

NAMED_DEPTHS = (20, 32, 44, 56, 110, 1202)  # He et al.'s Table 6


def check_depth(depth: int) -> None:
    """Three stages of n two-conv blocks, plus the stem and the classifier: 6n+2 layers."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth {depth!r} is not 6n+2 with n >= 1; valid: 8, 14, 20, 26, 32, ..., 56, 110, 1202")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_ghost_ratio(ratio: object) -> None:
    """s: a Ghost module's primary conv makes 1/s of the output maps."""
    if not _is_int(ratio) or ratio < 2:
        raise ValueError(f"ghost ratio must be >= 2, got {ratio!r}; valid: integers >= 2")


def check_cheap_kernel(cheap_kernel: object) -> None:
    """d: the cheap depthwise conv's kernel, odd so that padding keeps the map size."""
    if not _is_int(cheap_kernel) or cheap_kernel <= 0 or cheap_kernel % 2 == 0:
        raise ValueError(f"cheap_kernel must be a positive odd integer, got {cheap_kernel!r}; valid: 1, 3, 5, ...")


SHORTCUT = Option("A", choices=("A", "B"),
                  help="A: parameter-free zero-padding identity (He et al.'s CIFAR choice); B: 1x1 projection")
GHOST_OPTIONS = {
    "shortcut": SHORTCUT,
    "first_layer": Option("conv", choices=("conv", "ghost"),
                          help="keep the first conv plain (what GhostNet's first author says the CIFAR experiments "
                               "did) or ghost it (the paper's text)"),
    "block_norm": Option("keep", choices=("keep", "fused"),
                         help="keep: swap only the convs (BN runs twice); fused: the module's BN/ReLU replace the "
                              "layer's (one BN per map, as GhostNet's first author describes it)"),
    "ratio": Option(2, check=check_ghost_ratio, help="s: the primary conv makes 1/s of the maps"),
    "cheap_kernel": Option(3, check=check_cheap_kernel, help="d: the cheap depthwise conv's kernel size"),
}


def _shortcut_label(options: Mapping[str, object]) -> list[str]:
    return [] if options["shortcut"] == SHORTCUT.default else [f"short{options['shortcut']}"]


def _ghost_label(options: Mapping[str, object]) -> list[str]:
    """Stem and block BN always (they are what the paper leaves open); s and d only when not the paper's 2, 3."""
    ratio, cheap_kernel = options["ratio"], options["cheap_kernel"]
    paper = (ratio, cheap_kernel) == (GHOST_OPTIONS["ratio"].default, GHOST_OPTIONS["cheap_kernel"].default)
    ghost = [] if paper else [f"s{ratio}d{cheap_kernel}"]
    return [str(options["first_layer"]), str(options["block_norm"]), *ghost, *_shortcut_label(options)]


register_family(Family(
    "resnet", "ghostsweep.model.resnet:cifar_resnet", {"shortcut": SHORTCUT}, _shortcut_label, check_depth,
    NAMED_DEPTHS, resnet_counts,
))
register_family(Family(
    "ghost_resnet", "ghostsweep.model.resnet:ghost_resnet", GHOST_OPTIONS, _ghost_label, check_depth, NAMED_DEPTHS,
    ghost_resnet_counts, baseline="resnet",
))
