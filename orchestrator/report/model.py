"""What a report concludes, typed: the rows, the published numbers judged, the comparisons, the ablation curves, and
the report around them. `analysis.analyse` makes `Conclusions`, `build.build_report` a `Report`, and every renderer
reads them by attribute.

Each class's `to_dict` is its part of report.json, keys in the file's order, and `from_dict` reads it back:
`Report.from_dict(json.loads(text)).to_dict()` is the file again. What is derived from other fields (a half-width,
`seeds_done`, the answer sentences) is a property, written to the file but not read back from it. Stdlib-only at
import (`stats` computes nothing until asked), so a `report` that reuses its report.json stays light.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from ghostsweep.orchestrator.report.decisions import (
    NO_SPREAD,
    DifferenceMethod,
    Judgement,
    SeedOutcomes,
    TwoStagePlan,
    Verdict,
    lost_seeds,
)
from ghostsweep.orchestrator.report.references import ReferenceKind, Source
from ghostsweep.orchestrator.report.stats import Interval
from ghostsweep.trials.provenance import resumed_under_other_code

SCHEMA_VERSION = 2  # report.json's layout: 2 added the three-valued judgements, seed outcomes and `schema_version`
ADJUSTMENT = "Holm"  # how a report's judgements share one error rate (decisions.adjust)


class Metric(StrEnum):
    """Which test accuracy of a trial a number is about."""

    FINAL = "final_test_acc"  # after the last iteration: what He et al. and (we assume) GhostNet report
    BEST_VAL = "best_val_test_acc"  # of the checkpoint with the best validation accuracy: honest selection
    MAX_OVER_EVALS = "max_test_acc"  # the best test accuracy over the evaluations: selected on the test set


def _interval(data: Mapping[str, Any] | None) -> Interval | None:
    return None if data is None else Interval.from_dict(data)


def _interval_dict(interval: Interval | None) -> dict[str, Any] | None:
    return None if interval is None else interval.to_dict()


def judgement_dict(judgement: Judgement) -> dict[str, Any]:
    """A judgement as report.json holds it: its fields, the final (adjusted) verdict first under `verdict`."""
    fields = asdict(judgement)
    return {"verdict": judgement.final_verdict or judgement.verdict, "margin": judgement.margin,
            **{key: value for key, value in fields.items() if key not in ("verdict", "margin")},
            "raw_verdict": judgement.verdict}


def judgement_from_dict(data: Mapping[str, Any]) -> Judgement:
    fields = {key: value for key, value in data.items() if key not in ("verdict", "raw_verdict")}
    final = fields.pop("final_verdict")
    return Judgement(**fields | {
        "verdict": Verdict(data["raw_verdict"]), "final_verdict": None if final is None else Verdict(final),
        "interval": _pair_of(data["interval"]), "equivalence_interval": _pair_of(data["equivalence_interval"])})


def _pair_of(values: list[float] | None) -> tuple[float, float] | None:
    return None if values is None else (values[0], values[1])


def _p(value: float | None) -> str:
    return "—" if value is None else f"{value:.2g}"


def verdict_phrase(judgement: Judgement) -> str:
    """The final verdict in a few words, for the tables and the answer: the margin, raw → Holm-adjusted p of the
    difference and the equivalence test, and, when inconclusive, what would decide it; a verdict without a test
    says why (not comparable: how the recipes differ)."""
    verdict = judgement.final_verdict or judgement.verdict
    if judgement.p_difference is None:
        reason = judgement.final_reason or judgement.reason
        return f"{verdict}: {reason}" + (f"; {judgement.to_decide}" if judgement.to_decide else "")
    tests = (f"p={_p(judgement.p_difference)}→{_p(judgement.p_difference_adjusted)}, equivalence "
             f"p={_p(judgement.p_equivalence)}→{_p(judgement.p_equivalence_adjusted)}")
    text = f"{verdict} at ±{judgement.margin:.2f} pp ({tests})"
    if verdict is not judgement.verdict:
        text += f"; {judgement.verdict} before the adjustment"
    if verdict is Verdict.INCONCLUSIVE and judgement.to_decide:
        text += f"; {judgement.to_decide.split(':')[0]}"
    return text


def _outcomes_from_dict(data: Mapping[str, Any]) -> SeedOutcomes:
    return SeedOutcomes(*(tuple(data[key]) for key in ("planned", "done", "failed", "diverged")))


def _plan_from_dict(data: Mapping[str, Any] | None) -> TwoStagePlan | None:
    return None if data is None else TwoStagePlan(**data)


PROVENANCE_ASPECTS = {"code": "code", "torch": "torch", "cuda": "CUDA", "cudnn": "cuDNN", "device": "device"}
NOT_COMPARABLE_ASPECTS = ("code",)  # the rest warn: the experiment is the code; the environment is noise-level
GPU_LIBRARIES = ("cuda", "cudnn")  # what torch was built with: no part of a run on the CPU


def _seed_list(seeds: list[int]) -> str:
    return "seed " + str(seeds[0]) if len(seeds) == 1 else "seeds " + ", ".join(map(str, seeds))


@dataclass(frozen=True)
class Provenance:
    """What produced a row's done seeds (or a report's): per aspect (PROVENANCE_ASPECTS), each value and its
    seeds; "unknown" where result.json did not record it. A *mixed* aspect has two values; a mixed code version
    (a dirty tree aside) makes the row's judgements not comparable, every other difference warns (docs/report.md)."""

    code: dict[str, list[int]]
    torch: dict[str, list[int]]
    cuda: dict[str, list[int]]
    cudnn: dict[str, list[int]]
    device: dict[str, list[int]]  # "cpu", or the GPU's model

    def values(self, aspect: str) -> dict[str, list[int]]:
        return getattr(self, aspect)

    @property
    def mixed(self) -> list[str]:
        """The aspects whose seeds differ; code by its commit, a dirty tree aside, and mixed too where a seed
        resumed under other code than it started with ("1a2b then 3c4d")."""
        return [aspect for aspect in PROVENANCE_ASPECTS if len(self.distinct(aspect)) > 1
                or aspect == "code" and any(resumed_under_other_code(value) for value in self.code)]

    def distinct(self, aspect: str) -> set[str]:
        values = self.values(aspect)
        return {value.removesuffix("-dirty") for value in values} if aspect == "code" else set(values)

    @property
    def dirty(self) -> bool:
        return any(value.endswith("-dirty") for value in self.code)

    @property
    def not_comparable(self) -> list[str]:
        return [aspect for aspect in self.mixed if aspect in NOT_COMPARABLE_ASPECTS]

    @property
    def flag(self) -> str | None:
        """The warning beside the row's numbers; None when every seed ran alike from a clean tree."""
        problems = [f"mixed {PROVENANCE_ASPECTS[aspect]}" for aspect in self.mixed]
        problems += ["dirty tree"] if self.dirty else []
        return f"⚠ {', '.join(problems)}" if problems else None

    def describe(self) -> str:
        """`code 1a2b (seeds 0, 1), 3c4d (seed 2); torch 2.5.1; CUDA 12.4; cuDNN 90100; device NVIDIA H100`: a
        value's seeds are named only where the aspect is mixed. CUDA and cuDNN are left out where every seed ran on
        the CPU: they are only what torch was built with."""
        parts = []
        on_cpu_only = set(self.device) == {"cpu"}
        for aspect, word in PROVENANCE_ASPECTS.items():
            values = self.values(aspect)
            if on_cpu_only and aspect in GPU_LIBRARIES:
                continue
            if len(values) == 1:
                parts.append(f"{word} {next(iter(values))}")
            else:
                parts.append(f"{word} " + ", ".join(f"{value} ({_seed_list(seeds)})"
                                                    for value, seeds in values.items()))
        return "; ".join(parts)

    def differs_from(self, other: Provenance) -> list[str]:
        """The aspects in which two rows' seeds ran differently (each uniform or not)."""
        return [aspect for aspect in PROVENANCE_ASPECTS if self.distinct(aspect) != other.distinct(aspect)]

    @classmethod
    def merged(cls, provenances: list[Provenance]) -> Provenance:
        """The report's provenance: every row's values (seeds repeat across rows)."""
        return cls(**{aspect: {value: sorted({seed for p in provenances for seed in p.values(aspect).get(value, [])})
                               for p in provenances for value in p.values(aspect)}
                      for aspect in PROVENANCE_ASPECTS})

    def to_dict(self) -> dict[str, Any]:
        return {aspect: self.values(aspect) for aspect in PROVENANCE_ASPECTS} | {
            "mixed": self.mixed, "dirty": self.dirty, "flag": self.flag}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Provenance | None:
        """None for a report.json from before provenance was shown."""
        return None if data is None else cls(**{aspect: data[aspect] for aspect in PROVENANCE_ASPECTS})


