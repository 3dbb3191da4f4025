"""What the report concludes: per-row statistics, each published number judged by the matching method, and the
paired comparisons that answer the paper's relative claim. `RowInput`s in, `model.Conclusions` out.

A *row* is one report group: a variant plus every recipe/data/runtime setting that differs within the sweep,
over its seeds. A *comparison* is two rows that differ in one factor only:
- the model: a Ghost model against its baseline at the same depth (the registry says which), all else equal;
- one section of settings: a model option (`first_layer`, `block_norm`, ...), the runtime, the recipe, the data.
Its Δ is *treatment − reference*: the Ghost model minus its baseline; otherwise the reference is the row that
leaves the differing settings at their defaults. Δ is paired by seed (seed s of both rows saw the same
batches) from `decisions.MIN_PAIRS` pairs, else Welch's on all seeds (decisions.py, rule 5); both are shown.

Every published number and published Δ is judged three-valued (decisions.py, rules 1-3), or not comparable when
the published recipe differs from the row's; the judgements of one report are Holm-adjusted together (rule 4).
Failed and diverged seeds are outcomes of the row (rule 7), named beside what they affect.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ghostsweep.model.registry import model_info, model_options
from ghostsweep.orchestrator.report import decisions, stats
from ghostsweep.orchestrator.report.decisions import Judgement, SeedOutcomes, TwoStagePlan, Verdict
from ghostsweep.orchestrator.report.model import (
    PROVENANCE_ASPECTS,
    AblationBaseline,
    AblationCurve,
    AblationPoint,
    Claim,
    Comparison,
    Conclusions,
    JudgedAblationDifference,
    JudgedReference,
    Metric,
    Provenance,
    RowSummary,
    Summary,
    verdict_phrase,
)
from ghostsweep.orchestrator.report.references import (
    ABLATIONS,
    DEFAULT_TARGET_HALFWIDTH_PP,
    Ablation,
    Reference,
    ReferenceKind,
    ablation_differences,
    ablation_points,
    comparability,
    count_gap,
    references_for,
)
from ghostsweep.trials.config import RECIPE_PRESETS, paper_recipe


@dataclass
class RowInput:
    """One row's trials, as the analysis needs them (from a sweep directory or from W&B)."""

    group: str
    label: str
    variant: str
    model: str
    settings: dict[str, Any]  # flattened non-seed identity: "recipe.lr", "runtime.compile", "model_options.ratio"
    defaults: dict[str, Any]  # the same keys at their default values (for the comparison's orientation)
    seeds_planned: list[int]
    values: dict[Metric, dict[int, float]]  # per metric, per done seed
    params: int | None = None
    macs: int | None = None
    gpu_hours: float = 0.0
    cpu_hours: float = 0.0
    iterations: int | None = None
    first_layer: str | None = None  # the Ghost options the plots group rows by
    block_norm: str | None = None
    notes: list[str] = field(default_factory=list)
    seeds_failed: list[int] = field(default_factory=list)  # planned seeds whose trial failed (not diverged)
    seeds_diverged: list[int] = field(default_factory=list)  # ... whose loss went non-finite
    two_stage: TwoStagePlan | None = None  # `extend --until-halfwidth` chose its seeds by Stein's procedure
    provenance: Provenance | None = None  # what produced the done seeds (None: not known, e.g. a test's rows)

    @property
    def outcomes(self) -> SeedOutcomes:
        return SeedOutcomes(tuple(self.seeds_planned), tuple(sorted(self.values[Metric.FINAL])),
                            tuple(self.seeds_failed), tuple(self.seeds_diverged))


