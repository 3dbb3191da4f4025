"""The published numbers as facts: each one's kind, training set, recipe and primary source; `comparability` (why
a row is not comparable with a number) and `ablation_differences` (the ablation tables' claims as differences)."""

from __future__ import annotations

import pytest

from ghostsweep.model.arithmetic import COUNT_CONVENTION
from ghostsweep.orchestrator.report.references import (
    ABLATIONS,
    REFERENCES,
    ReferenceKind,
    ablation_differences,
    comparability,
    references_for,
)
from ghostsweep.orchestrator.sweepdir.directory import trial_settings
from ghostsweep.trials.config import TrialConfig


def settings(**config: object) -> dict[str, object]:
    """A row's flattened settings, as the report has them."""
    return trial_settings(TrialConfig.from_dict({"model": "resnet56", **config}))


def by_source(model_name: str) -> dict[str, object]:
    return {ref.source.key: ref for ref in references_for(model_name)}


def test_every_reference_names_its_primary_source_and_training_set() -> None:
    for ref in REFERENCES:
        assert ref.where and ref.recipe is not None and ref.recipe.description, ref
        assert "review" not in ref.source.where.lower() and "paperspace" not in ref.source.where.lower()
        if ref.train_images is None:  # unstated: the note says so
            assert "validation split" in ref.note, ref
    assert {ref.kind for ref in REFERENCES} == {ReferenceKind.UNKNOWN, ReferenceKind.SINGLE_RUN,
                                                ReferenceKind.MEAN_OF_N, ReferenceKind.BEST_OF_N}


def test_akamaster_is_the_final_accuracy_of_one_run_on_50k() -> None:
    akamaster = [ref for ref in REFERENCES if ref.source.key == "akamaster"]
    assert len(akamaster) == 6
    for ref in akamaster:
        assert (ref.kind, ref.train_images, ref.recipe.iterations) == (ReferenceKind.SINGLE_RUN, 50_000, 78_200)
    assert [ref.test_acc for ref in akamaster[:4]] == [91.73, 92.63, 93.10, 93.39]  # what the weights score


def test_training_sets() -> None:
    resnet56 = by_source("resnet56")
    assert (resnet56["ghostnet"].train_images, resnet56["he2016"].train_images,
            resnet56["akamaster"].train_images) == (None, 50_000, 50_000)


def test_comparability_of_he_recipe_rows() -> None:
    resnet56 = by_source("resnet56")
    on_45k, on_50k = settings(), settings(data={"val_size": 0})
    assert comparability(resnet56["ghostnet"], on_45k) == []  # GhostNet does not say its training set
    assert comparability(resnet56["he2016"], on_45k) == ["trained on 45,000 images, he2016 on 50,000"]
    assert comparability(resnet56["he2016"], on_50k) == []
    assert comparability(resnet56["akamaster"], on_50k) == [
        "recipe.iterations 64,000, akamaster 78,200", "data.normalization pixel_mean, akamaster imagenet",
        "lr drops at 32,000/48,000, akamaster at 39,100/58,650"]


def test_comparability_of_the_pruning_recipe_and_short_runs() -> None:
    (ghostnet,) = references_for("vgg16")
    pruning = trial_settings(TrialConfig.from_dict(
        {"model": "vgg16", "recipe": {"preset": "vgg"}, "data": {"val_size": 0, "normalization": "channel"}}))
    assert comparability(ghostnet, pruning) == [
        "recipe.iterations 125,000, ghostnet 64,000", "recipe.batch_size 64, ghostnet 128",
        "lr drops at 62,500/93,750, ghostnet at 32,000/48,000"]
    he = trial_settings(TrialConfig.from_dict({"model": "vgg16", "data": {"val_size": 0}}))
    assert comparability(ghostnet, he) == []
    smoke = settings(recipe={"iterations": 300, "milestones": [150]}, data={"test_size": 500})
    assert comparability(by_source("resnet56")["ghostnet"], smoke) == [
        "tested on 500 of the 10,000 test images", "recipe.iterations 300, ghostnet 64,000",
        "lr drops at 150, ghostnet at 32,000/48,000"]
    assert comparability(ghostnet, {"model": "vgg16"}) == []  # keys it lacks are not checked


def test_ablation_differences_are_the_tables_claims() -> None:
    differences = {ablation.option: [(d.value, d.reference_value, d.published_delta) for d in
                                     ablation_differences(ablation)] for ablation in ABLATIONS}
    assert differences == {"cheap_kernel": [(1, 3, -0.2), (5, 3, -0.3), (7, 3, -0.6)],
                           "ratio": [(3, 2, -0.3), (4, 2, -0.7), (5, 2, -0.8)]}
    first = ablation_differences(ABLATIONS[0])[0]
    assert first.published_delta == pytest.approx(first.reference.test_acc - first.baseline.test_acc)


def test_the_count_convention_is_stated() -> None:
    assert "multiply-accumulates" in COUNT_CONVENTION and "BN" in COUNT_CONVENTION