class MeanWithInterval(Protocol):
    """A mean over seeds with its 95% CI: a row's summary, an ablation point, an ablation's baseline."""

    @property
    def mean(self) -> float | None: ...

    @property
    def std(self) -> float | None: ...

    @property
    def ci_low(self) -> float | None: ...

    @property
    def ci_high(self) -> float | None: ...


@dataclass(frozen=True)
class Summary:
    """One accuracy of a row over its done seeds: mean, std, the 95% CI of the mean, the 95% prediction interval for
    one more run, the range, and the seeds this spread needs for the target half-width (None: no spread yet, or
    more than 1000). Everything but `n` is None without seeds; the intervals are None below two."""

    n: int
    mean: float | None = None
    std: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    pi_low: float | None = None
    pi_high: float | None = None
    min: float | None = None
    max: float | None = None
    seeds_needed: int | None = None

    @property
    def halfwidth(self) -> float | None:
        return None if self.ci_low is None or self.ci_high is None else (self.ci_high - self.ci_low) / 2

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "mean": self.mean, "std": self.std, "ci_low": self.ci_low, "ci_high": self.ci_high,
                "halfwidth": self.halfwidth, "pi_low": self.pi_low, "pi_high": self.pi_high, "min": self.min,
                "max": self.max, "seeds_needed": self.seeds_needed}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Summary:
        return cls(data["n"], data["mean"], data["std"], data["ci_low"], data["ci_high"], data["pi_low"],
                   data["pi_high"], data["min"], data["max"], data["seeds_needed"])