def summarise(by_seed: Mapping[int, float], target: float, two_stage: TwoStagePlan | None = None) -> Summary:
    """n, mean, std, the 95% CI of the mean (Stein's, given the `two_stage` plan that chose n), the 95% prediction
    interval for one more run, min, max, and the seeds this spread needs for a CI half-width of `target` pp."""
    values = [by_seed[s] for s in sorted(by_seed)]
    if not values:
        return Summary(0)
    sample = stats.Sample.of(values)
    ci, pi = stats.mean_interval(values), stats.prediction_interval(values)
    if two_stage is not None and len(values) >= two_stage.pilot_n:
        ci = two_stage.interval(values)
    return Summary(sample.n, sample.mean, sample.std, ci and ci.low, ci and ci.high, pi and pi.low, pi and pi.high,
                   min(values), max(values), stats.seeds_for_halfwidth(sample.std, target))


def judge_reference(ref: Reference, row: RowInput) -> JudgedReference:
    """The published number against ours: `interval` ours in the form its kind calls for, `judgement` the
    three-valued verdict (before the report's adjustment), or not comparable, or inconclusive while planned seeds
    are still to run."""
    metric = Metric.FINAL  # every published number is a final accuracy (references.py)
    values = [row.values[metric][s] for s in sorted(row.values[metric])]
    notes = [ref.note] if ref.note else []
    if gap := count_gap(ref, row.params, row.macs):
        notes.append(gap)
    if ref.kind is ReferenceKind.UNKNOWN:
        notes.append("the source does not say how many runs: treated as a single run")
    interval: stats.Interval | None = None
    if len(values) >= 2:
        if ref.kind is ReferenceKind.MEAN_OF_N:
            published = stats.Sample(ref.runs or 1, ref.test_acc, ref.test_acc_std)
            welch = stats.welch_interval(stats.Sample.of(values), published)
            # The paper's mean against ours ± the Welch half-width: inside iff the difference CI holds 0.
            interval = welch and stats.Interval(stats.Sample.of(values).mean, ref.test_acc + welch.low,
                                                ref.test_acc + welch.high, welch.method, welch.n, welch.df,
                                                welch.p_value)
        elif ref.kind is ReferenceKind.BEST_OF_N:
            interval = stats.best_of_interval(values, ref.runs or 1)
        else:
            interval = stats.prediction_interval(values)
    outcomes = row.outcomes
    if outcomes.lost:
        notes.append(f"{outcomes.describe()}; judged over the seeds that finished, which a lost seed may flatter")
    mean = sum(values) / len(values) if values else None
    return JudgedReference(ref.source.key, ref.kind, ref.runs, ref.test_acc, ref.test_acc_std, ref.params, ref.macs,
                           metric, mean, interval, _judge_level(ref, row, values), notes)


def _judge_level(ref: Reference, row: RowInput, values: list[float]) -> Judgement:
    """decisions' judgement for the reference's kind; not comparable first, then pending seeds."""
    if reasons := comparability(ref, row.settings) + _code_reasons(row):
        return _without_test(Verdict.NOT_COMPARABLE, "; ".join(reasons), len(values), decisions.LEVEL_MARGIN_PP)
    if pending := _pending(row.outcomes):
        return pending
    if ref.kind is ReferenceKind.MEAN_OF_N:
        return decisions.judge_mean_of_runs(values, ref.test_acc, ref.runs or 1, ref.test_acc_std)
    if ref.kind is ReferenceKind.BEST_OF_N:
        return decisions.judge_best_of_runs(values, ref.test_acc, ref.runs or 1)
    return decisions.judge_single_run(values, ref.test_acc)


def _code_reasons(row: RowInput) -> list[str]:
    """Why the row's seeds are not one experiment: they ran different code (`rerun --stale` makes them one)."""
    if row.provenance is None or not row.provenance.not_comparable:
        return []
    versions = ", ".join(f"{version} ({len(seeds)})" for version, seeds in row.provenance.code.items())
    return [f"its seeds ran different code versions ({versions}): `ghostsweep rerun DIR --stale` reruns the old"]


