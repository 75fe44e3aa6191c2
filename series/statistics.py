"""The statistics that say whether a difference is real.

Intervals and tests, the series' one rule for comparisons (stated in every notebook that uses it):

* every accuracy carries a 95 % **Wilson** interval (:func:`wilson_interval`);
* two models on one test set are compared **paired**, example by example: McNemar's exact test
  (:func:`mcnemar`) with the exact interval of the accuracy difference that agrees with it
  (:func:`paired_interval`; :func:`paired_bootstrap` is the resampling alternative);
* two training configurations over several seeds are compared over seeds *and* test items at once
  (:mod:`series.intervals`); :func:`seed_difference`, the t interval over per-seed scores
  alone, stays as the yardstick its tests show falling short (it leaves the test set's noise out);
* a difference is called real when its 95 % interval excludes zero; otherwise the comparison says "no
  difference detected" and what the interval rules out. :func:`mde_paired_t` and
  :func:`mde_paired_proportions` give a minimum detectable effect from a *design* quantity (a spread or a
  discordance fixed before a run), never from the run's own spread.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from mtl_utils.evaluation.metrics import one_dimensional

CONFIDENCE = 0.95
POWER = 0.8


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a proportion (e.g. an accuracy: ``successes`` right out of ``n``).

    Unlike the normal approximation it stays inside [0, 1] and keeps its coverage near 0 and 1."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in 0..{n}, got {successes}")
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def _paired(correct_a, correct_b) -> tuple[np.ndarray, np.ndarray]:
    a = one_dimensional(correct_a, "correct_a").astype(bool)
    b = one_dimensional(correct_b, "correct_b").astype(bool)
    if len(a) != len(b):
        raise ValueError(f"paired comparisons need the same test set: {len(a)} vs {len(b)} examples")
    if len(a) == 0:
        raise ValueError("no examples to compare")
    return a, b


@dataclass(frozen=True)
class McNemar:
    """McNemar's exact test: ``only_a`` examples only model A got right, ``only_b`` only B; the p-value of
    "both are equally accurate" from the binomial distribution of the discordant pairs."""

    only_a: int
    only_b: int
    p_value: float


def mcnemar(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> McNemar:
    """McNemar's exact (binomial) test on two models' right/wrong vectors over the same test examples."""
    a, b = _paired(correct_a, correct_b)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    if only_a + only_b == 0:
        return McNemar(0, 0, 1.0)
    p = stats.binomtest(only_a, only_a + only_b, 0.5).pvalue
    return McNemar(only_a, only_b, float(min(1.0, p)))


def paired_interval(correct_a: Sequence[bool], correct_b: Sequence[bool],
                    confidence: float = CONFIDENCE) -> dict[str, float]:
    """Accuracy difference A - B of two models on one test set with an exact interval that agrees with McNemar's
    test: given the ``m`` discordant examples, ``only_a`` of which A got right, the Clopper–Pearson interval of
    the share π = only_a / m maps to the difference ``m (2π − 1) / n``. It excludes zero exactly when McNemar's
    exact test rejects at ``1 − confidence`` (so the two never disagree)."""
    a, b = _paired(correct_a, correct_b)
    only_a, only_b, n = int((a & ~b).sum()), int((~a & b).sum()), len(a)
    m = only_a + only_b
    diff = (only_a - only_b) / n
    if m == 0:
        return {"difference": 0.0, "low": 0.0, "high": 0.0, "n": n}
    ci = stats.binomtest(only_a, m, 0.5).proportion_ci(confidence_level=confidence, method="exact")
    return {"difference": float(diff), "low": float(m * (2 * ci.low - 1) / n), "high": float(m * (2 * ci.high - 1) / n),
            "n": n}


def paired_bootstrap(correct_a: Sequence[bool], correct_b: Sequence[bool], n_boot: int = 4000, seed: int = 0,
                     confidence: float = CONFIDENCE) -> dict[str, float]:
    """Accuracy difference A - B on one test set with a percentile bootstrap interval: the test examples are
    resampled with replacement, the same resample for both models (paired)."""
    a, b = _paired(correct_a, correct_b)
    diff = a.astype(float) - b.astype(float)
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for start in range(0, n_boot, 500):  # in chunks: bounded memory for large test sets
        stop = min(n_boot, start + 500)
        means[start:stop] = diff[rng.integers(0, len(diff), size=(stop - start, len(diff)))].mean(axis=1)
    tail = (1 - confidence) / 2
    return {"difference": float(diff.mean()), "low": float(np.quantile(means, tail)),
            "high": float(np.quantile(means, 1 - tail)), "n": len(diff)}


def mde_paired_proportions(correct_a: Sequence[bool], correct_b: Sequence[bool], alpha: float = 1 - CONFIDENCE,
                           power: float = POWER) -> float:
    """Smallest accuracy difference a paired test on this test set detects with ``power`` (two-sided
    ``alpha``), from the share of discordant examples ψ: ``(z_{1-α/2} + z_power) · sqrt(ψ / n)``."""
    a, b = _paired(correct_a, correct_b)
    discordant = max(float(np.mean(a != b)), 1 / len(a))  # at least one discordant pair's worth
    return float((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) * math.sqrt(discordant / len(a)))


def mde_paired_t(sd: float, n: int, alpha: float = 1 - CONFIDENCE, power: float = POWER) -> float:
    """Smallest mean difference a paired t test over ``n`` pairs with difference std ``sd`` detects with
    ``power`` (two-sided ``alpha``): ``(t_{1-α/2, n-1} + t_{power, n-1}) · sd / sqrt(n)``; NaN for n < 2."""
    if n < 2 or not np.isfinite(sd):
        return float("nan")
    return float((stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(power, n - 1)) * sd / math.sqrt(n))


@dataclass(frozen=True)
class PairedDifference:
    """Mean of per-seed differences A - B with its t interval, p-value and minimum detectable effect."""

    mean: float
    low: float
    high: float
    sd: float
    n: int
    p_value: float
    mde: float
    per_seed: tuple[float, ...]

    @property
    def detected(self) -> bool:
        """True when the interval excludes zero (the series' rule for calling a difference real)."""
        return bool(self.low > 0 or self.high < 0)

    def to_dict(self) -> dict:
        return {**asdict(self), "per_seed": list(self.per_seed), "detected": self.detected}


def seed_difference(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE,
                    power: float = POWER) -> PairedDifference:
    """Paired comparison over seeds: ``a[i]`` and ``b[i]`` are the two configurations' scores with seed ``i``
    (same data, same test set). With one seed there is no interval (NaN bounds)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"need one score per seed for both configurations, got {a.shape} and {b.shape}")
    diff = a - b
    n, mean = len(diff), float(diff.mean())
    if n < 2:
        return PairedDifference(mean, float("nan"), float("nan"), float("nan"), 1, float("nan"), float("nan"),
                                tuple(map(float, diff)))
    sd = float(diff.std(ddof=1))
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
    if sd == 0:
        p = 1.0 if mean == 0 else 0.0
    else:
        p = float(2 * stats.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1))
    return PairedDifference(mean, mean - half, mean + half, sd, n, p, mde_paired_t(sd, n, 1 - confidence, power),
                            tuple(round(float(d), 6) for d in diff))


def excludes_beyond(row: Mapping) -> float:
    """The largest effect, either way, that a row's interval (``low``, ``high``) leaves possible: the
    ``excludes beyond`` field of every row, derived in one place."""
    return float(max(abs(row["low"]), abs(row["high"])))