@dataclass(frozen=True)
class JudgedReference:
    """A published number beside ours: `interval` is ours in the form the kind calls for (the prediction interval
    for one run, Welch's, the predictive best of m), `judgement` the three-valued verdict (decisions.py), Holm-
    adjusted over the report; not comparable when the published recipe differs from the row's."""

    source: str  # a `Source.key`
    kind: ReferenceKind
    runs: int | None
    test_acc: float
    test_acc_std: float | None
    params: float | None
    macs: float | None
    metric: Metric  # which of our accuracies it is compared with
    ours_mean: float | None
    interval: Interval | None
    judgement: Judgement
    notes: list[str]

    @property
    def verdict(self) -> Verdict:
        return self.judgement.final_verdict or self.judgement.verdict

    @property
    def ours_minus_paper(self) -> float | None:
        return None if self.ours_mean is None else self.ours_mean - self.test_acc

    @property
    def method(self) -> str | None:
        return self.interval and self.interval.method

    @property
    def p_value(self) -> float | None:
        return self.interval and self.interval.p_value

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "kind": self.kind.value, "runs": self.runs, "test_acc": self.test_acc,
                "test_acc_std": self.test_acc_std, "params": self.params, "macs": self.macs,
                "metric": self.metric.value, "ours_mean": self.ours_mean, "ours_minus_paper": self.ours_minus_paper,
                "interval": _interval_dict(self.interval), "method": self.method, "p_value": self.p_value,
                "verdict": self.verdict.value, "judgement": judgement_dict(self.judgement), "notes": self.notes}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JudgedReference:
        return cls(data["source"], ReferenceKind(data["kind"]), data["runs"], data["test_acc"], data["test_acc_std"],
                   data["params"], data["macs"], Metric(data["metric"]), data["ours_mean"],
                   _interval(data["interval"]), judgement_from_dict(data["judgement"]), data["notes"])