def provenance_differences(treatment: RowInput, reference: RowInput) -> list[str]:
    """What a comparison's answer warns of: a row whose seeds ran differently (its flag), and the two rows each
    running alike but differently from each other (each aspect's value; a mixed row's flag already says it)."""
    ours, theirs = treatment.provenance, reference.provenance
    if ours is None or theirs is None:
        return []
    warnings = [f"{row.label} {provenance.flag.removeprefix('⚠ ')}"
                for row, provenance in ((treatment, ours), (reference, theirs)) if provenance.flag]
    for aspect in ours.differs_from(theirs):
        if aspect not in ours.mixed + theirs.mixed:
            warnings.append(f"{PROVENANCE_ASPECTS[aspect]} differs between the rows "
                            f"({' / '.join(ours.values(aspect))} vs {' / '.join(theirs.values(aspect))})")
    return warnings


def _without_test(verdict: Verdict, reason: str, n: int, margin: float, to_decide: str = "") -> Judgement:
    return Judgement("none", n, margin, verdict, reason, to_decide=to_decide, final_verdict=verdict,
                     final_reason=reason)


def _pending(*rows: SeedOutcomes, margin: float = decisions.LEVEL_MARGIN_PP) -> Judgement | None:
    """Inconclusive while a row has planned seeds not yet done: its verdict waits for them (judging the seeds that
    happen to finish first would let the verdict change with the order trials end in)."""
    pending = sorted({seed for outcomes in rows for seed in outcomes.pending})
    if not pending:
        return None
    waiting = "judged once it is done" if len(pending) == 1 else "judged once they are done"
    return _without_test(Verdict.INCONCLUSIVE, f"planned {decisions.name_seeds(pending)} not done yet", min(
        len(outcomes.done) for outcomes in rows), margin, waiting)


def _short(method: str) -> str:
    return {"Welch interval of the difference of means": "Welch 95% interval (paper's mean ± std)"}.get(
        method, f"95% {method}")


def row_options(row: RowInput) -> dict[str, Any]:
    """The row's model options, defaults filled in: which published numbers are about it."""
    prefix = "model_options."
    return model_options(row.model) | {k.removeprefix(prefix): v for k, v in row.settings.items()
                                       if k.startswith(prefix)}


def analyse_row(row: RowInput, target: float) -> RowSummary:
    """The row's summaries and its published numbers judged (not yet adjusted)."""
    done_seeds = sorted(row.values[Metric.FINAL])
    missing = [s for s in row.seeds_planned if s not in row.values[Metric.FINAL]]
    notes = list(row.notes)
    paper_iterations = RECIPE_PRESETS[paper_recipe(row.model)].iterations
    if row.iterations is not None and row.iterations != paper_iterations:
        notes.append(f"{row.iterations:,} iterations, not the papers' {paper_iterations:,}")
    if row.two_stage is not None:
        notes.append(f"seeds chosen by `extend`: {row.two_stage.describe()}; the final CI is Stein's")
    references = [judge_reference(ref, row) for ref in references_for(row.model, row_options(row))
                  if ref.test_acc is not None]
    return RowSummary(
        row.group, row.label, row.variant, row.model, model_info(row.model).family, row.first_layer, row.block_norm,
        row.settings, len(row.seeds_planned), done_seeds, missing,
        *(summarise(row.values[metric], target, row.two_stage if metric is Metric.FINAL else None)
          for metric in Metric), row.params, row.macs, row.gpu_hours, row.cpu_hours, references, notes,
        row.outcomes, row.two_stage, row.provenance,
    )


@dataclass(frozen=True)
class Pairing:
    """Two rows that differ in one factor: Δ = treatment − reference."""

    factor: str  # "model", "model_options", "runtime", "recipe", "data"
    treatment: RowInput
    reference: RowInput
    differing: tuple[str, ...]


def find_pairings(rows: Sequence[RowInput], baseline_of: Callable[[str], str | None]) -> list[Pairing]:
    """Every pair of rows that differ in exactly one factor, in plan order. Only pairs that can qualify are
    tried (`_candidate_pairs`), so a sweep of many rows (500 learning rates) is not quadratic."""
    pairings = []
    for i, j in _candidate_pairs(rows):
        pairing = _pair(rows[i], rows[j], baseline_of) or _pair(rows[j], rows[i], baseline_of)
        if pairing is not None:
            pairings.append(pairing)
    return pairings


