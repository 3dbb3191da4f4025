"""The closed-form counts (`registry.complexity`) equal the built model's, for every registered family and option.

The grid comes from the registry: for every family, at its smallest depth, every combination of the options'
choices and every combination of the sampled values of the options checked by a function (the others at their
defaults); at its second-smallest depth, the defaults and every option off its default at once; and its named
depths up to `LARGEST_DEPTH` at the defaults. Options without choices need sample values here
(`CHECKED_OPTION_SAMPLES`); a new one without them fails `test_every_checked_option_has_samples`.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Iterator

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from ghostsweep import model
from ghostsweep.model import arithmetic, registry

CHECKED_OPTION_SAMPLES: dict[str, tuple[object, ...]] = {
    "ratio": (2, 3, 5),  # 3 and 5 do not divide 16: the concatenation is cut
    "cheap_kernel": (1, 3, 5),
}
LARGEST_DEPTH = 20  # building deeper models costs minutes on a busy 2-core machine; the blocks repeat


def _small_depths(family: registry.Family, count: int = 2) -> list[int]:
    accepted = []
    for depth in range(1, 200):
        try:
            family.check_depth(depth)
        except ValueError:
            continue
        accepted.append(depth)
        if len(accepted) == count:
            break
    return accepted


def _combinations(values: dict[str, tuple[object, ...]]) -> list[dict[str, object]]:
    return [dict(zip(values, combination, strict=True)) for combination in itertools.product(*values.values())]


def _option_grid(family: registry.Family) -> list[dict[str, object]]:
    """Every combination of the choices, then every combination of the checked options' samples."""
    chosen = {name: option.choices for name, option in family.options.items() if option.choices}
    sampled = {name: CHECKED_OPTION_SAMPLES.get(name, (option.default,))
               for name, option in family.options.items() if not option.choices}
    grid = _combinations(chosen) + [options for options in _combinations(sampled) if options]
    return [dict(options) for options in {tuple(sorted(options.items())): None for options in grid}]


def _off_default(family: registry.Family) -> dict[str, object]:
    """Every option at a value other than its default."""
    values = {name: option.choices or CHECKED_OPTION_SAMPLES.get(name, ()) for name, option in family.options.items()}
    return {name: next(v for v in values[name] if v != option.default)
            for name, option in family.options.items() if len(values[name]) > 1}


def _cases() -> Iterator[pytest.param]:
    for family in registry._FAMILIES.values():
        smallest, second = _small_depths(family)
        for options in _option_grid(family):
            label = "".join(f"-{key}={value}" for key, value in options.items())
            yield pytest.param(f"{family.name}{smallest}", options, id=f"{family.name}{smallest}{label}")
        yield pytest.param(f"{family.name}{second}", {}, id=f"{family.name}{second}")
        yield pytest.param(f"{family.name}{second}", _off_default(family), id=f"{family.name}{second}-off-default")
        for depth in family.named_depths:
            if depth <= LARGEST_DEPTH and depth not in (smallest, second):
                yield pytest.param(f"{family.name}{depth}", {}, id=f"{family.name}{depth}")


def _torch_flop_counter_macs(built: torch.nn.Module) -> int:
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        built(torch.zeros(1, 3, 32, 32))
    return counter.get_total_flops() // 2


@pytest.mark.parametrize(("name", "options"), list(_cases()))
def test_closed_form_equals_built_model(name: str, options: dict[str, object]) -> None:
    """Params as `count_params` finds them, MACs as the hook counter and torch's flop counter find them."""
    built = model.build(name, **options).eval()
    counted = model.complexity(name, **options)
    assert counted == model.Complexity(model.count_params(built), model.count_macs(built))
    assert counted.macs == _torch_flop_counter_macs(built)


def test_every_checked_option_has_samples() -> None:
    """An option without choices is only covered by the grid if this file gives it sample values."""
    checked = {name for name, option in registry.known_options().items() if not option.choices}
    assert checked <= CHECKED_OPTION_SAMPLES.keys(), f"add sample values for {checked - CHECKED_OPTION_SAMPLES.keys()}"


def test_paper_counts() -> None:
    """docs/models.md's table: He et al.'s ResNet-56 and our Ghost-ResNet-56 (GhostNet: 0.85M/125M, 0.43M/63M)."""
    assert model.complexity("resnet56") == model.Complexity(853_018, 125_485_696)
    assert model.complexity("ghost_resnet56") == model.Complexity(442_186, 65_286_784)
    assert model.complexity("ghost_resnet56", block_norm="fused").params == 438_154
    assert model.complexity("resnet1202").params == 19_421_274


def test_ghost_resnet56_against_the_papers_63m() -> None:
    """GhostNet prints 0.43M / 63M for Ghost-ResNet-56; we count 442,186 / 65.29M. The gap is the depthwise cheap
    convs (9,072 params, 2.32M MACs): the rest (stem 0.44M MACs, the 54 primary convs 62.52M, the linear layer)
    is 433,114 / 62.96M, the paper's numbers to the printed digit (arithmetic.py's docstring)."""

    def cheap_only(in_channels: int, out_channels: int, size: int) -> model.Complexity:
        primary, cheap = arithmetic.ghost_split(out_channels, 2)
        return arithmetic.conv(primary, cheap, 3, size, groups=primary)

    def no_conv(in_channels: int, out_channels: int, size: int) -> model.Complexity:
        return model.Complexity(0, 0)

    ours = model.complexity("ghost_resnet56")
    rest = arithmetic._cifar_resnet(56, no_conv, no_conv, "A")  # the BNs and the linear layer
    cheap = arithmetic._cifar_resnet(56, cheap_only, no_conv, "A")
    cheap = model.Complexity(cheap.params - rest.params, cheap.macs - rest.macs)
    assert cheap == model.Complexity(9_072, 2_322_432)
    without_cheap = model.Complexity(ours.params - cheap.params, ours.macs - cheap.macs)
    assert without_cheap == model.Complexity(433_114, 62_964_352)
    assert (round(without_cheap.params / 1e6, 2), round(without_cheap.macs / 1e6)) == (0.43, 63)
    assert (round(ours.params / 1e6, 2), round(ours.macs / 1e6)) == (0.44, 65)


@pytest.mark.parametrize(("name", "options", "message"), [
    ("resnet21", {}, r"^depth 21 is not 6n\+2"),
    ("vgg", {}, "^unknown model 'vgg'; valid: resnet20, "),
    ("ghost_resnet20", {"ratio": 1}, "^ghost ratio must be >= 2, got 1"),
    ("resnet20", {"ratio": 2}, "^unknown option 'ratio' for model 'resnet20'; valid: shortcut"),
])
def test_complexity_validates_like_build(name: str, options: dict, message: str) -> None:
    for ask in (model.complexity, model.build):
        with pytest.raises(ValueError, match=message):
            ask(name, **options)


def test_complexity_never_imports_torch() -> None:
    code = "from ghostsweep import model; print(model.complexity('ghost_resnet1202', first_layer='ghost').macs)"
    done = subprocess.run([sys.executable, "-P", "-X", "importtime", "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip().isdigit()
    assert "torch" not in done.stderr, [line for line in done.stderr.splitlines() if "torch" in line][:5]