@dataclass(frozen=True)
class RowSummary:
    """One report row (a variant and its settings, over its seeds): what was run, each accuracy summarised, the
    compute it took, and each published number about it judged."""

    group: str
    label: str
    variant: str
    model: str
    family: str  # the registry's model family: the plots join a family's depths into one line
    first_layer: str | None
    block_norm: str | None
    settings: dict[str, Any]  # flattened non-seed identity: "recipe.lr", "runtime.compile", ...
    seeds_planned: int
    seeds: list[int]  # done
    missing_seeds: list[int]
    final_test_acc: Summary
    best_val_test_acc: Summary
    max_test_acc: Summary
    params: int | None
    macs: int | None
    gpu_hours: float
    cpu_hours: float
    references: list[JudgedReference]
    notes: list[str]
    outcomes: SeedOutcomes  # planned / done / failed / diverged: a lost seed is a result, not a gap
    two_stage: TwoStagePlan | None = None  # `extend` chose its seeds by Stein's procedure: the final CI is Stein's
    provenance: Provenance | None = None  # what produced the done seeds; None in a report.json from before it

    @property
    def seeds_done(self) -> int:
        return len(self.seeds)

    @property
    def provenance_flag(self) -> str | None:
        """The warning beside the row's numbers (`Provenance.flag`); None for a uniform row or an old report."""
        return self.provenance and self.provenance.flag

    def summary(self, metric: Metric) -> Summary:
        return getattr(self, metric.value)

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group, "label": self.label, "variant": self.variant, "model": self.model,
            "settings": self.settings, "seeds_planned": self.seeds_planned, "seeds_done": self.seeds_done,
            "seeds": self.seeds, "missing_seeds": self.missing_seeds,
            **{metric.value: self.summary(metric).to_dict() for metric in Metric},
            "params": self.params, "macs": self.macs, "gpu_hours": self.gpu_hours, "cpu_hours": self.cpu_hours,
            "references": [ref.to_dict() for ref in self.references], "notes": self.notes, "family": self.family,
            "first_layer": self.first_layer, "block_norm": self.block_norm,
            "outcomes": asdict(self.outcomes), "seeds_described": self.outcomes.describe(),
            "two_stage": self.two_stage and asdict(self.two_stage),
            "provenance": self.provenance and self.provenance.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RowSummary:
        return cls(
            data["group"], data["label"], data["variant"], data["model"], data["family"], data["first_layer"],
            data["block_norm"], data["settings"], data["seeds_planned"], data["seeds"], data["missing_seeds"],
            *(Summary.from_dict(data[metric.value]) for metric in Metric), data["params"], data["macs"],
            data["gpu_hours"], data["cpu_hours"], [JudgedReference.from_dict(ref) for ref in data["references"]],
            data["notes"], _outcomes_from_dict(data["outcomes"]), _plan_from_dict(data["two_stage"]),
            Provenance.from_dict(data.get("provenance")),
        )


@dataclass(frozen=True)
class Claim:
    """A source's own Δ of the compared models (two single runs): our 95% prediction interval for one unpaired pair
    of runs (`prediction`; None below two seeds per row) and the three-valued judgement of our Δ − theirs."""

    source: str
    delta: float
    params_ratio: float | None
    macs_ratio: float | None
    prediction: Interval | None
    judgement: Judgement

    @property
    def verdict(self) -> Verdict:
        return self.judgement.final_verdict or self.judgement.verdict

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "delta": self.delta, "params_ratio": self.params_ratio,
                "macs_ratio": self.macs_ratio, "prediction": _interval_dict(self.prediction),
                "verdict": self.verdict.value, "judgement": judgement_dict(self.judgement)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Claim:
        return cls(data["source"], data["delta"], data["params_ratio"], data["macs_ratio"],
                   _interval(data["prediction"]), judgement_from_dict(data["judgement"]))