def _candidate_pairs(rows: Sequence[RowInput]) -> list[tuple[int, int]]:
    """Index pairs (i < j, sorted) that include every pair `_pair` accepts in either order: rows equal outside
    the model (a Ghost model and its baseline), or of one model, equal outside one section, where the reference
    equals the treatment on each of its own non-default settings."""
    keys = sorted({key for row in rows for key in row.settings})
    values = [{key: json.dumps(row.settings.get(key)) for key in keys} for row in rows]
    candidates: set[tuple[int, int]] = set()

    def add(i: int, j: int) -> None:
        if i != j:
            candidates.add((min(i, j), max(i, j)))

    beside_model = [key for key in keys if key != "model" and not key.startswith("model_options.")]
    for members in _buckets(range(len(rows)), lambda i: tuple(values[i][key] for key in beside_model)):
        for position, i in enumerate(members):
            for j in members[position + 1:]:
                if rows[i].model != rows[j].model:
                    add(i, j)
    for section in dict.fromkeys(key.partition(".")[0] for key in keys):
        inside = [key for key in keys if key.partition(".")[0] == section]
        outside = [key for key in keys if key.partition(".")[0] != section]
        for members in _buckets(range(len(rows)),
                                lambda i, outside=outside: (rows[i].model, *(values[i][key] for key in outside))):
            by_pattern: dict[tuple[str, ...], dict[tuple[str, ...], list[int]]] = {}
            for j in members:  # j as the reference: a treatment agrees with it wherever it is not at its default
                own = tuple(key for key in inside if values[j][key] != json.dumps(rows[j].defaults.get(key)))
                if own not in by_pattern:
                    by_pattern[own] = {}
                    for i in members:
                        by_pattern[own].setdefault(tuple(values[i][key] for key in own), []).append(i)
                for i in by_pattern[own][tuple(values[j][key] for key in own)]:
                    add(i, j)
    return sorted(candidates)


def _buckets(indices: Iterable[int], key: Callable[[int], Any]) -> list[list[int]]:
    buckets: dict[Any, list[int]] = {}
    for index in indices:
        buckets.setdefault(key(index), []).append(index)
    return [members for members in buckets.values() if len(members) > 1]


def _pair(a: RowInput, b: RowInput, baseline_of: Callable[[str], str | None]) -> Pairing | None:
    """a as the treatment and b as its reference, when that is how they differ.

    A Ghost model's reference is its baseline, all else equal. Otherwise the reference leaves every differing
    setting at its default, and the settings differ in one section (the fast runtime changes several runtime
    fields at once) or in one model option: two options changed at once answer no single question, and two
    non-default values (lr 0.05 against lr 0.2) are each compared with the default instead.
    """
    differing = tuple(sorted(k for k in a.settings.keys() | b.settings.keys()
                             if json.dumps(a.settings.get(k)) != json.dumps(b.settings.get(k))))
    if not differing:
        return None
    if a.model != b.model:
        rest = [k for k in differing if k != "model" and not k.startswith("model_options.")]
        if baseline_of(a.model) == b.model and not rest:
            return Pairing("model", a, b, differing)
        return None
    sections = {k.partition(".")[0] for k in differing}
    if len(sections) != 1 or (sections == {"model_options"} and len(differing) > 1):
        return None
    if not all(json.dumps(b.settings.get(k)) == json.dumps(b.defaults.get(k)) for k in differing):
        return None
    return Pairing(sections.pop(), a, b, differing)


def describe_difference(pairing: Pairing) -> str:
    """What minus what, in words: `ghost_resnet56 − resnet56`, `first_layer ghost − conv`."""
    if pairing.factor == "model":
        return f"{pairing.treatment.label} − {pairing.reference.label}"
    parts_t = ", ".join(f"{_key(k)}={pairing.treatment.settings.get(k)}" for k in pairing.differing)
    parts_r = ", ".join(f"{_key(k)}={pairing.reference.settings.get(k)}" for k in pairing.differing)
    return f"{pairing.treatment.variant}: {parts_t} − {parts_r}"


