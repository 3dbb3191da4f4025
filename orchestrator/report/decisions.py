"""Verdicts a statistician would sign (issue 24): what a published number's judgement may conclude, how a report's
many judgements share one error rate, how a comparison picks its test, and how `extend` picks n without losing
coverage. Pure functions; the report and `extend` wire them in.

Rule 1, three values. δ is *ours − published* (for a published Δ: our Δ − theirs). Two tests judge it:
- the difference test, H0: δ = 0, two-sided at 5% (its 95% interval);
- the equivalence test (TOST), H0: |δ| ≥ margin, at 5%: the 90% interval lies inside ±margin; its p-value is the
  larger of the two one-sided ones.
CONSISTENT only when equivalence holds: our seeds could have told a difference of `margin` apart. NOT_CONSISTENT
when the difference test rejects and equivalence does not hold. INCONCLUSIVE otherwise, and always for fewer than 2
of our seeds or a negligible observed spread, below `NEGLIGIBLE_SPREAD_PP` (no interval can be computed; such a spread
means runs that do not vary by seed), with the reason. NOT_COMPARABLE is the caller's, for a published recipe that
differs from ours: no test applies.
A wide interval that holds both 0 and ±margin is INCONCLUSIVE, not agreement: before this rule, 2 seeds' ±2.2 pp
interval read "consistent" with everything.
For INCONCLUSIVE, the seeds that would decide it: the fewest of our seeds at which, at the observed estimate and
spread, either test would decide (at the unadjusted 5%), or the floor no number of our seeds can pass: a published
single run carries its own seed noise, which more of our seeds do not remove.

Rule 2, margins (module constants; a spec may override them):
- a published accuracy: ±`LEVEL_MARGIN_PP` = 0.5 pp, about two seed standard deviations of a CIFAR-10 ResNet
  (0.2–0.3 pp): as close as a second run of the authors' own code typically lands, and smaller than the gaps that
  order the models in the papers' tables;
- a published Δ (a claim): its own size |Δ|, at least `DIFFERENCE_MARGIN_FLOOR_PP` = 0.2 pp. A discrepancy as large
  as the claim means the effect could be absent or doubled; below 0.2 pp (under one seed std) equivalence would
  take hundreds of seeds, and 0.2 pp is the sweep's default precision target.

Rule 3, the discrepancy distribution per published kind. Each gives an estimate of δ, a scale, and the distribution
of (estimate − δ)/scale, exact under a normal model of seeds unless said:
- a single run (also "test-selected", against our max over evaluations, and "unknown"): ours' mean − the run,
  scale s·√(1 + 1/n), Student's t with n − 1 df (the prediction interval's test; its floor: 1.645·s as n → ∞);
- a mean of m runs ± std: Welch's t (Welch–Satterthwaite df, approximate); without a published std (or m = 1), our
  spread is assumed for theirs: scale s·√(1/m + 1/n), t with n − 1 df;
- the best of m runs: the median of our predictive best of m − the published best, scale s; the pivot
  (best of m − mean)/s = (M − Z/√n)/V, M the max of m standard normals, Z standard normal, V² ~ χ²(n−1)/(n−1),
  is free of the parameters, so its Monte Carlo distribution (`stats.BEST_OF_DRAWS` draws, fixed seed) gives exact
  tests up to Monte Carlo error (the seeds that would decide it: `PLAN_DRAWS`); it is `stats.best_of_interval`'s
  predictive, standardised;
- a published Δ of two single runs against our two rows: our Δ of means − theirs, scale
  √(s_a²(1 + 1/n_a) + s_b²(1 + 1/n_b)), Satterthwaite df (`stats.difference_prediction_interval`'s). Our rows enter
  unpaired: the published pair's own noise, √2·σ, dominates, and sets the floor.

Rule 4, multiplicity. A report makes 30–40 judgements; at 5% each, a false "not consistent" somewhere is more
likely than not. Holm's step-down (`holm`) adjusts the difference tests of one report as one family, and the
equivalence tests as another: each family's error (a false NOT_CONSISTENT; a false CONSISTENT) has family-wise rate
at most 5%. `adjust` returns the judgements with adjusted p-values and the final verdicts the answer sentences use;
a test that decides before the adjustment but not after says both.

Rule 5, paired or Welch, stated before the data: paired by seed when at least `MIN_PAIRS` = 3 seeds pair; else
Welch on all seeds when both rows have at least 2; else no interval. With 2 pairs the paired t has 1 df
(t = 12.7), far wider than Welch on all seeds.

Rule 6, `extend --until-halfwidth` by Stein's two-stage procedure: a pilot of n0 ≥ 3 seeds (2 df to plan from)
gives s0; n = max(n0, ⌈(t(n0−1) · s0 / h)²⌉), capped; the interval is the mean of all n seeds
± t(n0−1) · s0 / √n, the pilot's spread and df. Its coverage is exact (n depends on s0 only, and the mean is
independent of s0), the cap included: a capped n gives a half-width above h, not a lower coverage. Planning n from
the observed spread and then computing a fixed-n t-interval covers 0.90–0.93 instead of 0.95. The pilot is fixed
once: a later plan (`replan`) keeps its n0 and s0 and only tops n up; taking the seeds done by then as a new pilot
would make stage-2 seeds, whose number depended on s0, part of the pilot.

Rule 7, failed and diverged seeds are outcomes, not missing data: a comparison lists the seeds lost from either row,
and notes that when losing a seed depends on the model, the surviving seeds are a selected sample.

Only `scipy.special` is imported, and numpy only for the best of m, when a number is computed (as in stats.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol

from ghostsweep.orchestrator.report import stats

if TYPE_CHECKING:
    import numpy as np

ALPHA = 0.05  # each test's level: the difference test's 95% interval, the equivalence test's 90% one
LEVEL_MARGIN_PP = 0.5  # equivalence margin for a published accuracy: rule 2
DIFFERENCE_MARGIN_FLOOR_PP = 0.2  # the least equivalence margin for a published Δ: rule 2
MIN_PAIRS = 3  # rule 5: fewer pairs give the paired t too few df
MIN_PILOT_SEEDS = 3  # rule 6: a pilot of 2 seeds plans from 1 df
PLAN_SEED_LIMIT = 1000  # "seeds that would decide it" beyond this are reported as "more than"
PLAN_DRAWS = 20_000  # Monte Carlo draws of a best-of-m pivot while searching the seeds that would decide it
_UNLIMITED_SEEDS = 10**6  # where the floor (as many of our seeds as one likes) is measured
_PIVOT_CACHE = 128  # best-of-m pivots kept (1.6 MB for a judgement's, 160 kB for a planning search's)
# A spread below this is no spread: half the 0.01 pp resolution of CIFAR-10's 10,000-image test set (one image), so
# seeds that differ by less gave the same accuracy up to rounding; an interval from it would be of zero width.
NEGLIGIBLE_SPREAD_PP = 0.005

STEIN_PROCEDURE = "Stein's two-stage procedure (n and the interval's spread and df from the pilot seeds)"


class Verdict(StrEnum):
    """What a judgement concludes (rule 1)."""

    CONSISTENT = "consistent"  # equivalence within the margin holds
    INCONCLUSIVE = "inconclusive"  # neither test decides, or no interval
    NOT_CONSISTENT = "not consistent"  # the difference test rejects and equivalence does not hold
    NOT_COMPARABLE = "not comparable"  # set by the caller: the published recipe differs from ours


def difference_margin(published_delta: float) -> float:
    """The equivalence margin for a published Δ (rule 2): its own size, at least the floor."""
    return max(abs(published_delta), DIFFERENCE_MARGIN_FLOOR_PP)


def decide(p_difference: float, p_equivalence: float, alpha: float = ALPHA) -> Verdict:
    """Rule 1 on two p-values (raw, or Holm-adjusted)."""
    if p_equivalence < alpha:
        return Verdict.CONSISTENT
    if p_difference < alpha:
        return Verdict.NOT_CONSISTENT
    return Verdict.INCONCLUSIVE


@dataclass(frozen=True)
class Judgement:
    """A published number (or Δ) against our seeds. `verdict` and `reason` are before adjustment; `adjust` fills
    the adjusted p-values and `final_verdict` / `final_reason`, which the report's sentences use."""

    method: str
    n: int  # our seeds (for a Δ, the smaller row)
    margin: float
    verdict: Verdict
    reason: str
    estimate: float | None = None  # δ: ours − published
    interval: tuple[float, float] | None = None  # 95%, the difference test's
    equivalence_interval: tuple[float, float] | None = None  # 90%, the equivalence test's
    p_difference: float | None = None  # H0: δ = 0
    p_equivalence: float | None = None  # H0: |δ| ≥ margin (TOST: the larger one-sided p)
    seeds_to_decide: int | None = None  # our seeds (per row) at which a test would decide; None: see `to_decide`
    to_decide: str = ""  # that in words, or why no number of seeds can
    p_difference_adjusted: float | None = None
    p_equivalence_adjusted: float | None = None
    final_verdict: Verdict | None = None
    final_reason: str = ""

    def as_not_comparable(self, why: str) -> Judgement:
        """The caller's verdict when the published recipe differs from ours; `adjust` leaves it out of the tests."""
        return replace(self, verdict=Verdict.NOT_COMPARABLE, reason=why, final_verdict=Verdict.NOT_COMPARABLE,
                       final_reason=why)


