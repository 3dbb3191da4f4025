"""The CIFAR VGG families as metadata (no torch): VGG with batch norm and Ghost-VGG, and their closed-form counts.

GhostNet's CIFAR-10 table (§4.1) compares Ghost-VGG-16 with the VGG-16 of the pruning papers it cites (Li et al.,
"Pruning Filters for Efficient ConvNets", ICLR 2017: Zagoruyko's CIFAR VGG-16 with BN after every conv and after
the first linear layer, no dropout). We build the public PyTorch re-implementation of Li et al.'s CIFAR experiments
(Liu et al., "Rethinking the Value of Network Pruning", ICLR 2019, `cifar/l1-norm-pruning/models/vgg.py`):
13 bias-free 3×3 convs each followed by BN and ReLU, four max-pools, a 2×2 average pool, then
linear 512→512, BN, ReLU, linear 512→10. That gives 14,987,722 params and 313.5M MACs (GhostNet: 15M, 313M). The
builders are in `vgg.py`.

Ghost-VGG-16 takes Ghost-ResNet's `first_layer` and `block_norm`. GhostNet's first author says the CIFAR experiments
did not touch the first conv (TingsongYu/ghostnet_cifar10#1, ghostnet.pytorch#4), hence the default `conv`; but the
paper's printed Ghost-VGG-16 MACs are those of the model with all 13 convs ghosted: with `first_layer=ghost` every s
and d of Tables 2-4 is ours cut to the printed digit (158.1M → 158M ... s=5: 65.7M → 65M), while the plain first
conv gives 81.3M at s=4 and 66.6M at s=5 (printed: 80M, 65M). `block_norm` follows the author's own two answers:
"swap the convs of kuangliu's VGG for GhostModule" (Efficient-AI-Backbones#8; `keep`, the default, as for
Ghost-ResNet) and "duplicated BN and ReLU" called a bug (TingsongYu/ghostnet_cifar10#1; `fused`). BN adds no MACs,
so the counts cannot tell `keep` from `fused`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

from ghostsweep.model.arithmetic import (
    IMAGE_CHANNELS,
    IMAGE_SIZE,
    NUM_CLASSES,
    batch_norm,
    ghost_module,
    linear,
    plain_conv,
)
from ghostsweep.model.families import GHOST_OPTIONS
from ghostsweep.model.registry import Complexity, Family, register_family

POOL = "M"  # a 2×2 max-pool, stride 2
# Liu et al.'s `defaultcfg`: the conv widths in order, pools between; the last block runs at 2×2 (no fifth pool).
VGG_LAYERS: dict[int, tuple[int | str, ...]] = {
    11: (64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512),
    13: (64, 64, POOL, 128, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512),
    16: (64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL, 512, 512, 512),
    19: (64, 64, POOL, 128, 128, POOL, 256, 256, 256, 256, POOL, 512, 512, 512, 512, POOL, 512, 512, 512, 512),
}
CLASSIFIER_WIDTH = 512  # linear 512→512 + BN + ReLU before the 512→10 layer
VGG_OPTIONS = {name: GHOST_OPTIONS[name] for name in ("first_layer", "block_norm", "ratio", "cheap_kernel")}

ConvCounts = Callable[[int, int, int], Complexity]  # (in, out, output size) -> one 3×3 conv or its Ghost module


def check_depth(depth: int) -> None:
    """The depth counts the convs and the two linear layers: 11, 13, 16 or 19."""
    if depth not in VGG_LAYERS:
        raise ValueError(f"VGG depth {depth!r} is not built; valid: {', '.join(map(str, VGG_LAYERS))}")


def _vgg_counts(depth: int, layer: ConvCounts, first_layer: ConvCounts, layer_norm: bool = True) -> Complexity:
    """`vgg.CifarVGG`: each conv (or Ghost module) at its map size, the first one `first_layer`, each followed by the
    layer's BN unless `layer_norm` is off (fused Ghost modules; a plain first conv keeps its BN), then the
    classifier."""
    size, in_channels, total = IMAGE_SIZE, IMAGE_CHANNELS, Complexity(0, 0)
    for width in VGG_LAYERS[depth]:
        if width == POOL:
            size //= 2
            continue
        first = in_channels == IMAGE_CHANNELS
        total += (first_layer if first else layer)(in_channels, width, size)
        if layer_norm or (first and first_layer is plain_conv):
            total += batch_norm(width)
        in_channels = width
    return total + linear(in_channels, CLASSIFIER_WIDTH) + batch_norm(CLASSIFIER_WIDTH) + linear(
        CLASSIFIER_WIDTH, NUM_CLASSES)


def vgg_counts(depth: int, options: Mapping[str, object]) -> Complexity:
    """`vgg.cifar_vgg(depth)`."""
    return _vgg_counts(depth, plain_conv, plain_conv)


def ghost_vgg_counts(depth: int, options: Mapping[str, object]) -> Complexity:
    """`vgg.ghost_vgg(depth, **options)`: every conv a Ghost module, the first too with first_layer=ghost; with
    block_norm=fused the modules' own BNs replace the layers'."""
    ghost = partial(ghost_module, ratio=options["ratio"], cheap_kernel=options["cheap_kernel"])
    first = ghost if options["first_layer"] == "ghost" else plain_conv
    return _vgg_counts(depth, ghost, first, layer_norm=options["block_norm"] == "keep")


def _ghost_vgg_label(options: Mapping[str, object]) -> list[str]:
    """As Ghost-ResNet's: the first layer and the BN always, s and d only when not the paper's 2 and 3:
    `ghost_vgg16-conv-keep`, `ghost_vgg16-ghost-fused-s4d3`."""
    ratio, cheap_kernel = options["ratio"], options["cheap_kernel"]
    paper = (ratio, cheap_kernel) == (VGG_OPTIONS["ratio"].default, VGG_OPTIONS["cheap_kernel"].default)
    return [str(options["first_layer"]), str(options["block_norm"]), *([] if paper else [f"s{ratio}d{cheap_kernel}"])]


register_family(Family(
    "vgg", "ghostsweep.model.vgg:cifar_vgg", {}, lambda options: [], check_depth, (16,), vgg_counts,
))
register_family(Family(
    "ghost_vgg", "ghostsweep.model.vgg:ghost_vgg", VGG_OPTIONS, _ghost_vgg_label, check_depth, (16,),
    ghost_vgg_counts, baseline="vgg",
))