def _key(key: str) -> str:
    return key.partition(".")[2] if key.startswith("model_options.") else key


def analyse_pairing(pairing: Pairing, target: float) -> Comparison:
    """Δ of the final test accuracy, paired by seed and Welch, the method rule 5 chooses between them, the size
    ratios, and the paper's claims judged (not yet adjusted)."""
    t_values, r_values = pairing.treatment.values[Metric.FINAL], pairing.reference.values[Metric.FINAL]
    paired = stats.paired_interval(t_values, r_values)
    welch = None
    if len(t_values) >= 2 and len(r_values) >= 2:
        welch = stats.welch_interval(stats.Sample.of(list(t_values.values())),
                                     stats.Sample.of(list(r_values.values())))
    common = sorted(set(t_values) & set(r_values))
    method = decisions.choose_difference_method(len(common), len(t_values), len(r_values))
    differences = [t_values[s] - r_values[s] for s in common]
    spread = stats.Sample.of(differences).std if len(differences) >= 2 else None
    params_ratio = _ratio(pairing.treatment.params, pairing.reference.params)
    macs_ratio = _ratio(pairing.treatment.macs, pairing.reference.macs)
    return Comparison(
        pairing.factor, pairing.treatment.group, pairing.reference.group, pairing.treatment.label,
        pairing.reference.label, describe_difference(pairing), list(pairing.differing), len(common), paired, welch,
        stats.seeds_for_halfwidth(spread, target), params_ratio, macs_ratio,
        [_judge_claim(pairing, ref_t, ref_r) for ref_t, ref_r in _claim_references(pairing)],
        method, pairing.treatment.outcomes, pairing.reference.outcomes,
        provenance_differences(pairing.treatment, pairing.reference),
        decisions.difference_spread_negligible(method, t_values, r_values),
    )


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _claim_references(pairing: Pairing) -> list[tuple[Reference, Reference]]:
    """Pairs of published numbers from one source for the two models: the source's own Δ (a model comparison
    only; a source does not publish our option or runtime variants)."""
    if pairing.factor != "model":
        return []
    reference, treatment = pairing.reference, pairing.treatment
    by_source = {ref.source.key: ref for ref in references_for(reference.model, row_options(reference))
                 if ref.test_acc}
    return [(ref, by_source[ref.source.key]) for ref in references_for(treatment.model, row_options(treatment))
            if ref.test_acc and ref.source.key in by_source]


def _judge_claim(pairing: Pairing, ref_t: Reference, ref_r: Reference) -> Claim:
    """The source's Δ (two single runs): our 95% prediction interval for such a difference, and the three-valued
    judgement of our Δ − theirs at the margin `decisions.difference_margin` (not comparable when either number's
    recipe differs from its row's)."""
    claim = ref_t.test_acc - ref_r.test_acc
    t_values, r_values = pairing.treatment.values[Metric.FINAL], pairing.reference.values[Metric.FINAL]
    interval = None
    if len(t_values) >= 2 and len(r_values) >= 2:
        interval = stats.difference_prediction_interval(list(t_values.values()), list(r_values.values()))
    return Claim(ref_t.source.key, claim, _ratio(ref_t.params, ref_r.params), _ratio(ref_t.macs, ref_r.macs),
                 interval, _judge_published_delta(pairing.treatment, ref_t, pairing.reference, ref_r, claim))