class _Pivot(Protocol):
    def cdf(self, x: float) -> float: ...

    def quantile(self, q: float) -> float: ...


@dataclass(frozen=True)
class _StudentT:
    df: float

    def cdf(self, x: float) -> float:
        from scipy.special import stdtr

        return float(stdtr(self.df, x))

    def quantile(self, q: float) -> float:
        from scipy.special import stdtrit

        return float(stdtrit(self.df, q))


@dataclass(frozen=True)
class _Sampled:
    samples: np.ndarray  # sorted Monte Carlo draws

    def cdf(self, x: float) -> float:
        import numpy as np

        return float(np.searchsorted(self.samples, x, side="right")) / len(self.samples)

    def quantile(self, q: float) -> float:
        """numpy's default (linear) quantile, read off the sorted draws."""
        position = q * (len(self.samples) - 1)
        below = min(int(position), len(self.samples) - 2)
        return float(self.samples[below] + (position - below) * (self.samples[below + 1] - self.samples[below]))


@dataclass(frozen=True)
class _Discrepancy:
    """δ̂ = ours − published, and (δ̂ − δ)/scale ~ pivot."""

    estimate: float
    scale: float
    pivot: _Pivot

    def interval(self, level: float) -> tuple[float, float]:
        tail = (1 - level) / 2
        return (self.estimate - self.scale * self.pivot.quantile(1 - tail),
                self.estimate - self.scale * self.pivot.quantile(tail))

    def p_difference(self) -> float:
        below = self.pivot.cdf(self.estimate / self.scale)
        return min(1.0, 2 * min(below, 1 - below))

    def p_equivalence(self, margin: float) -> float:
        """TOST: H0 δ ≤ −margin is rejected by a large estimate, H0 δ ≥ margin by a small one."""
        p_low = 1 - self.pivot.cdf((self.estimate + margin) / self.scale)
        p_high = self.pivot.cdf((self.estimate - margin) / self.scale)
        return max(p_low, p_high)

    def decides(self, margin: float, alpha: float) -> bool:
        return self.p_equivalence(margin) < alpha or self.p_difference() < alpha


