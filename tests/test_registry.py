"""The model registry's metadata: names, depths, options and variant labels come from it alone, without torch."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest
from test_trial_helpers import train

from ghostsweep import model
from ghostsweep.model import registry
from ghostsweep.orchestrator.cli.models import table_variants
from ghostsweep.orchestrator.report.references import REFERENCES
from ghostsweep.orchestrator.spec.sweepspec import parse_spec
from ghostsweep.trials import cli as train_cli
from ghostsweep.trials.config import TrialConfig

# Trial ids name existing sweep directories: they must never change. (config, trial id)
PINNED_TRIAL_IDS = [
    ({"model": "resnet8"}, "resnet8-s0-a570605c"),
    ({"model": "resnet20"}, "resnet20-s0-52babbaa"),
    ({"model": "resnet56", "seed": 3, "model_options": {"shortcut": "B"}}, "resnet56-shortB-s3-06fa4cff"),
    ({"model": "resnet110"}, "resnet110-s0-6d043e0f"),
    ({"model": "resnet1202"}, "resnet1202-s0-0750b905"),
    ({"model": "resnet56", "recipe": {"iterations": 1000, "warmup_iterations": 5}}, "resnet56-s0-b4fb86df"),
    ({"model": "ghost_resnet8"}, "ghost_resnet8-conv-keep-s0-ca27b39e"),
    ({"model": "ghost_resnet56"}, "ghost_resnet56-conv-keep-s0-35c82ad5"),
    ({"model": "ghost_resnet110", "seed": 3, "model_options": {"shortcut": "B"}},
     "ghost_resnet110-conv-keep-shortB-s3-13c5e7b4"),
    ({"model": "ghost_resnet56", "seed": 1, "model_options": {"first_layer": "ghost"}},
     "ghost_resnet56-ghost-keep-s1-1938dc43"),
    ({"model": "ghost_resnet56", "seed": 1, "model_options": {"block_norm": "fused"}},
     "ghost_resnet56-conv-fused-s1-1c0c6f13"),
    ({"model": "ghost_resnet56", "seed": 1, "model_options": {"ratio": 3, "cheap_kernel": 5}},
     "ghost_resnet56-conv-keep-s3d5-s1-5509b9f2"),
    ({"model": "ghost_resnet56", "seed": 1, "model_options": {"ratio": 4}},
     "ghost_resnet56-conv-keep-s4d3-s1-720bfd72"),
    ({"model": "ghost_resnet56", "seed": 1,
      "model_options": {"first_layer": "ghost", "block_norm": "fused", "shortcut": "B", "ratio": 3}},
     "ghost_resnet56-ghost-fused-s3d3-shortB-s1-e0aacb06"),
    ({"model": "ghost_resnet56", "seed": 1,
      "model_options": {"first_layer": "conv", "block_norm": "keep", "ratio": 2, "cheap_kernel": 3}},
     "ghost_resnet56-conv-keep-s1-577abb08"),
]
BAD_NAMES = ["foo", "resnet", "ghost_resnet", "vgg", "ghost_vgg", "", "Resnet20", "resnet056", "resnet20x", "resnet 20",
             "resnet\u0662\u0660"]


@pytest.mark.parametrize(("config", "trial_id"), PINNED_TRIAL_IDS, ids=[t for _, t in PINNED_TRIAL_IDS])
def test_trial_ids_and_variants_are_pinned(config: dict, trial_id: str) -> None:
    trial = TrialConfig.from_dict(config)
    assert trial.trial_id() == trial_id
    assert trial.variant == trial_id.rsplit("-", 2)[0] == registry.variant_name(trial.model, trial.model_options)


def test_metadata_import_is_torch_free() -> None:
    """Specs, plans and reports ask the registry, params and MACs included; none of that may load torch (only
    `build` does)."""
    code = ("from ghostsweep.model.registry import model_info; model_info('ghost_resnet56'); "
            "from ghostsweep import model; model.complexity('ghost_resnet56', first_layer='ghost'); "
            "from ghostsweep.trials.config import TrialConfig; TrialConfig(model='ghost_resnet56').trial_id()")
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                          check=True)
    assert "torch" not in done.stderr, [line for line in done.stderr.splitlines() if "torch" in line][:5]


@pytest.mark.parametrize("name", model.available())
def test_every_listed_model_has_metadata(name: str) -> None:
    info = model.model_info(name)
    assert info.name == name == info.at_depth(info.depth) == f"{info.family}{info.depth}"
    baseline = {"ghost_resnet": "resnet", "ghost_vgg": "vgg"}.get(info.family)
    assert info.baseline == (f"{baseline}{info.depth}" if baseline else None)
    defaults = model.model_options(name)
    assert defaults.keys() == info.options.keys() and ("shortcut" in defaults) == ("resnet" in info.family)
    model.validate(name, **defaults)
    assert registry.variant_name(name, {}) == registry.variant_name(name, defaults)


@pytest.mark.parametrize(("name", "family", "depth", "baseline"), [
    ("resnet8", "resnet", 8, None), ("resnet26", "resnet", 26, None), ("resnet1202", "resnet", 1202, None),
    ("ghost_resnet14", "ghost_resnet", 14, "resnet14"), ("ghost_resnet56", "ghost_resnet", 56, "resnet56"),
])
def test_any_6n_plus_2_depth_has_metadata(name: str, family: str, depth: int, baseline: str | None) -> None:
    info = model.model_info(name)
    assert (info.family, info.depth, info.baseline) == (family, depth, baseline)
    assert TrialConfig(model=name).depth == depth


@pytest.mark.parametrize("name", BAD_NAMES)
def test_unknown_and_digitless_names_fail_in_one_line(name: str) -> None:
    for ask in (model.model_info, model.model_options, model.option_choices, model.validate, model.build,
                lambda n: registry.variant_name(n, {}), lambda n: TrialConfig(model=n)):
        with pytest.raises(ValueError, match=f"^unknown model {name!r}; valid: resnet20, ") as error:
            ask(name)
        assert "\n" not in str(error.value)


def test_depth_the_family_cannot_build_fails_in_one_line() -> None:
    with pytest.raises(ValueError, match=r"^depth 21 is not 6n\+2 with n >= 1; valid: 8, 14, 20"):
        model.model_info("ghost_resnet21")


def test_digitless_name_is_a_one_line_error_in_the_train_cli(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    assert train("--model", "foo", "--seed", "0", "--out", tmp_path / "trial") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ghostsweep train: error: unknown model 'foo'; valid: ") and "\n" not in err, err
    assert not (tmp_path / "trial").exists()


def test_digitless_name_is_a_one_line_error_in_a_spec() -> None:
    spec = {"name": "bad", "grids": [{"model": ["resnet20", "resnet"]}], "seeds": 1}
    with pytest.raises(ValueError, match=r"^grids\[0\]: unknown model 'resnet'; valid: ") as error:
        parse_spec(spec)
    assert "\n" not in str(error.value)


def test_option_choices_come_from_the_registry() -> None:
    shortcut = {"shortcut": ("A", "B")}
    assert model.option_choices("resnet20") == shortcut
    assert model.option_choices("ghost_resnet20") == shortcut | {
        "first_layer": ("conv", "ghost"), "block_norm": ("keep", "fused")
    }
    assert model.model_options("ghost_resnet20") == {
        "shortcut": "A", "first_layer": "conv", "block_norm": "keep", "ratio": 2, "cheap_kernel": 3
    }
    assert table_variants("resnet56") == [{}]
    assert table_variants("ghost_resnet56") == [
        {"first_layer": "conv", "block_norm": "keep"}, {"first_layer": "conv", "block_norm": "fused"},
        {"first_layer": "ghost", "block_norm": "keep"}, {"first_layer": "ghost", "block_norm": "fused"},
    ]


@pytest.mark.parametrize(("options", "message"), [
    ({"ratio": 1}, "ghost ratio must be >= 2, got 1"),
    ({"ratio": 2.5}, "ghost ratio must be >= 2, got 2.5"),
    ({"ratio": True}, "ghost ratio must be >= 2, got True"),
    ({"cheap_kernel": 4}, "cheap_kernel must be a positive odd integer, got 4"),
    ({"cheap_kernel": "3"}, "cheap_kernel must be a positive odd integer, got '3'"),
    ({"first_layer": "dense"}, "unknown first_layer 'dense'; valid: conv, ghost"),
    ({"block_norm": "twice"}, "unknown block_norm 'twice'; valid: keep, fused"),
    ({"shortcut": "C"}, "unknown shortcut 'C'; valid: A, B"),
    ({"width": 2}, "unknown option 'width' for model 'ghost_resnet20'; valid: shortcut, first_layer"),
])
def test_options_are_validated_from_the_registry(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}"):
        model.validate("ghost_resnet20", **options)
    with pytest.raises(ValueError, match=f"^{message}"):
        TrialConfig(model="ghost_resnet20", model_options=options)


def test_valid_options_pass() -> None:
    model.validate("ghost_resnet20", ratio=3, cheap_kernel=1, first_layer="ghost", block_norm="fused", shortcut="B")
    model.validate("resnet20", shortcut="B")


def test_train_flags_are_the_registry_options() -> None:
    """`ghostsweep train` has one flag per registry option, with the registry's choices."""
    model_flags = {dest: key for dest, (section, key) in train_cli.OVERRIDES.items() if section == "model_options"}
    assert model_flags == {name: name for name in registry.known_options()}
    parser = train_cli.add_train_parser(argparse.ArgumentParser().add_subparsers())
    args = parser.parse_args(["--out", "x", "--first-layer", "ghost", "--ratio", "3", "--shortcut", "B"])
    assert (args.first_layer, args.ratio, args.shortcut, args.block_norm) == ("ghost", 3, "B", None)
    with pytest.raises(SystemExit):
        parser.parse_args(["--out", "x", "--block-norm", "twice"])


def test_references_name_registered_models() -> None:
    for reference in REFERENCES:
        model.model_info(reference.model)