def _judge_published_delta(treatment: RowInput, ref_t: Reference, reference: RowInput, ref_r: Reference,
                           published_delta: float) -> Judgement:
    """A published Δ (ref_t − ref_r, two single runs) against our treatment − reference, unpaired, at the margin
    `decisions.difference_margin`: not comparable when either number's recipe differs from its row's or the
    seeds ran different code, inconclusive while seeds are pending (not yet adjusted)."""
    t_values, r_values = treatment.values[Metric.FINAL], reference.values[Metric.FINAL]
    margin = decisions.difference_margin(published_delta)
    reasons = [f"{row.label}: {reason}" for ref, row in ((ref_t, treatment), (ref_r, reference))
               for reason in comparability(ref, row.settings)]
    reasons += [f"{row.label}: {reason}" for row in (treatment, reference) for reason in _code_reasons(row)]
    if _code_differs(treatment, reference):
        reasons.append("the rows ran different code versions")
    if reasons:
        return _without_test(Verdict.NOT_COMPARABLE, "; ".join(reasons), min(len(t_values), len(r_values)), margin)
    return _pending(treatment.outcomes, reference.outcomes, margin=margin) or \
        decisions.judge_published_difference(list(t_values.values()), list(r_values.values()), published_delta)


def _code_differs(treatment: RowInput, reference: RowInput) -> bool:
    ours, theirs = treatment.provenance, reference.provenance
    return ours is not None and theirs is not None and "code" in ours.differs_from(theirs)


DifferencesByValue = dict[Any, JudgedAblationDifference]  # an ablation's judged published Δs, by option value


def _rows_on_curve(ablation: Ablation, rows: Sequence[RowInput]) -> dict[Any, int]:
    """Option value → the index of the first row at it with every other option at its default."""
    defaults = model_options(ablation.model)
    on_curve: dict[Any, int] = {}
    for index, row in enumerate(rows):
        options = row_options(row)
        if row.model == ablation.model and all(options[k] == v for k, v in defaults.items() if k != ablation.option):
            on_curve.setdefault(options[ablation.option], index)
    return on_curve


def judge_ablation_differences(ablation: Ablation, rows: Sequence[RowInput]) -> DifferencesByValue:
    """Each published Δ of the curve (value − the reference value) whose two rows are in the sweep: our Δ by rule
    5's method and the judgement of ours − published (not yet adjusted), by value."""
    on_curve = _rows_on_curve(ablation, rows)
    judged = {}
    for published in ablation_differences(ablation):
        if published.value not in on_curve or published.reference_value not in on_curve:
            continue
        treatment, reference = rows[on_curve[published.value]], rows[on_curve[published.reference_value]]
        t_values, r_values = treatment.values[Metric.FINAL], reference.values[Metric.FINAL]
        method = decisions.choose_difference_method(len(t_values.keys() & r_values.keys()), len(t_values),
                                                    len(r_values))
        judged[published.value] = JudgedAblationDifference(
            published.reference_value, published.published_delta, decisions.difference_interval(t_values, r_values),
            method, decisions.difference_spread_negligible(method, t_values, r_values),
            _judge_published_delta(treatment, published.reference, reference, published.baseline,
                                   published.published_delta))
    return judged


def analyse_ablation(ablation: Ablation, rows: Sequence[RowInput], analysed: Sequence[RowSummary],
                     differences: Mapping[Any, JudgedAblationDifference]) -> AblationCurve | None:
    """A published ablation curve beside our rows along it (the option varied, every other option at its default;
    the first such row per value): per value, our final test accuracy and the paper's, judged as for the row, and
    the published Δ against the reference value (`differences`, adjusted). None when fewer than two of our rows lie
    on the curve."""
    published = ablation_points(ablation)
    ours: dict[Any, tuple[RowInput, RowSummary, JudgedReference | None]] = {}
    for value, index in _rows_on_curve(ablation, rows).items():
        row, result = rows[index], analysed[index]
        judged = next((ref for ref in result.references if ref.source == ablation.source.key
                       and value in published and ref.test_acc == published[value].test_acc), None)
        ours[value] = (row, result, judged)
    if len(ours) < 2:
        return None
    points = [_ablation_point(value, ours.get(value), published.get(value), differences.get(value))
              for value in sorted(ours.keys() | published.keys())]
    return AblationCurve(ablation.model, ablation.option, ablation.source.key, ablation.where, points,
                         _ablation_baseline(ablation, rows, analysed))


