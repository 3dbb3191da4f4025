"""Closed-form parameters and forward MACs of the CIFAR ResNets and Ghost-ResNets, without torch.

The control plane (`plan`, `models`, the report) needs the counts of many models and options; building each
model and running it through hooks took seconds per command. These functions add up the same layers as the
builders in `resnet.py` and `ghost.py`, from the same hyper-parameters (the builders import them from here), and
`tests/test_counts.py` checks them against the built models and torch's flop counter for every family and option.

The convention (`COUNT_CONVENTION`) is the papers' "FLOPs": multiply-accumulates of the forward pass of one 32×32
image through the convs (Ghost modules' depthwise cheap convs included) and linear layers; BN, ReLU, pooling and
the shortcut's add are not counted. Params are the trainable ones (BN's running statistics are buffers).

GhostNet prints 0.43M / 63M for Ghost-ResNet-56 (s=2, d=3); we count 442,186 / 65.29M (first conv plain, block
BNs kept): stem conv 0.44M + the 54 primary 3×3 convs 62.52M + their depthwise cheap convs 2.32M + linear 640 MACs.
Without the cheap convs it is 62.96M and 433,114 params, the paper's 63M and 0.43M; half of ResNet-56's 125.49M
(62.74M) and 0.85M (0.43M) round to the same. Either way the gap is the cheap convs (`tests/test_counts.py`).
The VGG tables count them (d = 1, 3, 5, 7 gives 157, 158, 160, 163M).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

from ghostsweep.model.registry import Complexity

IMAGE_SIZE = 32  # CIFAR-10: 3×32×32 images, 10 classes
IMAGE_CHANNELS = 3
NUM_CLASSES = 10
STAGE_WIDTHS = (16, 32, 64)  # He et al. §4.2: the stem and the three stages
CONV_KERNEL = 3

ConvCounts = Callable[[int, int, int], Complexity]  # (in, out, output size) -> one 3×3 conv (or its Ghost module)

COUNT_CONVENTION = (
    "MACs (the papers' \"FLOPs\"): multiply-accumulates of one forward pass of a 32×32 image through the convs "
    "(Ghost modules' depthwise convs included) and linear layers; BN, ReLU, pooling and the shortcut's add are not "
    "counted. Params: the trainable ones (BN's running statistics excluded)."
)


def ghost_split(out_channels: int, ratio: int) -> tuple[int, int]:
    """A Ghost module's primary maps, ceil(out/s), and the cheap maps made from them, (s-1)·ceil(out/s)."""
    primary = -(-out_channels // ratio)
    return primary, primary * (ratio - 1)


def conv_output_size(size: int, stride: int) -> int:
    """A conv with odd kernel k and padding k // 2 keeps the size at stride 1 and rounds up when it strides."""
    return (size - 1) // stride + 1


def conv(in_channels: int, out_channels: int, kernel: int, output_size: int, groups: int = 1) -> Complexity:
    """A bias-free conv: every weight is used once per output position."""
    params = out_channels * (in_channels // groups) * kernel * kernel
    return Complexity(params, params * output_size * output_size)


def batch_norm(channels: int) -> Complexity:
    return Complexity(2 * channels, 0)


def linear(in_features: int, out_features: int) -> Complexity:
    return Complexity(in_features * out_features + out_features, in_features * out_features)


def plain_conv(in_channels: int, out_channels: int, output_size: int) -> Complexity:
    return conv(in_channels, out_channels, CONV_KERNEL, output_size)


def ghost_module(
    in_channels: int, out_channels: int, output_size: int, *, ratio: int, cheap_kernel: int,
    kernel: int = CONV_KERNEL,
) -> Complexity:
    """Primary k×k conv + BN, then the depthwise d×d cheap conv + BN on its maps; the cheap conv makes all of its
    maps even where the concatenation is cut to `out_channels`."""
    primary, cheap = ghost_split(out_channels, ratio)
    return (conv(in_channels, primary, kernel, output_size) + batch_norm(primary)
            + conv(primary, cheap, cheap_kernel, output_size, groups=primary) + batch_norm(cheap))


def _basic_block(
    in_channels: int, out_channels: int, stride: int, input_size: int, block_conv: ConvCounts, shortcut: str,
    fused_norm: bool,
) -> Complexity:
    """`resnet.BasicBlock`: two convs, the block's BNs unless fused, and a projection only for shortcut B."""
    size = conv_output_size(input_size, stride)
    total = block_conv(in_channels, out_channels, size) + block_conv(out_channels, out_channels, size)
    if not fused_norm:
        total += batch_norm(out_channels) + batch_norm(out_channels)
    if (stride != 1 or in_channels != out_channels) and shortcut == "B":
        total += conv(in_channels, out_channels, 1, size) + batch_norm(out_channels)
    return total


def _cifar_resnet(
    depth: int, block_conv: ConvCounts, stem_conv: ConvCounts, shortcut: str, fused_norm: bool = False,
) -> Complexity:
    """`resnet.CifarResNet`: stem conv + BN, three stages of (depth-2)/6 blocks, the first of stages 2 and 3
    striding, then global average pooling and the linear classifier."""
    size = IMAGE_SIZE
    total = stem_conv(IMAGE_CHANNELS, STAGE_WIDTHS[0], size) + batch_norm(STAGE_WIDTHS[0])
    in_channels = STAGE_WIDTHS[0]
    for index, width in enumerate(STAGE_WIDTHS):
        for block in range((depth - 2) // 6):
            stride = 2 if index > 0 and block == 0 else 1
            total += _basic_block(in_channels, width, stride, size, block_conv, shortcut, fused_norm)
            size = conv_output_size(size, stride)
            in_channels = width
    return total + linear(STAGE_WIDTHS[-1], NUM_CLASSES)


def resnet_counts(depth: int, options: Mapping[str, object]) -> Complexity:
    """`resnet.cifar_resnet(depth, **options)`."""
    return _cifar_resnet(depth, plain_conv, plain_conv, str(options["shortcut"]))


def ghost_resnet_counts(depth: int, options: Mapping[str, object]) -> Complexity:
    """`resnet.ghost_resnet(depth, **options)`: every block conv a Ghost module, the stem too with
    first_layer=ghost; with block_norm=fused the modules' own BNs replace the block's."""
    ghost = partial(ghost_module, ratio=options["ratio"], cheap_kernel=options["cheap_kernel"])
    stem = ghost if options["first_layer"] == "ghost" else plain_conv
    return _cifar_resnet(depth, ghost, stem, str(options["shortcut"]), fused_norm=options["block_norm"] == "fused")