def _judge(method: str, n: int, margin: float, now: _Discrepancy, at: Callable[[int], _Discrepancy],
           floor_cause: str, alpha: float = ALPHA) -> Judgement:
    """Rule 1 on a discrepancy; `at(k)` is it with k of our seeds (per row) at the observed estimate and spread."""
    p_difference, p_equivalence = now.p_difference(), now.p_equivalence(margin)
    verdict = decide(p_difference, p_equivalence, alpha)
    interval, equivalence = now.interval(1 - alpha), now.interval(1 - 2 * alpha)
    seeds, to_decide = (None, "") if verdict is not Verdict.INCONCLUSIVE else _seeds_to_decide(
        now.estimate, n, margin, at, floor_cause, alpha)
    return Judgement(method, n, margin, verdict, _reason(verdict, interval, equivalence, margin, p_difference,
                                                         p_equivalence, alpha), now.estimate, interval, equivalence,
                     p_difference, p_equivalence, seeds, to_decide)


def _reason(verdict: Verdict, interval: tuple[float, float], equivalence: tuple[float, float], margin: float,
            p_difference: float, p_equivalence: float, alpha: float,
            adjusted: tuple[float, float, int] | None = None) -> str:
    """Why `verdict`, from the raw p-values and the (raw) intervals; with `adjusted` (Holm's two p-values and the
    family's size) the verdict is the adjusted one, and a test that decides only before the adjustment says so,
    so that the text never contradicts the interval it prints."""
    inside = f"the 90% interval [{equivalence[0]:+.2f}, {equivalence[1]:+.2f}] pp"
    rejects = f"the 95% interval [{interval[0]:+.2f}, {interval[1]:+.2f}] pp"
    p_diff, p_eq, holm = p_difference, p_equivalence, ""
    if adjusted is not None:
        p_diff, p_eq, family = adjusted
        holm = f", Holm-adjusted over {family} tests"
    if verdict is Verdict.CONSISTENT:
        return f"{inside} lies inside ±{margin:.2f} pp (equivalence p={p_eq:.3g}{holm})"
    undone = f"but not after Holm's adjustment over {family} tests" if adjusted is not None else ""
    equivalence_undone = p_equivalence < alpha <= p_eq
    difference_undone = p_difference < alpha <= p_diff
    inside_before = (f"{inside} lies inside ±{margin:.2f} pp (equivalence p={p_equivalence:.3g}), {undone} "
                     f"(p={p_eq:.3g})")
    if verdict is Verdict.NOT_CONSISTENT:
        outside = inside_before if equivalence_undone else f"{inside} is not inside ±{margin:.2f} pp"
        return f"{rejects} excludes 0 (p={p_diff:.3g}{holm}) and {outside}"
    if not (equivalence_undone or difference_undone):
        return (f"neither test decides: {rejects} (p={p_diff:.3g}{holm}) and {inside} "
                f"(equivalence p={p_eq:.3g}{holm}) against ±{margin:.2f} pp")
    difference = (f"{rejects} excludes 0 (p={p_difference:.3g}), {undone} (p={p_diff:.3g})" if difference_undone
                  else f"{rejects} holds 0 (p={p_diff:.3g}{holm})")
    equivalence_text = inside_before if equivalence_undone else (
        f"{inside} is not inside ±{margin:.2f} pp (equivalence p={p_eq:.3g}{holm})")
    return f"neither test decides after Holm's adjustment: {difference}; {equivalence_text}"