def _ablation_point(value: Any, ours: tuple[RowInput, RowSummary, JudgedReference | None] | None,
                    ref: Reference | None, difference: JudgedAblationDifference | None) -> AblationPoint:
    """Our row at this value (if any) beside the published number (if any) and the published Δ (if judged)."""
    row, result, judged = ours or (None, None, None)
    final = result.final_test_acc if result else Summary(0)
    return AblationPoint(
        value, row and row.label, row and row.group, final.n, final.mean, final.std, final.ci_low, final.ci_high,
        row and row.params, row and row.macs, judged and judged.ours_minus_paper, judged and judged.verdict,
        judged and verdict_phrase(judged.judgement), ref and ref.test_acc, ref and ref.params, ref and ref.macs,
        difference, result and result.provenance_flag,
    )


def _ablation_baseline(ablation: Ablation, rows: Sequence[RowInput], analysed: Sequence[RowSummary]
                       ) -> AblationBaseline | None:
    """The curve's reference line: the model's baseline (vgg16 for ghost_vgg16), ours (its first row) and the
    source's number."""
    baseline = model_info(ablation.model).baseline
    if baseline is None:
        return None
    published = next((ref for ref in references_for(baseline) if ref.source == ablation.source), None)
    row, result = next(((row, result) for row, result in zip(rows, analysed, strict=True) if row.model == baseline),
                       (None, None))
    final = result.final_test_acc if result else Summary(0)
    return AblationBaseline(
        baseline, row and row.label, row and row.group, final.n, final.mean, final.std, final.ci_low, final.ci_high,
        row and row.params, row and row.macs, published and published.test_acc, published and published.params,
        published and published.macs, result and result.provenance_flag,
    )


def analyse(rows: Sequence[RowInput], baseline_of: Callable[[str], str | None],
            target: float = DEFAULT_TARGET_HALFWIDTH_PP) -> Conclusions:
    """The report's conclusions: rows, comparisons (the paper's question first), and the published ablation
    curves our rows lie on; every judgement Holm-adjusted over the report's family (decisions.adjust)."""
    comparisons = [analyse_pairing(p, target) for p in find_pairings(rows, baseline_of)]
    comparisons.sort(key=lambda c: c.factor != "model")  # the paper's question first
    differences = [judge_ablation_differences(ablation, rows) for ablation in ABLATIONS]
    analysed, comparisons, differences, family_size = _adjusted(
        [analyse_row(row, target) for row in rows], comparisons, differences)
    ablations = [analyse_ablation(ablation, rows, analysed, judged)
                 for ablation, judged in zip(ABLATIONS, differences, strict=True)]
    return Conclusions(target, analysed, comparisons, [ablation for ablation in ablations if ablation is not None],
                       family_size)


def _adjusted(rows: list[RowSummary], comparisons: list[Comparison], differences: list[DifferencesByValue]
              ) -> tuple[list[RowSummary], list[Comparison], list[DifferencesByValue], int]:
    """The rows, comparisons and ablation differences with every judgement (published numbers, published Δs of
    the comparisons, then of the ablations) Holm-adjusted as one report's family, and the family's size (the
    judgements with a test)."""
    judgements = [ref.judgement for row in rows for ref in row.references]
    judgements += [claim.judgement for comparison in comparisons for claim in comparison.claims]
    judgements += [difference.judgement for by_value in differences for difference in by_value.values()]
    adjusted = iter(decisions.adjust(judgements))
    family_size = sum(j.p_difference is not None and j.verdict is not Verdict.NOT_COMPARABLE for j in judgements)
    rows = [replace(row, references=[replace(ref, judgement=next(adjusted)) for ref in row.references])
            for row in rows]
    comparisons = [replace(comparison, claims=[replace(claim, judgement=next(adjusted))
                                               for claim in comparison.claims]) for comparison in comparisons]
    differences = [{value: replace(difference, judgement=next(adjusted)) for value, difference in by_value.items()}
                   for by_value in differences]
    return rows, comparisons, differences, family_size
