"""Model zoo: exact parameter/MAC counts, every variant trains, bad input fails in one line."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
import torch

from ghostsweep import model
from ghostsweep.orchestrator.cli.models import table_variants

RESNET_PARAMS = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962, 1202: 19_421_274}
GHOST_KEEP_PARAMS = {20: 140_458, 56: 442_186, 110: 894_778}
SEED_DOCUMENT_GHOST_PARAMS = {20: 140_474, 56: 442_202, 110: 894_794}


@pytest.mark.parametrize(("depth", "expected"), RESNET_PARAMS.items())
def test_resnet_params_match_he_et_al(depth: int, expected: int) -> None:
    assert model.count_params(model.build(f"resnet{depth}")) == expected


def test_resnet56_forward_macs() -> None:
    macs = model.count_macs(model.build("resnet56"))
    assert abs(macs - 125.49e6) <= 0.1e6


@pytest.mark.parametrize(("depth", "expected"), GHOST_KEEP_PARAMS.items())
def test_ghost_resnet_params(depth: int, expected: int) -> None:
    built = model.build(f"ghost_resnet{depth}", first_layer="conv", block_norm="keep", ratio=2, cheap_kernel=3)
    assert model.count_params(built) == expected
    # The seed document's table is exactly 16 higher at every depth (see docs/models.md).
    assert SEED_DOCUMENT_GHOST_PARAMS[depth] - expected == 16


def test_ghost_resnet56_fused_params() -> None:
    assert model.count_params(model.build("ghost_resnet56", block_norm="fused")) == 438_154


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
def test_ghosted_stem_saves_112_params(depth: int) -> None:
    conv = model.count_params(model.build(f"ghost_resnet{depth}", first_layer="conv"))
    ghost = model.count_params(model.build(f"ghost_resnet{depth}", first_layer="ghost"))
    assert conv - ghost == 112


def test_ghost_halves_resnet56_like_the_paper() -> None:
    plain = model.count_complexity(model.build("resnet56"))
    ghost = model.count_complexity(model.build("ghost_resnet56"))
    assert 0.50 < ghost.params / plain.params < 0.53  # paper: 0.43M / 0.85M
    assert 0.50 < ghost.macs / plain.macs < 0.53  # paper: 63M / 125M


def test_depthwise_macs_are_counted() -> None:
    """A GhostModule's cheap depthwise conv must add d·d MACs per output pixel, not be skipped."""
    module = model.GhostModule(16, 16, kernel_size=3, ratio=2, cheap_kernel=3)
    macs = model.count_macs(module, (1, 16, 32, 32))
    primary = 16 * 8 * 9 * 32 * 32
    cheap = 8 * 9 * 32 * 32
    assert macs == primary + cheap


@pytest.mark.parametrize(("name", "options"), [
    ("resnet20", {}), ("resnet20", {"shortcut": "B"}), ("ghost_resnet20", {"first_layer": "ghost"}),
    ("ghost_resnet56", {"block_norm": "fused"}), ("ghost_resnet20", {"ratio": 3, "cheap_kernel": 5}),
])
def test_macs_equal_torch_flop_counter(name: str, options: dict) -> None:
    """Our hook count must agree with torch's own forward FLOP counter (2 FLOPs per MAC)."""
    from torch.utils.flop_counter import FlopCounterMode

    built = model.build(name, **options).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        built(torch.zeros(1, 3, 32, 32))
    assert model.count_macs(built) == counter.get_total_flops() // 2


@pytest.mark.parametrize(("name", "options", "converted"), [
    ("ghost_resnet20", {}, 18), ("ghost_resnet20", {"first_layer": "ghost"}, 19),
    ("ghost_resnet20", {"ratio": 3, "cheap_kernel": 5}, 18), ("resnet20", {}, 0),
])
def test_dense_grouped_convs_compute_the_same_function(name: str, options: dict, converted: int) -> None:
    """`runtime.depthwise: dense` swaps kernels, not the model: in float64 the forward pass and every gradient
    equal the grouped model's to rounding, and the parameters, state dict, MAC count and RNG stream stay as they
    were (so checkpoints, pretrained weights and the trial's random draws are unaffected)."""
    torch.manual_seed(0)
    grouped = model.build(name, **options)
    dense = model.build(name, **options)
    dense.load_state_dict(grouped.state_dict())
    parameters = list(dense.parameters())
    rng_before = torch.random.get_rng_state()
    assert model.densify_grouped_convs(dense) == converted
    assert torch.equal(torch.random.get_rng_state(), rng_before)
    assert list(dense.parameters()) == parameters  # the same tensors: an optimizer built before still works
    assert dense.state_dict().keys() == grouped.state_dict().keys()
    assert model.count_macs(dense) == model.count_macs(grouped)
    assert sum(isinstance(m, model.DenseGroupedConv2d) for m in dense.modules()) == converted
    grouped, dense = grouped.double(), dense.double()
    images = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    for net in (grouped, dense):
        net(images).square().sum().backward()
    torch.testing.assert_close(dense(images), grouped(images), rtol=1e-12, atol=1e-12)
    for (key, a), b in zip(grouped.named_parameters(), dense.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-10, atol=1e-12, msg=key)