def _seeds_to_decide(estimate: float, n: int, margin: float, at: Callable[[int], _Discrepancy], floor_cause: str,
                     alpha: float) -> tuple[int | None, str]:
    """The fewest seeds k > n at which `at(k)` decides (both tests tighten as k grows), or the floor."""
    if n < PLAN_SEED_LIMIT and at(PLAN_SEED_LIMIT).decides(margin, alpha):
        low, high = n, PLAN_SEED_LIMIT  # at(low) does not decide, at(high) does
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (low, middle) if at(middle).decides(margin, alpha) else (middle, high)
        return high, f"{high} of our seeds would decide it at the observed spread and estimate"
    unlimited = at(_UNLIMITED_SEEDS)
    if unlimited.decides(margin, alpha):
        return None, f"more than {PLAN_SEED_LIMIT} of our seeds would be needed at the observed spread and estimate"
    low, high = unlimited.interval(1 - 2 * alpha)
    return None, (f"no number of our seeds can decide it: {floor_cause} keeps the 90% interval at "
                  f"[{low:+.2f}, {high:+.2f}] pp at best, not inside ±{margin:.2f} pp, and a difference of "
                  f"{estimate:+.2f} pp is within what that noise makes at 5%")


def negligible_spread(values: Sequence[float]) -> bool:
    """At least 2 values whose std is below `NEGLIGIBLE_SPREAD_PP`: no interval can be made from them."""
    return len(values) >= 2 and (stats.Sample.of(values).std or 0.0) < NEGLIGIBLE_SPREAD_PP