@dataclass(frozen=True)
class Comparison:
    """Two rows that differ in one factor: Δ = treatment − reference of the final test accuracy, paired by seed
    (None below two pairs) and Welch's unpaired interval beside it, `method` the one rule 5 of decisions.py
    chose (paired from 3 pairs); the size ratios, the sources' claims, and each row's seed outcomes."""

    factor: str  # "model", "model_options", "runtime", "recipe", "data"
    treatment: str  # report groups
    reference: str
    treatment_label: str
    reference_label: str
    difference: str  # what minus what, in words
    differing: list[str]  # the settings that differ
    n_pairs: int
    paired: Interval | None
    welch: Interval | None
    seeds_needed: int | None  # pairs for the target half-width at the observed spread of the differences
    params_ratio: float | None
    macs_ratio: float | None
    claims: list[Claim]
    method: DifferenceMethod
    treatment_seeds: SeedOutcomes
    reference_seeds: SeedOutcomes
    provenance: list[str] = field(default_factory=list)  # how the rows' seeds ran differently, within or between
    spread_negligible: bool = False  # the spread Δ's interval rests on is negligible: no interval (decisions.py)

    @property
    def interval(self) -> Interval | None:
        """Δ's interval by the method rule 5 chose."""
        return {DifferenceMethod.PAIRED: self.paired, DifferenceMethod.WELCH: self.welch}.get(self.method)

    @property
    def lost_note(self) -> str | None:
        """The seeds either row lost (failed or diverged) and what that does to Δ; None when none was lost."""
        return lost_seeds(self.treatment_seeds, self.reference_seeds, self.treatment_label,
                          self.reference_label).note

    @property
    def sentence(self) -> str:
        """The comparison in one sentence, for the top of the report: Δ by the chosen method, each claim's
        Holm-adjusted verdict, and the seeds lost."""
        interval = self.interval
        if interval is None:
            return f"{self.difference}: not enough seeds for an interval yet{self._provenance_warning}."
        how = f"paired, n={interval.n}" if self.method is DifferenceMethod.PAIRED else "Welch, unpaired"
        shown = (f"({how}; no interval: {NO_SPREAD})" if self.spread_negligible else
                 f"[{interval.low:+.2f}, {interval.high:+.2f}] ({how})")
        sentence = f"{self.difference}: {interval.estimate:+.2f} pp {shown}"
        if self.params_ratio and self.factor == "model":
            sentence += f", at {self.params_ratio:.2f}× the params and {self.macs_ratio:.2f}× the MACs"
        for claim in self.claims:
            sentence += f"; {claim.source}'s {claim.delta:+.1f} pp: {verdict_phrase(claim.judgement)}"
        lost = [f"{label} {outcomes.describe()}" for label, outcomes in (
            (self.treatment_label, self.treatment_seeds), (self.reference_label, self.reference_seeds))
            if outcomes.lost]
        if lost:
            sentence += f"; seeds lost: {'; '.join(lost)} (Δ is over the survivors)"
        return sentence + self._provenance_warning + "."

    @property
    def _provenance_warning(self) -> str:
        return f"; {self.provenance_flag}" if self.provenance_flag else ""

    @property
    def provenance_flag(self) -> str | None:
        """The warning beside Δ in the tables and the answer: how the rows' seeds ran differently."""
        return f"⚠ provenance: {'; '.join(self.provenance)}" if self.provenance else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "factor": self.factor, "treatment": self.treatment, "reference": self.reference,
            "treatment_label": self.treatment_label, "reference_label": self.reference_label,
            "difference": self.difference, "differing": self.differing, "n_pairs": self.n_pairs,
            "paired": _interval_dict(self.paired), "welch": _interval_dict(self.welch),
            "seeds_needed": self.seeds_needed, "params_ratio": self.params_ratio, "macs_ratio": self.macs_ratio,
            "claims": [claim.to_dict() for claim in self.claims], "method": self.method.value,
            "treatment_seeds": asdict(self.treatment_seeds), "reference_seeds": asdict(self.reference_seeds),
            "lost_note": self.lost_note, **({"provenance": self.provenance} if self.provenance else {}),
            **({"spread_negligible": True} if self.spread_negligible else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Comparison:
        return cls(data["factor"], data["treatment"], data["reference"], data["treatment_label"],
                   data["reference_label"], data["difference"], data["differing"], data["n_pairs"],
                   _interval(data["paired"]), _interval(data["welch"]), data["seeds_needed"], data["params_ratio"],
                   data["macs_ratio"], [Claim.from_dict(claim) for claim in data["claims"]],
                   DifferenceMethod(data["method"]), _outcomes_from_dict(data["treatment_seeds"]),
                   _outcomes_from_dict(data["reference_seeds"]), data.get("provenance", []),
                   data.get("spread_negligible", False))


@dataclass(frozen=True)
class JudgedAblationDifference:
    """A published difference of an ablation (the accuracy at a point minus at `reference_value`, two single runs)
    beside ours: our Δ of the two rows by the method rule 5 chose, and the judgement of ours − published, Holm-
    adjusted over the report."""

    reference_value: Any  # the option's value the Δ is against: its default, the paper's setting
    published_delta: float
    ours: Interval | None  # our Δ by `method` (None: no interval)
    method: DifferenceMethod
    spread_negligible: bool  # the spread `ours` rests on is negligible: no interval (decisions.py)
    judgement: Judgement

    @property
    def verdict(self) -> Verdict:
        return self.judgement.final_verdict or self.judgement.verdict

    def to_dict(self) -> dict[str, Any]:
        return {"reference_value": self.reference_value, "published_delta": self.published_delta,
                "ours": _interval_dict(self.ours), "method": self.method.value,
                "spread_negligible": self.spread_negligible, "verdict": self.verdict.value,
                "judgement": judgement_dict(self.judgement)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JudgedAblationDifference:
        return cls(data["reference_value"], data["published_delta"], _interval(data["ours"]),
                   DifferenceMethod(data["method"]), data["spread_negligible"], judgement_from_dict(data["judgement"]))


@dataclass(frozen=True)
class AblationPoint:
    """One value of the varied option: our row there (`label` None: not in this sweep) and the published number."""

    value: Any  # the option's value: an int or a float
    label: str | None
    group: str | None
    n: int
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None
    params: int | None
    macs: int | None
    ours_minus_paper: float | None
    verdict: Verdict | None  # the judged published number's, adjusted
    verdict_phrase: str | None  # `verdict_phrase` of its judgement
    paper_test_acc: float | None
    paper_params: float | None
    paper_macs: float | None
    difference: JudgedAblationDifference | None = None  # the published Δ against the reference value's row, judged
    provenance_flag: str | None = None  # our row's (RowSummary.provenance): its seeds mixed code, libraries, devices

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"difference": self.difference and self.difference.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AblationPoint:
        verdict, difference = data["verdict"], data.get("difference")
        return cls(**data | {
            "verdict": None if verdict is None else Verdict(verdict),
            "difference": None if difference is None else JudgedAblationDifference.from_dict(difference)})


@dataclass(frozen=True)
class AblationBaseline:
    """The curve's reference line: the model without Ghost modules, ours (its first row) and the source's."""

    model: str
    label: str | None
    group: str | None
    n: int
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None
    params: int | None
    macs: int | None
    paper_test_acc: float | None
    paper_params: float | None
    paper_macs: float | None
    provenance_flag: str | None = None  # our row's, as for AblationPoint

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AblationBaseline:
        return cls(**data)


@dataclass(frozen=True)
class AblationCurve:
    """A published ablation curve (one option of a model varied) with our rows along it."""

    model: str
    option: str
    source: str
    where: str  # where in the source the curve is
    points: list[AblationPoint]  # by value
    baseline: AblationBaseline | None  # None: the model has no baseline

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "option": self.option, "source": self.source, "where": self.where,
                "points": [point.to_dict() for point in self.points],
                "baseline": self.baseline and self.baseline.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AblationCurve:
        baseline = data["baseline"]
        return cls(data["model"], data["option"], data["source"], data["where"],
                   [AblationPoint.from_dict(point) for point in data["points"]],
                   None if baseline is None else AblationBaseline.from_dict(baseline))


@dataclass(frozen=True)
class TrialEntry:
    """One trial in report.json: its accuracies (None until done), its learning curve (iteration, val_acc), and
    what produced its result (as result.json records it; None until it has one, or where it did not record it)."""

    trial_id: str
    group: str
    seed: int
    done: bool
    final_test_acc: float | None
    best_val_test_acc: float | None
    max_test_acc: float | None
    curve: list[tuple[int, float]]
    code_version: str | None = None
    torch_version: str | None = None
    cuda_version: str | None = None
    cudnn_version: str | None = None
    device: str | None = None  # "cpu" or the GPU's model, as the row's provenance names it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialEntry:
        return cls(**{**data, "curve": [tuple(point) for point in data["curve"]]})


@dataclass(frozen=True)
class Conclusions:
    """What the analysis concludes: rows, comparisons (the model comparisons first), the published ablation curves
    our rows lie on, at the target half-width the seeds needed are for."""

    target_halfwidth_pp: float
    rows: list[RowSummary]
    comparisons: list[Comparison]
    ablations: list[AblationCurve]
    family_size: int  # the judgements with a test, adjusted together (decisions.adjust)

    @property
    def multiplicity(self) -> str:
        """How the verdicts share one error rate, for the report's readers."""
        if not self.family_size:
            return f"No judgement here has a test, so {ADJUSTMENT}'s adjustment has nothing to adjust."
        return (f"{ADJUSTMENT}'s step-down over the report's family of {self.family_size} tested judgements "
                "(published numbers and published Δs; the difference tests one family, the equivalence tests "
                "another): each verdict shows raw → adjusted p, and the verdict is the adjusted one; a verdict that "
                "changed with the adjustment says what it was before.")

    @property
    def answer(self) -> list[str]:
        """The sentences that open the report, one per comparison."""
        return [comparison.sentence for comparison in self.comparisons]


@dataclass(frozen=True)
class Report(Conclusions):
    """report.json: the conclusions, what they were made from, and the extensions, sources and W&B settings the
    report names. `trials` is None in a report read back without them (`files.reusable_report`)."""

    title: str
    generated_at: float
    extensions: list[dict[str, Any]] = field(default_factory=list)  # extensions.json: `ghostsweep extend`'s records
    sources: dict[str, Source] = field(default_factory=dict)  # the sources the rows' references cite
    wandb: dict[str, Any] = field(default_factory=dict)  # sweep.json's W&B settings
    trials: list[TrialEntry] | None = field(default_factory=list)
    inputs_sha256: str | None = None  # of a sweep directory's report: what it was made from (`build.inputs_sha256`)

    def to_dict(self) -> dict[str, Any]:
        """report.json's content; `trials` last (`files.report_json` writes it a trial a line)."""
        return {
            "schema_version": SCHEMA_VERSION, "title": self.title, "generated_at": self.generated_at,
            **({"inputs_sha256": self.inputs_sha256} if self.inputs_sha256 else {}),
            "target_halfwidth_pp": self.target_halfwidth_pp, "multiplicity": {
                "adjustment": ADJUSTMENT, "family_size": self.family_size, "note": self.multiplicity},
            "rows": [row.to_dict() for row in self.rows],
            "comparisons": [comparison.to_dict() for comparison in self.comparisons],
            "ablations": [ablation.to_dict() for ablation in self.ablations], "answer": self.answer,
            "extensions": self.extensions, "sources": {key: asdict(source) for key, source in self.sources.items()},
            "wandb": self.wandb, **({} if self.trials is None else {"trials": [t.to_dict() for t in self.trials]}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        """report.json read back; without `trials` (a reused report's head), `trials` is None. A report.json of
        another schema is a ValueError (its reader makes the report again)."""
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"report.json schema {data.get('schema_version', 1)}, not {SCHEMA_VERSION}")
        trials = data.get("trials")
        return cls(
            target_halfwidth_pp=data["target_halfwidth_pp"], rows=[RowSummary.from_dict(r) for r in data["rows"]],
            family_size=data["multiplicity"]["family_size"],
            comparisons=[Comparison.from_dict(c) for c in data["comparisons"]],
            ablations=[AblationCurve.from_dict(a) for a in data["ablations"]], title=data["title"],
            generated_at=data["generated_at"], extensions=data["extensions"],
            sources={key: Source(**source) for key, source in data["sources"].items()}, wandb=data["wandb"],
            trials=None if trials is None else [TrialEntry.from_dict(t) for t in trials],
            inputs_sha256=data.get("inputs_sha256"),
        )
