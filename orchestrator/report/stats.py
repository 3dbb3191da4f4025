"""The statistics the report uses, each matched to what is being compared, with its method named.

Our numbers are n seeds of one variant. A published number is one of:
- a single run            → our 95% *prediction interval* for one new run, mean ± t·s·√(1 + 1/n): a correct
                            single run falls outside the CI of our *mean* far more often than 5% of the time;
- a mean of m runs ± std  → Welch's interval on the difference of the two means;
- the best of m runs      → where our own best of m would fall: the normal model's predictive distribution
                            of the maximum of m new runs (Monte Carlo over the parameters' uncertainty);

Differences between two of our variants are paired by seed (seed s of both models sees the same batches,
so the difference removes that shared noise); when seeds do not pair, Welch's interval is used instead.
Only `scipy.special` is imported (t quantiles and tails); `scipy.stats` costs seconds to import. numpy and scipy are
imported when a number is computed, not with this module: a `report` that reuses its report.json never needs them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

LEVEL = 0.95
BEST_OF_DRAWS = 200_000  # Monte Carlo draws for best-of-m: the interval's ends move < 0.01 pp between seeds
BEST_OF_SEED = 20200601  # fixed, so a report is reproducible to the digit


def t_quantile(df: float, level: float = LEVEL) -> float:
    """The two-sided `level` quantile of Student's t with `df` degrees of freedom."""
    from scipy.special import stdtrit

    return float(stdtrit(df, 0.5 + level / 2))


@dataclass(frozen=True)
class Interval:
    """An estimate and its interval; `method` names how it was computed, for the report's notes."""

    estimate: float
    low: float
    high: float
    method: str
    n: int
    df: float | None = None
    p_value: float | None = None

    @property
    def halfwidth(self) -> float:
        return (self.high - self.low) / 2

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def to_dict(self) -> dict[str, Any]:
        """As report.json holds it: the fields, then the half-width (for readers of the file)."""
        return asdict(self) | {"halfwidth": self.halfwidth}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Interval:
        return cls(data["estimate"], data["low"], data["high"], data["method"], data["n"], data.get("df"),
                   data.get("p_value"))


@dataclass(frozen=True)
class Sample:
    """n values: mean and sample std (ddof 1)."""

    n: int
    mean: float
    std: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Sample:
        n = len(values)
        if n == 0:
            raise ValueError("no values")
        mean = math.fsum(values) / n
        std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n >= 2 else None
        return cls(n, mean, std)


def mean_interval(values: Sequence[float], level: float = LEVEL) -> Interval | None:
    """The t-interval of the mean; None for n < 2."""
    sample = Sample.of(values)
    if sample.std is None:
        return None
    half = t_quantile(sample.n - 1, level) * sample.std / math.sqrt(sample.n)
    return Interval(sample.mean, sample.mean - half, sample.mean + half, "t-interval of the mean", sample.n,
                    sample.n - 1)


def prediction_interval(values: Sequence[float], level: float = LEVEL) -> Interval | None:
    """Where one new run would fall: mean ± t·s·√(1 + 1/n); None for n < 2."""
    sample = Sample.of(values)
    if sample.std is None:
        return None
    half = t_quantile(sample.n - 1, level) * sample.std * math.sqrt(1 + 1 / sample.n)
    return Interval(sample.mean, sample.mean - half, sample.mean + half, "prediction interval for one run",
                    sample.n, sample.n - 1)


def welch_interval(a: Sample, b: Sample, level: float = LEVEL) -> Interval | None:
    """Difference of means a − b, Welch–Satterthwaite df, two-sided p-value; None when a std is unknown."""
    if a.std is None or b.std is None:
        return None
    va, vb = a.std**2 / a.n, b.std**2 / b.n
    se = math.sqrt(va + vb)
    delta = a.mean - b.mean
    if se == 0:
        return Interval(delta, delta, delta, "Welch interval of the difference of means", a.n + b.n)
    df = (va + vb) ** 2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))
    half = t_quantile(df, level) * se
    from scipy.special import stdtr

    p_value = float(2 * stdtr(df, -abs(delta) / se))
    return Interval(delta, delta - half, delta + half, "Welch interval of the difference of means",
                    a.n + b.n, df, p_value)