NO_SPREAD = f"the seeds' spread is negligible (< {NEGLIGIBLE_SPREAD_PP:g} pp)"


def _no_interval(method: str, values: Sequence[Sequence[float]], margin: float) -> Judgement | None:
    """Rule 1's INCONCLUSIVE without a test: fewer than 2 seeds, or a negligible spread, in any of our rows."""
    n = min(len(v) for v in values)
    if n < 2:
        return Judgement(method, n, margin, Verdict.INCONCLUSIVE, f"{n} seed(s): no spread, no interval",
                         to_decide=f"{MIN_PILOT_SEEDS} seeds to estimate the spread first")
    if any(negligible_spread(v) for v in values):
        return Judgement(method, n, margin, Verdict.INCONCLUSIVE,
                         f"no interval: {NO_SPREAD} over {n} seeds: every seed gave the same accuracy, so the "
                         "interval would have zero width; seeds that do not vary are not a sample of seed noise",
                         to_decide="runs that vary by seed")
    return None


def judge_single_run(values: Sequence[float], published: float, margin: float = LEVEL_MARGIN_PP) -> Judgement:
    """A published single run (also test-selected or unknown) against our seeds (rule 3)."""
    method = "single published run: t test of ours − published, scale s·√(1 + 1/n) (prediction interval)"
    if (early := _no_interval(method, [values], margin)) is not None:
        return early
    sample = stats.Sample.of(values)
    estimate, s = sample.mean - published, sample.std or 0.0

    def at(k: int) -> _Discrepancy:
        return _Discrepancy(estimate, s * math.sqrt(1 + 1 / k), _StudentT(k - 1))

    return _judge(method, sample.n, margin, at(sample.n), at, "the published run's own seed noise")


def judge_mean_of_runs(values: Sequence[float], published_mean: float, runs: int, published_std: float | None,
                       margin: float = LEVEL_MARGIN_PP) -> Judgement:
    """A published mean of `runs` runs (± std) against our seeds: Welch, or our spread for theirs (rule 3)."""
    welch = published_std is not None and runs >= 2
    method = (f"published mean of {runs}: Welch t test of ours − published" if welch else
              f"published mean of {runs}: t test of ours − published, our spread assumed for theirs")
    if (early := _no_interval(method, [values], margin)) is not None:
        return early
    sample = stats.Sample.of(values)
    estimate, s = sample.mean - published_mean, sample.std or 0.0

    def at(k: int) -> _Discrepancy:
        if not welch:
            return _Discrepancy(estimate, s * math.sqrt(1 / runs + 1 / k), _StudentT(k - 1))
        ours, theirs = s**2 / k, (published_std or 0.0) ** 2 / runs
        df = (ours + theirs) ** 2 / (ours**2 / (k - 1) + theirs**2 / (runs - 1))
        return _Discrepancy(estimate, math.sqrt(ours + theirs), _StudentT(df))

    return _judge(method, sample.n, margin, at(sample.n), at, "the published mean's own spread")


def judge_best_of_runs(values: Sequence[float], published: float, runs: int,
                       margin: float = LEVEL_MARGIN_PP) -> Judgement:
    """A published best of `runs` runs against our seeds' predictive best of `runs` (rule 3)."""
    if runs <= 1:
        return judge_single_run(values, published, margin)
    method = (f"published best of {runs}: ours' predictive best of {runs} − published, "
              "Monte Carlo of the exact pivot")
    if (early := _no_interval(method, [values], margin)) is not None:
        return early
    sample = stats.Sample.of(values)
    s = sample.std or 0.0
    median, pivot = _best_of_pivot(sample.n, runs, stats.BEST_OF_DRAWS)
    estimate = sample.mean + s * median - published

    def at(k: int) -> _Discrepancy:
        return _Discrepancy(estimate, s, _Sampled(_best_of_pivot(k, runs, PLAN_DRAWS)[1]))

    return _judge(method, sample.n, margin, _Discrepancy(estimate, s, _Sampled(pivot)), at,
                  f"the published best of {runs}'s own seed noise")