def test_init_follows_he_et_al() -> None:
    torch.manual_seed(0)
    built = model.build("ghost_resnet56", first_layer="ghost")
    convs = [m for m in built.modules() if isinstance(m, torch.nn.Conv2d)]
    assert any(m.groups > 1 for m in convs), "Ghost cheap convs must be initialised too"
    for conv in convs:
        fan_out = conv.out_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1]
        expected_std = (2.0 / fan_out) ** 0.5
        if conv.weight.numel() >= 1000:
            assert conv.weight.std().item() == pytest.approx(expected_std, rel=0.15)
    for bn in (m for m in built.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)


def _all_variants() -> list[tuple[str, dict]]:
    cases = [(name, options) for name in model.available() for options in table_variants(name)]
    return [*cases, ("resnet20", {"shortcut": "B"})]


@pytest.fixture
def flush_denormals() -> Iterator[None]:
    """Gradients shrink to subnormal floats through ResNet-1202's 1202 layers, which the CPU computes ~14x slower
    (67 s against 4.9 s measured for one forward/backward); this test checks shapes and that every parameter gets a
    gradient, which flushing them to zero does not change."""
    torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(False)


@pytest.mark.parametrize(("name", "options"), _all_variants(), ids=lambda v: str(v))
def test_forward_backward(name: str, options: dict, flush_denormals: None) -> None:
    built = model.build(name, **options)
    images = torch.randn(2, 3, 32, 32)
    logits = built(images)
    assert logits.shape == (2, 10)
    logits.sum().backward()
    assert all(p.grad is not None for p in built.parameters())


def test_option_b_shortcut_has_projection_params() -> None:
    plain = model.count_params(model.build("resnet20"))
    projected = model.count_params(model.build("resnet20", shortcut="B"))
    assert projected - plain == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)


def test_any_6n_plus_2_depth_builds_by_name() -> None:
    assert model.count_params(model.build("resnet8")) < model.count_params(model.build("resnet20"))


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("vgg17", {}, "VGG depth 17 is not built; valid: 11, 13, 16, 19"),
        ("resnet", {}, "unknown model 'resnet'; valid: resnet20"),
        ("resnet21", {}, "depth 21 is not 6n+2"),
        ("ghost_resnet20", {"ratio": 1}, "ratio must be >= 2, got 1"),
        ("ghost_resnet20", {"ratio": 2.5}, "ratio must be >= 2, got 2.5"),
        ("ghost_resnet20", {"cheap_kernel": 2}, "cheap_kernel must be a positive odd integer, got 2"),
        ("ghost_resnet20", {"cheap_kernel": 0}, "cheap_kernel must be a positive odd integer, got 0"),
        ("ghost_resnet20", {"first_layer": "dense"}, "unknown first_layer 'dense'; valid: conv, ghost"),
        ("ghost_resnet20", {"block_norm": "twice"}, "unknown block_norm 'twice'; valid: keep, fused"),
        ("resnet20", {"first_layer": "ghost"}, "unknown option 'first_layer' for model 'resnet20'; valid: shortcut"),
    ],
)
def test_bad_input_is_one_line_value_error(name: str, options: dict, message: str) -> None:
    with pytest.raises(ValueError) as error:
        model.build(name, **options)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_models_cli_json_and_bad_input() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ghostsweep", "models", "resnet56", "ghost_resnet56", "--format", "json"],
        capture_output=True, text=True, check=True,
    )
    import json

    rows = {(r["model"], r["first_layer"], r["block_norm"]): r for r in json.loads(done.stdout)}
    assert len(rows) == 1 + 4  # resnet56, and ghost_resnet56's four stem/BN variants
    assert rows[("resnet56", None, None)]["params"] == 853_018
    assert rows[("resnet56", None, None)]["paper_macs"] == 125e6
    assert rows[("ghost_resnet56", "conv", "keep")]["paper_params"] == 0.43e6
    for bad_args in (["--format", "yaml"], ["resnet57"]):
        bad = subprocess.run([sys.executable, "-m", "ghostsweep.orchestrator.cli", "models", *bad_args],
                             capture_output=True, text=True)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
    assert bad.stderr.startswith("ghostsweep: error: models: unknown model 'resnet57'"), bad.stderr
