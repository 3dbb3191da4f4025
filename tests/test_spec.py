"""Sweep spec validation, trial identity and `ghostsweep plan`."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest

from ghostsweep.orchestrator.cli import main
from ghostsweep.orchestrator.spec.sweepspec import load_spec

REPO = Path(__file__).resolve().parents[1]

GOOD = """
name: tiny
grids:
  - model: [resnet20]
seeds: 2
recipe: {iterations: 50, milestones: [25], eval_interval: 25}
"""



def grid(models: str) -> str:
    """GOOD with its grid's model list replaced (extra grid keys may follow on new lines)."""
    return GOOD.replace("[resnet20]", models)


# (spec text, a fragment the one-line error must contain: the key it names)
BAD_SPECS = {
    "unknown top-level key": (GOOD + "colour: blue\n", "'colour'"),
    "unknown model": (grid("[alexnet]"), "unknown model 'alexnet'"),
    "negative seed": (GOOD.replace("seeds: 2", "seeds: [0, -1]"), "seeds[1]"),
    "empty grid list": (GOOD.replace("grids:\n  - model: [resnet20]", "grids: []"), "grids"),
    "empty grid mapping": (GOOD.replace("  - model: [resnet20]", "  - {}"), "grids[0]"),
    "empty value list": (grid("[]"), "grids[0].model"),
    "wrong type": (GOOD.replace("iterations: 50", "iterations: many"), "recipe.iterations"),
    "duplicate seeds": (GOOD.replace("seeds: 2", "seeds: [1, 1]"), "seeds: duplicate"),
    "duplicate trials in a grid": (grid("[resnet20, resnet20]"), "grids[0].model: duplicate"),
    "name with ../": (GOOD.replace("name: tiny", "name: ../escape"), "name:"),
    "YAML python tag": (GOOD.replace("tiny", "!!python/object/apply:os.system ['true']"), "YAML tag"),
    "resources out of range": (GOOD + "resources: {trials_per_gpu: 0}\n", "resources.trials_per_gpu"),
    "unknown recipe key": (GOOD.replace("iterations: 50", "iterations: 50, lrr: 0.1"), "recipe.lrr"),
    "option the model lacks": (grid("[resnet20]\n    first_layer: [ghost]"), "first_layer"),
    "unknown backend": (GOOD + "backend: {name: k8s}\n", "backend.name"),
    "missing seeds": (GOOD.replace("seeds: 2\n", ""), "seeds: required"),
    "duplicate YAML key": (GOOD + "name: again\n", "duplicate key 'name'"),
    "negative iterations": (GOOD.replace("iterations: 50", "iterations: -5"), "recipe.iterations"),
    "unknown dotted section": (grid("[resnet20]\n    optim.lr: [0.1]"), "grids[0].optim.lr"),
    "unknown resources key": (GOOD + "resources: {gpu: 1}\n", "resources.gpu"),
    "not a mapping": ("- name: tiny\n", "mapping"),
    "invalid YAML": (GOOD + "recipe: [unclosed\n", "invalid YAML"),
    "seed as a grid key": (grid("[resnet20]\n    seed: [3]"), "grids[0].seed"),
    "unknown local option": (GOOD + "backend: {options: {workers: 2}}\n", "backend.options.workers"),
    "wrong resources type": (GOOD + "resources: {mem_gb: lots}\n", "resources.mem_gb"),
    "even cheap kernel": (grid("[ghost_resnet20]\n    cheap_kernel: [2]"), "cheap_kernel"),
    "data value out of range": (GOOD + "data: {val_size: 60000}\n", "data.val_size"),
    "too many listed seeds": (GOOD.replace("seeds: 2", f"seeds: {list(range(1001))}"), "seeds: at most 1000"),
    "too many trials": (GOOD.replace("seeds: 2", "seeds: 1000").replace(
        "[resnet20]", f"[resnet20]\n    recipe.lr: {[round(0.001 * (i + 1), 3) for i in range(101)]}"),
        "grids: 101,000 trials"),
    "duplicate list values": (grid("[resnet20]\n    recipe.milestones: [[10, 20], [10, 20]]"),
                              "grids[0].recipe.milestones: duplicate value [10, 20]"),
    "a list as a key": (GOOD + "? [a]\n: b\n", "a key must be a plain value"),
}
BACKEND_CHECKS = {"unknown local option"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_spec_is_one_line_naming_the_key_and_creates_nothing(case, tmp_path, capsys):
    text, fragment = BAD_SPECS[case]
    spec = write(tmp_path, text)
    out = tmp_path / "sweep"
    assert main(["submit", str(spec), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ghostsweep: error: ") and err.count("\n") == 1, err
    assert fragment in err
    assert "Traceback" not in err
    assert not out.exists()
    if case not in BACKEND_CHECKS:  # plan checks the spec only: it must work away from the cluster
        assert main(["plan", str(spec), "--out", str(out)]) == 2


def test_shipped_specs_expand_as_documented():
    paper = load_spec(REPO / "sweeps/paper.yaml")
    variants = {trial.variant for trial in paper.trials}
    assert len(variants) == 5 + 10 + 2 and len(paper.trials) == 17 * 5
    assert {"ghost_resnet56-conv-fused", "ghost_resnet56-ghost-fused", "resnet110"} <= variants
    smoke = load_spec(REPO / "sweeps/smoke.yaml")
    assert sorted(t.variant for t in smoke.trials) == ["ghost_resnet20-conv-keep"] * 2 + ["resnet20"] * 2
    assert all(t.recipe.iterations <= 300 and t.runtime.device == "cpu" for t in smoke.trials)
    assert load_spec(REPO / "sweeps/paper1202.yaml").trials[0].model == "resnet1202"


def test_trial_ids_are_stable_and_follow_the_recipe(tmp_path):
    first = [t.trial_id() for t in load_spec(write(tmp_path, GOOD)).trials]
    assert first == [t.trial_id() for t in load_spec(write(tmp_path, GOOD)).trials]
    assert first[0].startswith("resnet20-s0-") and len(set(first)) == 2
    changed = [t.trial_id() for t in load_spec(write(tmp_path, GOOD.replace("50,", "60,"))).trials]
    assert not set(first) & set(changed)
    observed_only = GOOD + "wandb: {mode: offline}\n"  # W&B settings do not change what a trial computes
    assert first == [t.trial_id() for t in load_spec(write(tmp_path, observed_only)).trials]


# sha256 of every shipped spec's trial ids, one a line in plan order, as the code before issue 13's speed-ups
# computed them: a faster expansion or trial_id() must not move a single trial to a new folder. Moved on purpose
# once (issue 24): ghostnet-cifar10's Ghost-VGG-16 rows, whose model changed (the first conv plain by default, and
# the identity names first_layer and block_norm), and its new rows; its ResNet and VGG-16 trials kept their ids.
SHIPPED_TRIAL_IDS = {
    "claim-cpu": "f7ef8639f7467ecd000fafd2c18000770f081f348d45999913077664a9089523",
    "fast-vs-faithful": "fb573c7ba17072e0c161c8c5ed439d348be2d39e686f69c93271144653513e72",
    "ghostnet-cifar10": "974aab0666fe77b711c01ffe83147549fbeea28e06bab0b42f4b2adb94404a48",
    "paper": "23fd8019bd5aa620a77924e3c4a63dd058b2e8ce485c579660427140ebb24847",
    "paper-50k": "b66cc5a4369f73ff094d72132835360b6094f151b7585bdd19d02c2531f1eb4b",
    "paper1202": "6ec84e457da73a4541bcb4a1038ffaf384e77052ae8982ce60cfcfd105b7b267",
    "smoke": "0fab9e8367b40894d00aed7714d83ffacdde6a77183fce02bd02af3593bb36c7",
}


@pytest.mark.parametrize("name", sorted(SHIPPED_TRIAL_IDS))
def test_shipped_specs_keep_their_trial_ids(name):
    spec = load_spec(REPO / "sweeps" / f"{name}.yaml")
    ids = [trial.trial_id() for trial in spec.trials]
    assert list(spec.trial_ids) == ids  # the ids hashed once at expansion are each trial's own
    assert hashlib.sha256("\n".join(ids).encode()).hexdigest() == SHIPPED_TRIAL_IDS[name]


def test_anchors_and_merge_keys_within_the_caps_still_work(tmp_path):
    spec = load_spec(write(tmp_path, GOOD.replace("  - model: [resnet20]", textwrap.dedent("""\
      - model: [resnet20]
        recipe.lr: &rates [0.1, 0.05]
      - model: [ghost_resnet20]
        recipe.lr: *rates
    """)) + "data: {<<: {val_size: 0}, test_size: 100}\n"))
    assert sorted((t.model, t.recipe.lr) for t in spec.trials) == sorted(
        [(m, lr) for m in ("ghost_resnet20", "resnet20") for lr in (0.1, 0.05)] * 2)
    assert {(t.data.val_size, t.data.test_size) for t in spec.trials} == {(0, 100)}


def test_grids_are_a_union_and_dotted_keys_reach_the_recipe(tmp_path):
    spec = load_spec(write(tmp_path, GOOD.replace("  - model: [resnet20]", textwrap.dedent("""\
      - model: [resnet20]
        recipe.lr: [0.1, 0.05]
      - model: [resnet20]
    """))))
    assert sorted(t.recipe.lr for t in spec.trials) == [0.05, 0.05, 0.1, 0.1]


def test_plan_prints_table_and_gpu_hours_and_submits_nothing(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["plan", str(REPO / "sweeps/paper.yaml"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "85 trials" in printed and "GPU-hours" in printed and "NVIDIA H200" in printed
    per_variant = [line.split() for line in printed.splitlines() if line.lstrip().startswith("ghost_resnet56-")]
    assert per_variant and all(row[3].endswith("%") for row in per_variant)  # trials, GPU-h and share each
    assert "nothing submitted" in printed and not out.exists()


@pytest.mark.parametrize(("flags", "message"), [
    (["--backend-option", "max_parallel=0"], "backend.options.max_parallel"),
    (["--backend-option", "max_parallel"], "--backend-option: expected KEY=VALUE"),
    (["--backend-option", "address=auto"], "unknown key 'backend.options.address'; valid: max_parallel, gpus"),
    (["--backend", "ray", "--backend-option", "address=auto", "--backend-option", "max_failures=-2"],
     "backend.options.max_failures"),
])
def test_backend_option_overrides_are_validated_before_anything_is_written(flags, message, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["submit", str(write(tmp_path, GOOD)), "--out", str(out), *flags]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1, error
    assert not out.exists()