@lru_cache(maxsize=_PIVOT_CACHE)
def _best_of_pivot(n: int, runs: int, draws: int) -> tuple[float, np.ndarray]:
    """Rule 3's pivot for the best of `runs` against n seeds: T = (best of runs − mean)/s = (M − Z/√n)/V by Monte
    Carlo (M by inversion, Φ⁻¹(U^(1/runs))), its median, and (δ̂ − δ)/s = median − T, sorted."""
    import numpy as np
    from scipy.special import ndtri

    rng = np.random.default_rng(stats.BEST_OF_SEED)
    best = ndtri(rng.random(draws) ** (1 / runs))
    spread = np.sqrt(rng.chisquare(n - 1, draws) / (n - 1))
    best_minus_mean = (best - rng.standard_normal(draws) / math.sqrt(n)) / spread
    median = float(np.median(best_minus_mean))
    pivot = np.sort(median - best_minus_mean)
    pivot.flags.writeable = False
    return median, pivot


def judge_published_difference(treatment: Sequence[float], reference: Sequence[float], published_delta: float,
                               margin: float | None = None) -> Judgement:
    """A published Δ of two single runs (treatment − reference) against our two rows, unpaired (rule 3).
    The margin defaults to `difference_margin(published_delta)`."""
    margin = difference_margin(published_delta) if margin is None else margin
    method = "published Δ of two single runs: Satterthwaite t test of our Δ − published Δ (unpaired prediction)"
    if (early := _no_interval(method, [treatment, reference], margin)) is not None:
        return early
    a, b = stats.Sample.of(treatment), stats.Sample.of(reference)
    estimate, sa, sb = a.mean - b.mean - published_delta, a.std or 0.0, b.std or 0.0

    def with_seeds(na: int, nb: int) -> _Discrepancy:
        va, vb = sa**2 * (1 + 1 / na), sb**2 * (1 + 1 / nb)
        df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
        return _Discrepancy(estimate, math.sqrt(va + vb), _StudentT(df))

    return _judge(method, min(a.n, b.n), margin, with_seeds(a.n, b.n), lambda k: with_seeds(k, k),
                  "the two published runs' own seed noise")


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the input's order: the k-th smallest is multiplied by (m − k + 1),
    made non-decreasing along that order, capped at 1. Rejecting where the adjusted p < α controls the
    family-wise error rate at α under any dependence."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def adjust(judgements: Sequence[Judgement], alpha: float = ALPHA) -> list[Judgement]:
    """One report's judgements with Holm-adjusted p-values and final verdicts (rule 4): the difference tests are
    one family, the equivalence tests another; judgements without a test (no interval, not comparable) keep
    their verdict."""
    tested = [i for i, j in enumerate(judgements)
              if j.verdict is not Verdict.NOT_COMPARABLE and j.p_difference is not None and j.p_equivalence is not None]
    differences = holm([judgements[i].p_difference or 0.0 for i in tested])
    equivalences = holm([judgements[i].p_equivalence or 0.0 for i in tested])
    adjusted = [replace(j, final_verdict=j.verdict, final_reason=j.reason) for j in judgements]
    for i, p_difference, p_equivalence in zip(tested, differences, equivalences, strict=True):
        j = judgements[i]
        assert j.interval is not None and j.equivalence_interval is not None
        final = decide(p_difference, p_equivalence, alpha)
        assert j.p_difference is not None and j.p_equivalence is not None
        reason = _reason(final, j.interval, j.equivalence_interval, j.margin, j.p_difference, j.p_equivalence, alpha,
                         (p_difference, p_equivalence, len(tested)))
        adjusted[i] = replace(j, p_difference_adjusted=p_difference, p_equivalence_adjusted=p_equivalence,
                              final_verdict=final, final_reason=reason)
    return adjusted