def difference_prediction_interval(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Interval | None:
    """Where the difference of one new run of a and one new run of b (unpaired) would fall.

    Its spread comes from both variants' seed variance: se = √(s_a²(1 + 1/n_a) + s_b²(1 + 1/n_b)), with
    Welch–Satterthwaite degrees of freedom. This is how a paper's Δ (two single runs) is judged against ours.
    """
    sa, sb = Sample.of(a), Sample.of(b)
    if sa.std is None or sb.std is None:
        return None
    va, vb = sa.std**2 * (1 + 1 / sa.n), sb.std**2 * (1 + 1 / sb.n)
    delta = sa.mean - sb.mean
    se = math.sqrt(va + vb)
    if se == 0:
        return Interval(delta, delta, delta, "prediction interval for one unpaired pair of runs", sa.n + sb.n)
    df = (va + vb) ** 2 / (va**2 / (sa.n - 1) + vb**2 / (sb.n - 1))  # Satterthwaite for this combination
    half = t_quantile(df, level) * se
    return Interval(delta, delta - half, delta + half, "prediction interval for one unpaired pair of runs",
                    sa.n + sb.n, df)


def paired_interval(a_by_seed: Mapping[int, float], b_by_seed: Mapping[int, float],
                    level: float = LEVEL) -> Interval | None:
    """Mean of a − b over the seeds both have, with the paired t-interval; None for fewer than 2 pairs."""
    seeds = sorted(set(a_by_seed) & set(b_by_seed))
    if len(seeds) < 2:
        return None
    differences = [a_by_seed[s] - b_by_seed[s] for s in seeds]
    interval = mean_interval(differences, level)
    assert interval is not None
    sample = Sample.of(differences)
    p_value = None
    if sample.std:
        from scipy.special import stdtr

        p_value = float(2 * stdtr(sample.n - 1, -abs(sample.mean) / (sample.std / math.sqrt(sample.n))))
    return Interval(interval.estimate, interval.low, interval.high, "paired t-interval over seeds", len(seeds),
                    sample.n - 1, p_value)


def best_of_interval(values: Sequence[float], draws: int, level: float = LEVEL) -> Interval | None:
    """Where the best of `draws` new runs would fall, under a normal model of our seeds.

    The posterior predictive of the standard (Jeffreys-prior) normal model: σ² ~ (n−1)s²/χ²(n−1),
    μ | σ ~ N(x̄, σ²/n), then `draws` runs ~ N(μ, σ²) and their maximum. Monte Carlo with a fixed seed.
    For draws = 1 it is the prediction interval. None for n < 2.
    """
    sample = Sample.of(values)
    if sample.std is None or draws < 1:
        return None
    import numpy as np

    rng = np.random.default_rng(BEST_OF_SEED)
    sigma = sample.std * np.sqrt((sample.n - 1) / rng.chisquare(sample.n - 1, BEST_OF_DRAWS))
    mu = rng.normal(sample.mean, sigma / math.sqrt(sample.n))
    best = (mu[:, None] + sigma[:, None] * rng.standard_normal((BEST_OF_DRAWS, draws))).max(axis=1)
    low, high = np.quantile(best, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(np.median(best)), float(low), float(high),
                    f"predictive interval of the best of {draws} runs (normal model, Monte Carlo)", sample.n,
                    sample.n - 1)


def seeds_for_halfwidth(std: float | None, target: float, level: float = LEVEL, max_seeds: int = 1000) -> int | None:
    """The fewest seeds n ≥ 2 whose t-interval of the mean, at this spread, is at most `target` wide each side.

    None when the spread is unknown (n < 2) or more than `max_seeds` would be needed."""
    if std is None or target <= 0:
        return None
    for n in range(2, max_seeds + 1):
        if t_quantile(n - 1, level) * std / math.sqrt(n) <= target:
            return n
    return None
