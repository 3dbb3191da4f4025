"""VGG-16 and Ghost-VGG-16 (GhostNet §4.1): the counts pinned against the paper's tables, the `vgg` recipe preset,
the whole-section spec, its report (ablation tables and plots, Ghost − VGG comparisons), and a short real training
run that learns."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from rich.console import Console
from test_trial_helpers import result, train_on

from ghostsweep import model
from ghostsweep.orchestrator.cli import main
from ghostsweep.orchestrator.report.build import build_report
from ghostsweep.orchestrator.report.decisions import DifferenceMethod, Verdict
from ghostsweep.orchestrator.report.files import write_report
from ghostsweep.orchestrator.report.model import Report, verdict_phrase
from ghostsweep.orchestrator.report.records import records_from_sweep
from ghostsweep.orchestrator.report.references import ABLATIONS, REFERENCES, ablation_points, references_for
from ghostsweep.orchestrator.spec.plan import print_plan
from ghostsweep.orchestrator.spec.sweepspec import load_spec
from ghostsweep.orchestrator.sweepdir.directory import SweepDir
from ghostsweep.trials.config import RECIPE_PRESET_SOURCES, RECIPE_PRESETS, Recipe, TrialConfig, paper_recipe
from ghostsweep.trials.trialdir import Outcome, TrialResult, write_result

SPEC = Path(__file__).resolve().parents[1] / "sweeps" / "ghostnet-cifar10.yaml"

# (model, options) → (params, forward MACs), counted; GhostNet prints 15M/313M, 7.7M/158M, and Tables 2 and 3.
GHOST_FIRST = (("first_layer", "ghost"),)  # the model whose MACs the paper prints: all 13 convs ghosted
COUNTS = {
    ("vgg16", ()): (14_987_722, 313_463_808),
    ("ghost_vgg16", ()): (7_660_394, 158_699_520),
    ("ghost_vgg16", (("block_norm", "fused"),)): (7_652_074, 158_699_520),  # BN adds params, no MACs
    ("ghost_vgg16", (("ratio", 4),)): (3_992_570, 81_317_376),
    ("ghost_vgg16", (("ratio", 5),)): (3_279_948, 66_596_112),
    ("ghost_vgg16", GHOST_FIRST): (7_659_946, 158_109_696),
    ("ghost_vgg16", (*GHOST_FIRST, ("cheap_kernel", 1))): (7_643_050, 157_003_776),
    ("ghost_vgg16", (*GHOST_FIRST, ("cheap_kernel", 5))): (7_693_738, 160_321_536),
    ("ghost_vgg16", (*GHOST_FIRST, ("cheap_kernel", 7))): (7_744_426, 163_639_296),
    ("ghost_vgg16", (*GHOST_FIRST, ("ratio", 3))): (5_227_948, 107_240_040),
    ("ghost_vgg16", (*GHOST_FIRST, ("ratio", 4))): (3_991_834, 80_432_640),
    ("ghost_vgg16", (*GHOST_FIRST, ("ratio", 5))): (3_279_169, 65_665_296),
}


@pytest.mark.parametrize(("name", "options"), list(COUNTS), ids=[f"{n}{dict(o)}" for n, o in COUNTS])
def test_counts_are_pinned_in_closed_form_and_built(name: str, options: tuple) -> None:
    params, macs = COUNTS[name, options]
    assert model.complexity(name, **dict(options)) == model.Complexity(params, macs)
    built = model.build(name, **dict(options))
    assert (model.count_params(built), model.count_macs(built)) == (params, macs)


def test_every_published_vgg_count_is_the_all_ghost_model_cut_to_the_printed_digit() -> None:
    """Each GhostNet VGG number (Tables 2-4) is ours cut to its last printed digit (0.1M params, 1M MACs) when all 13
    convs are ghosted: the architecture is the paper's, at every s and d. With the first conv plain (the default,
    what the first author says was trained) the s=4 and s=5 MACs miss by more than a printed unit."""
    vgg_references = [ref for ref in REFERENCES if "vgg" in ref.model]
    assert len(vgg_references) == 8
    for ref in vgg_references:
        options = tuple((k, v) for k, v in ref.options if v != model.model_options(ref.model)[k])
        params, macs = COUNTS[ref.model, (*GHOST_FIRST, *options) if ref.model == "ghost_vgg16" else options]
        assert 0 <= macs - ref.macs < 1e6 and abs(params - ref.params) < 0.1e6, (ref, params, macs)
    for ratio, printed in ((4, 80e6), (5, 65e6)):
        assert COUNTS["ghost_vgg16", (("ratio", ratio),)][1] - printed > 1e6


def test_ghost_vgg_registry_metadata() -> None:
    info = model.model_info("ghost_vgg16")
    assert (info.family, info.depth, info.baseline) == ("ghost_vgg", 16, "vgg16")
    for option in ("first_layer", "block_norm", "ratio", "cheap_kernel"):  # one spec per flag
        assert info.options[option] is model.model_info("ghost_resnet56").options[option]
    assert model.model_options("ghost_vgg16") == {"first_layer": "conv", "block_norm": "keep", "ratio": 2,
                                                  "cheap_kernel": 3}
    assert model.model_options("vgg16") == {}
    assert [model.variant_name("ghost_vgg16", o) for o in (
        {}, {"ratio": 4}, {"cheap_kernel": 5}, {"first_layer": "ghost", "block_norm": "fused"})] == [
        "ghost_vgg16-conv-keep", "ghost_vgg16-conv-keep-s4d3", "ghost_vgg16-conv-keep-s2d5",
        "ghost_vgg16-ghost-fused"]
    assert {"vgg16", "ghost_vgg16"} <= set(model.available())
    with pytest.raises(ValueError, match="^VGG depth 17 is not built; valid: 11, 13, 16, 19$"):
        model.model_info("vgg17")
    with pytest.raises(ValueError, match="^unknown option 'ratio' for model 'vgg16'; valid: none$"):
        model.validate("vgg16", ratio=2)


@pytest.mark.parametrize(("options", "ghost_modules", "plain_convs", "norms", "relus_inside"), [
    ({}, 12, 1, 13, 0),  # the first conv plain; each layer's BN and ReLU after its module
    ({"first_layer": "ghost"}, 13, 0, 13, 0),
    ({"block_norm": "fused"}, 12, 1, 1, 12),  # only the plain first conv keeps a layer BN
    ({"first_layer": "ghost", "block_norm": "fused"}, 13, 0, 0, 13),
])
def test_ghost_vgg_layers(options: dict, ghost_modules: int, plain_convs: int, norms: int, relus_inside: int) -> None:
    """Which convs are Ghost modules, and the BNs outside them: `keep` swaps the conv only (module ReLUs off),
    `fused` makes the module (its BNs and ReLUs) the whole layer."""
    built = model.build("ghost_vgg16", **options)
    modules = [m for m in built.features]
    ghosts = [m for m in modules if isinstance(m, model.GhostModule)]
    assert len(ghosts) == ghost_modules
    assert sum(type(m).__name__ == "Conv2d" for m in modules) == plain_convs
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in modules) == norms
    assert sum(isinstance(g.primary_conv[2], torch.nn.ReLU) for g in ghosts) == relus_inside
    assert sum(isinstance(m, torch.nn.ReLU) for m in modules) == 13 - relus_inside
    assert built(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_init_follows_liu_et_al() -> None:
    """Convs N(0, 2/(k·k·out)), 2-d BN weight 0.5 (Ghost modules' BNs too), linear N(0, 0.01) with bias 0."""
    torch.manual_seed(0)
    built = model.build("ghost_vgg16")
    bns = [m for m in built.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 1 + 12 * 3 and all(torch.all(bn.weight == 0.5) and torch.all(bn.bias == 0) for bn in bns)
    for linear in (m for m in built.modules() if isinstance(m, torch.nn.Linear)):
        assert linear.weight.std().item() == pytest.approx(0.01, rel=0.1) and torch.all(linear.bias == 0)
    conv = next(m for m in built.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels == 256)
    assert conv.weight.std().item() == pytest.approx((2 / (9 * conv.out_channels)) ** 0.5, rel=0.1)


def test_vgg_recipe_preset() -> None:
    """`recipe: {preset: vgg}` is Liu et al.'s recipe; keys beside it override it; ResNet trials keep He et al.'s."""
    vgg = TrialConfig.from_dict({"model": "vgg16", "recipe": {"preset": "vgg"}})
    assert (vgg.recipe.iterations, vgg.recipe.milestones, vgg.recipe.batch_size, vgg.recipe.lr) == (
        125_000, [62_500, 93_750], 64, 0.1)
    assert vgg.recipe.iterations * vgg.recipe.batch_size == 160 * 50_000 and vgg.warmup_iterations == 0
    assert vgg.trial_id() == "vgg16-s0-54b9e02c"  # pinned: names sweep directories
    short = TrialConfig.from_dict({"model": "vgg16", "recipe": {"preset": "vgg", "iterations": 300}})
    assert (short.recipe.iterations, short.recipe.batch_size) == (300, 64)
    assert TrialConfig.from_dict({"model": "resnet56", "recipe": {"preset": "he2016"}}).recipe == Recipe()
    assert RECIPE_PRESETS["he2016"] == TrialConfig().recipe
    assert RECIPE_PRESET_SOURCES.keys() == RECIPE_PRESETS.keys()
    assert {paper_recipe(name) for name in ("vgg16", "ghost_vgg16", "resnet56")} == {"he2016"}  # per the author
    with pytest.raises(ValueError, match=r"^recipe.preset: must be one of he2016, vgg, got 'fast'$"):
        TrialConfig.from_dict({"model": "vgg16", "recipe": {"preset": "fast"}})


def test_unknown_preset_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: x\ngrids:\n  - model: [vgg16]\n    recipe.preset: [vgg, slow]\nseeds: 1\n")
    assert main(["plan", str(spec), "--out", str(tmp_path / "sweep")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"ghostsweep: error: {spec}: grids[0]: recipe.preset: must be one of he2016, vgg, got 'slow'"]
    assert not (tmp_path / "sweep").exists()


def test_references_follow_the_options() -> None:
    """A number is about the s and d it was published for: the s=4 row gets Table 3's s=4 point only."""
    assert [ref.test_acc for ref in references_for("ghost_vgg16")] == [93.7]
    assert [ref.test_acc for ref in references_for("ghost_vgg16", {"ratio": 4})] == [93.0]
    assert [ref.test_acc for ref in references_for("ghost_vgg16", {"ratio": 3, "cheap_kernel": 5})] == []
    assert [ref.test_acc for ref in references_for("ghost_resnet56", {"ratio": 3})] == []
    curves = {ablation.option: {v: r.test_acc for v, r in ablation_points(ablation).items()} for ablation in ABLATIONS}
    assert curves == {"cheap_kernel": {1: 93.5, 3: 93.7, 5: 93.4, 7: 93.1},
                      "ratio": {2: 93.7, 3: 93.4, 4: 93.0, 5: 92.9}}


def test_the_section_spec_plans() -> None:
    """Every row on the paper's recipe (He et al.'s) but the last VGG pair (the pruning baseline's); the ResNet
    pair on 45k and 50k images, the VGG rows on 50k with per-channel standardisation."""
    spec = load_spec(SPEC)
    assert len(spec.trials) == 80
    rows = list(dict.fromkeys((t.variant, t.recipe.iterations, t.data.val_size) for t in spec.trials))
    assert rows == [
        ("resnet56", 64_000, 5_000), ("ghost_resnet56-conv-keep", 64_000, 5_000),
        ("resnet56", 64_000, 0), ("ghost_resnet56-conv-keep", 64_000, 0),
        ("vgg16", 64_000, 0), ("ghost_vgg16-conv-keep", 64_000, 0), ("ghost_vgg16-conv-fused", 64_000, 0),
        ("ghost_vgg16-ghost-keep", 64_000, 0), *((f"ghost_vgg16-conv-keep-{sd}", 64_000, 0) for sd in (
            "s2d1", "s2d5", "s2d7", "s3d3", "s4d3", "s5d3")),
        ("vgg16", 125_000, 0), ("ghost_vgg16-conv-keep", 125_000, 0)]
    for trial in spec.trials:
        vgg = "vgg" in trial.model
        assert trial.recipe in (Recipe(), RECIPE_PRESETS["vgg"]) and (trial.recipe == Recipe() or vgg)
        assert trial.data.normalization == ("channel" if vgg else "pixel_mean")
        assert trial.data.val_size == 0 or not vgg
    # the rows whose model did not change keep the ids of the spec before issue 24 (seed 0 shown)
    assert {"resnet56-s0-018695b2", "ghost_resnet56-conv-keep-s0-35c82ad5", "vgg16-s0-123c9e81"} <= set(
        spec.trial_ids)
    out = io.StringIO()
    print_plan(spec, Path("/nonexistent"), Console(file=out, width=200))
    text = out.getvalue()
    assert "sweep 'ghostnet-cifar10': 80 trials" in text and "16 report rows" in text
    assert "not measured on the GPU yet, scaled by MACs: vgg16 (from resnet56), ghost_vgg16 (from ghost_resnet56)" \
        in text


def _published(trial_dir: Path, model_name: str) -> float:
    """The paper's accuracy for a trial's row (every row of this spec has one)."""
    options = json.loads((trial_dir / "config.json").read_text())["model_options"]
    (ref,) = [ref for ref in references_for(model_name, options) if ref.source.key == "ghostnet"]
    return ref.test_acc


def test_report_of_the_section(tmp_path: Path) -> None:
    """Stand-in results (training these 80 trials takes ~120 GPU-hours): every trial done at the paper's accuracy
    plus a seed offset; the report must pair each Ghost-VGG row with VGG-16, judge each against its own published
    point, and draw both ablations and the context rows."""
    sweep = SweepDir(tmp_path / "sweep")
    sweep.materialize(load_spec(SPEC))
    index = sweep.index()
    offsets = (-0.3, 0.1, 0.25, -0.1, 0.05)
    for trial_id in index.trial_ids:
        trial = index.trials[trial_id]
        options = json.loads((sweep.trial_dir(trial_id) / "config.json").read_text())["model_options"]
        counted = model.complexity(trial.model, **options)
        final = _published(sweep.trial_dir(trial_id), trial.model) + offsets[trial.seed]
        write_result(sweep.trial_dir(trial_id), TrialResult(
            status=Outcome.DONE, trial_id=trial_id, variant=trial.variant, model=trial.model,
            seed=trial.seed, final_test_acc=final, max_test_acc=final + 0.1, params=counted.params,
            macs=counted.macs, wall_time_s=3600.0, device="cuda", world_size=1))
    title, records, wandb = records_from_sweep(sweep.root)
    report = build_report(title, records, wandb)

    he_recipe = "recipe.iterations=64000"
    model_pairs = {(c.treatment_label.split()[0], c.reference_label.split()[0],
                    "recipe.iterations=125000" not in c.difference): c  # (treatment, reference, He recipe)
                   for c in report.comparisons if c.factor == "model"}
    vgg = model_pairs["ghost_vgg16-conv-keep", "vgg16", True]  # the He-recipe pair
    assert vgg.paired.estimate == pytest.approx(0.1) and vgg.params_ratio == pytest.approx(0.511, abs=1e-3)
    # Our Δ is the paper's to the digit, but a published Δ of two single runs carries their seed noise (√2·σ ≈
    # 0.3 pp), wider than its ±0.2 pp margin: no number of our seeds can call it consistent (decisions.py, rule 3).
    (claim,) = vgg.claims
    assert (claim.source, round(claim.delta, 2), claim.verdict) == ("ghostnet", 0.1, Verdict.INCONCLUSIVE)
    assert claim.judgement.estimate == pytest.approx(0) and claim.judgement.margin == pytest.approx(0.2)
    assert claim.judgement.to_decide.startswith("no number of our seeds can decide it")
    assert model_pairs["ghost_vgg16-conv-keep-s5d3", "vgg16", True].claims[0].delta == pytest.approx(92.9 - 93.6)
    assert {("ghost_vgg16-conv-fused", "vgg16", True), ("ghost_vgg16-ghost-keep", "vgg16", True),
            ("ghost_resnet56-conv-keep", "resnet56", True)} <= model_pairs.keys()

    for row in report.rows:
        pruning_recipe = row.settings["recipe.iterations"] == RECIPE_PRESETS["vgg"].iterations
        assert bool(row.notes) == pruning_recipe, row  # only the pruning-recipe rows run another length
        (ghostnet,) = [ref for ref in row.references if ref.source == "ghostnet"]
        if pruning_recipe:  # not GhostNet's (He et al.'s) 64,000 iterations: no verdict, the reason beside it
            assert ghostnet.verdict is Verdict.NOT_COMPARABLE and "recipe.iterations 125,000" in \
                verdict_phrase(ghostnet.judgement)
            continue
        # At the paper's number ± 0.21 pp over 5 seeds each is consistent alone (the 90% interval ±0.49 lies in
        # ±0.5) but not after Holm over the report's family: each says so.
        assert ghostnet.judgement.verdict is Verdict.CONSISTENT and ghostnet.verdict is Verdict.INCONCLUSIVE
        assert "consistent before the adjustment" in verdict_phrase(ghostnet.judgement)
    ablations = {a.option: a for a in report.ablations}
    assert [(p.value, p.n, p.paper_test_acc) for p in ablations["ratio"].points] == [
        (2, 5, 93.7), (3, 5, 93.4), (4, 5, 93.0), (5, 5, 92.9)]
    assert he_recipe in ablations["ratio"].points[0].label  # the He-recipe row, listed first in the spec
    assert [p.value for p in ablations["cheap_kernel"].points] == [1, 3, 5, 7]
    assert ablations["ratio"].points[2].mean == pytest.approx(93.0)
    # The published Δs against s=2 / d=3: ours equals the paper's with no spread in the paired differences (the
    # same seed offsets), so each is judged unpaired on the rows' spread: none consistent after Holm, the largest
    # (s=4, 5) consistent alone, the smallest undecidable by any number of seeds (as the model claim above).
    differences = {(a.option, p.value): p.difference for a in report.ablations for p in a.points}
    assert differences["ratio", 2] is None and differences["cheap_kernel", 3] is None
    assert [(key, d.published_delta, d.method, d.spread_negligible, d.judgement.verdict, d.verdict)
            for key, d in differences.items() if d is not None and key[1] in (1, 4)] == [
        (("cheap_kernel", 1), -0.2, DifferenceMethod.PAIRED, True, Verdict.INCONCLUSIVE, Verdict.INCONCLUSIVE),
        (("ratio", 4), -0.7, DifferenceMethod.PAIRED, True, Verdict.CONSISTENT, Verdict.INCONCLUSIVE)]
    assert all(d.ours.estimate == pytest.approx(d.published_delta) and d.verdict is Verdict.INCONCLUSIVE
               for d in differences.values() if d is not None)
    assert differences["cheap_kernel", 1].judgement.to_decide.startswith("no number of our seeds can decide it")
    assert Report.from_dict(json.loads(json.dumps(report.to_dict()))).ablations == report.ablations
    baseline = ablations["ratio"].baseline
    assert (baseline.model, baseline.n, baseline.paper_test_acc) == ("vgg16", 5, 93.6)

    paths = write_report(report, tmp_path / "out")
    markdown = paths["md"].read_text()
    assert "## Ablation: s on ghost_vgg16" in markdown and "## Ablation: d on ghost_vgg16" in markdown
    assert ("| s=4 | ghost_vgg16-conv-keep-s4d3 | 5 | 93.00 ± 0.21 [92.74, 93.26] | 3.99M | 81.3M | 93.0 | 4.0M | 80M "
            "| +0.00 | inconclusive at ±0.50 pp (p=1→1, equivalence p=0.047→") in markdown
    assert "| ℓ1-VGG-16 (Li et al. 2017) | vgg16 | 5.40M | 206M | 93.4 | vgg16 " in markdown
    assert "| Δ vs s=2 (ours / paper) — verdict |" in markdown and " | reference |" in markdown
    assert ("| -0.70 (paired; no interval: spread < 0.005 pp) / -0.7 — inconclusive at ±0.70 pp (p=1→1, equivalence "
            "p=0.031→0.97); consistent before the adjustment |") in markdown
    assert '<figure id="ablations">' in paths["html"].read_text() and paths["ablations"].stat().st_size > 0


@pytest.mark.slow
def test_ghost_vgg16_learns(cifar10_dir: Path, tmp_path: Path) -> None:
    """160 iterations of batch 16 from the vgg preset on the real CIFAR-10, two CPU threads, take Ghost-VGG-16
    from chance to well above it on 500 test images: >= 15%, 3.7 std above chance (10 ± 1.3%). lr 0.02 (the
    preset's 0.1 is for batch 64; at lr 0.05 the loss stayed above 3 for 100 iterations; lr 0.01 reached only
    15.8% at 120).

    At 160 iterations the network is just leaving chance (one thread: 11.0, 11.8, 14.6, 19.4% at iterations 40,
    80, 120, 160), so where it stands moves with anything that perturbs the run, rounding included. Measured at
    160 on two threads (issue 29):

        kernels          seed 0   seed 1   seed 2
        AVX2             19.6     17.2     18.0
        non-vectorised   17.8     15.4
        AVX-512          14.4                        (under the bound)

    The network is the one measured, all 13 convs ghosted (`--first-layer ghost`, the default before the first
    conv was kept plain). The run is pinned to the AVX2 kernels (`cpu_kernels`), where seed 0 gives exactly 19.6%,
    4.6 pp above the bound; a run that stopped learning stays near 10%. Steadier set-ups cost more than this
    test's ~60 s: more iterations alone do not settle it (seed 0 on 1,000 test images: 16.9, 18.7, 24.2, 21.4%
    at iterations 80, 160, 240, 320, at lr 0.02 throughout)."""
    code = train_on("avx2", "--model", "ghost_vgg16", "--first-layer", "ghost", "--seed", "0", "--recipe-preset", "vgg",
                    "--iterations", "160",
                    "--batch-size", "16", "--lr", "0.02", "--val-size", "0", "--test-size", "500",
                    "--normalization", "channel", "--eval-interval", "160", "--checkpoint-interval", "160",
                    "--device", "cpu", "--data-dir", cifar10_dir, "--out", tmp_path, threads=2)
    assert code == 0
    summary = result(tmp_path)
    assert summary["status"] == "done" and summary["iterations"] == 160
    assert summary["gpu_binding"][0]["cpu_capability"] == "AVX2"
    assert summary["final_test_acc"] >= 15.0, summary