class DifferenceMethod(StrEnum):
    """How Δ between two of our rows is estimated (rule 5)."""

    PAIRED = "paired by seed"
    WELCH = "Welch on all seeds"
    NONE = "no interval"


def choose_difference_method(n_pairs: int, n_a: int, n_b: int) -> DifferenceMethod:
    """Rule 5, fixed before the data: paired with at least `MIN_PAIRS` pairs, else Welch when both rows have
    2 seeds, else none."""
    if n_pairs >= MIN_PAIRS:
        return DifferenceMethod.PAIRED
    if n_a >= 2 and n_b >= 2:
        return DifferenceMethod.WELCH
    return DifferenceMethod.NONE


def difference_interval(a_by_seed: Mapping[int, float], b_by_seed: Mapping[int, float]) -> stats.Interval | None:
    """Δ = a − b by the method rule 5 chooses."""
    method = choose_difference_method(len(a_by_seed.keys() & b_by_seed.keys()), len(a_by_seed), len(b_by_seed))
    if method is DifferenceMethod.PAIRED:
        return stats.paired_interval(a_by_seed, b_by_seed)
    if method is DifferenceMethod.WELCH:
        return stats.welch_interval(stats.Sample.of(list(a_by_seed.values())),
                                    stats.Sample.of(list(b_by_seed.values())))
    return None


def difference_spread_negligible(method: DifferenceMethod, a_by_seed: Mapping[int, float],
                                 b_by_seed: Mapping[int, float]) -> bool:
    """Whether the spread Δ's interval rests on is negligible, so that it has no interval (as a verdict has none):
    the paired differences', or for Welch both rows'."""
    if method is DifferenceMethod.PAIRED:
        return negligible_spread([a_by_seed[s] - b_by_seed[s] for s in sorted(a_by_seed.keys() & b_by_seed.keys())])
    if method is DifferenceMethod.WELCH:
        return negligible_spread(list(a_by_seed.values())) and negligible_spread(list(b_by_seed.values()))
    return False


@dataclass(frozen=True)
class TwoStagePlan:
    """Stein's two-stage procedure for one row (or one comparison's paired differences), rule 6."""

    pilot_n: int
    pilot_std: float
    target: float  # the half-width asked for, pp
    cap: int  # most seeds in all
    total: int  # seeds in all, the pilot's included
    capped: bool  # the cap bound: the half-width will be above the target, the coverage still exact

    @property
    def seeds_to_add(self) -> int:
        return self.total - self.pilot_n

    @property
    def t_pilot(self) -> float:
        return stats.t_quantile(self.pilot_n - 1)

    @property
    def halfwidth(self) -> float:
        """The final interval's half-width with all `total` seeds done."""
        return self.t_pilot * self.pilot_std / math.sqrt(self.total)

    def interval(self, values: Sequence[float]) -> stats.Interval:
        """Stein's interval over all seeds done (the pilot's included): their mean ± t(n0−1)·s0/√n. A seed lost
        for a reason unrelated to its accuracy shrinks n without biasing the coverage."""
        if len(values) < self.pilot_n:
            raise ValueError(f"{len(values)} values: the {self.pilot_n} pilot seeds are part of the final sample")
        mean = math.fsum(values) / len(values)
        half = self.t_pilot * self.pilot_std / math.sqrt(len(values))
        return stats.Interval(mean, mean - half, mean + half, STEIN_PROCEDURE, len(values), self.pilot_n - 1)

    def describe(self) -> str:
        """One sentence for `extend` and the report."""
        why = (f"capped at {self.cap}: ±{self.halfwidth:.2f} pp, not ±{self.target:g}" if self.capped else
               f"for ±{self.target:g} pp")
        return (f"{STEIN_PROCEDURE}: pilot of {self.pilot_n} seeds, std {self.pilot_std:.2f} pp, "
                f"t({self.pilot_n - 1}) = {self.t_pilot:.2f}: {self.total} seeds in all ({why})")


def plan_two_stage(pilot: Sequence[float], target: float, cap: int) -> TwoStagePlan:
    """n = max(n0, ⌈(t(n0−1)·s0/h)²⌉), at most `cap` (never below the pilot). Zero pilot spread adds nothing (and
    its judgements are inconclusive, rule 1). Fewer than `MIN_PILOT_SEEDS` pilot seeds: ValueError, saying so."""
    if len(pilot) < MIN_PILOT_SEEDS:
        raise ValueError(f"{STEIN_PROCEDURE} needs at least {MIN_PILOT_SEEDS} pilot seeds ({MIN_PILOT_SEEDS - 1} df "
                         f"to plan from); {len(pilot)} done: run {MIN_PILOT_SEEDS - len(pilot)} more first")
    if not (math.isfinite(target) and target > 0):
        raise ValueError(f"target half-width must be > 0 pp, got {target}")
    sample = stats.Sample.of(pilot)
    return _plan(sample.n, sample.std or 0.0, target, cap)


def replan(pilot: TwoStagePlan, target: float, cap: int) -> TwoStagePlan:
    """A later plan for the row (or comparison) `pilot` planned first: its pilot's n0 and s0, so that the seeds
    added since stay stage-2 seeds (rule 6), n for this `target` and `cap`."""
    if not (math.isfinite(target) and target > 0):
        raise ValueError(f"target half-width must be > 0 pp, got {target}")
    return _plan(pilot.pilot_n, pilot.pilot_std, target, cap)


def _plan(n0: int, s0: float, target: float, cap: int) -> TwoStagePlan:
    needed = math.ceil((stats.t_quantile(n0 - 1) * s0 / target) ** 2)
    total = max(n0, min(cap, needed))
    return TwoStagePlan(n0, s0, target, cap, total, needed > total)


@dataclass(frozen=True)
class SeedOutcomes:
    """A row's seeds by outcome (rule 7): a failed or diverged seed is a result of the variant, not a gap."""

    planned: tuple[int, ...]
    done: tuple[int, ...]
    failed: tuple[int, ...]
    diverged: tuple[int, ...]

    @property
    def lost(self) -> tuple[int, ...]:
        return tuple(sorted({*self.failed, *self.diverged}))

    @property
    def pending(self) -> tuple[int, ...]:
        settled = {*self.done, *self.failed, *self.diverged}
        return tuple(s for s in self.planned if s not in settled)

    def describe(self) -> str:
        """`3 of 5 seeds done; failed: seed 3; diverged: seeds 1, 4`."""
        parts = [f"{len(self.done)} of {len(self.planned)} seeds done"]
        parts += [f"{what}: {name_seeds(seeds)}" for what, seeds in (("failed", self.failed),
                                                                     ("diverged", self.diverged)) if seeds]
        return "; ".join(parts)


def name_seeds(seeds: Sequence[int]) -> str:
    """Seed ids in words: `seed 3`, `seeds 1, 4`."""
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds))


@dataclass(frozen=True)
class LostSeeds:
    """The seeds a comparison lost from either row, and what that means for its Δ."""

    treatment: tuple[int, ...]
    reference: tuple[int, ...]
    note: str | None  # None when nothing was lost


def lost_seeds(treatment: SeedOutcomes, reference: SeedOutcomes, treatment_label: str = "treatment",
               reference_label: str = "reference") -> LostSeeds:
    """Rule 7 for a comparison: a survivorship note whenever either row lost a seed."""
    if not treatment.lost and not reference.lost:
        return LostSeeds((), (), None)
    rows = "; ".join(f"{label}: {outcomes.describe()}" for label, outcomes in
                     ((treatment_label, treatment), (reference_label, reference)) if outcomes.lost)
    note = (f"seeds lost ({rows}). Δ is over the seeds that survived; if losing a seed depends on the model (one "
            "diverges where the other does not), the survivors are a selected sample and Δ leans their way")
    return LostSeeds(treatment.lost, reference.lost, note)
