"""A paired comparison over seeds *and* test items: both sources of noise in one interval.

Two configurations A and B run with the same seeds ``s = 1..S`` and are scored on the same test items
``i = 1..n``; ``d[s, i] = correct_A[s, i] − correct_B[s, i]``. Its mean estimates how much more often A is
right than B, on *sentences like these*, for *training runs like these*. Two things would change it on a
repeat of the study: other training runs (seeds) and other test sentences (items). A t interval over the
per-seed differences sees only the first: an item that A gets right and B wrong with every seed adds the
same amount to every seed's difference, so the seeds agree and the interval narrows, however few such items
there are. McNemar's test on one seed sees only the second.

The model is the two-way random-effects layout ``d[s, i] = Δ + a[s] + b[i] + e[s, i]``, with the mean's
variance ``σ²_a / S + σ²_b / n + σ²_e / (S n)``, each part estimated from the two-way mean squares (a part
that estimates below zero is taken as zero), and a t interval whose degrees of freedom follow
Satterthwaite's approximation. ``tests/test_intervals.py`` checks its coverage by simulation with both
sources present, and that it refuses to call real a difference that seeds alone would.

:func:`holm` adjusts the p-values of one family of verdicts (Holm 1979: the family-wise error rate held at
``α`` for any number of rows, uniformly more powerful than Bonferroni).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from series.statistics import CONFIDENCE


@dataclass(frozen=True)
class TwoWayInterval:
    """The mean paired difference with its interval, p-value, the variance parts and the degrees of freedom."""

    difference: float
    low: float
    high: float
    p_value: float
    df: float
    seed_variance: float  # σ²_a / S: the part of the mean's variance that other training runs bring
    item_variance: float  # σ²_b / n + σ²_e / (S n): the part that other test sentences bring
    seeds: int
    items: int

    @property
    def detected(self) -> bool:
        """The interval excludes zero."""
        return bool(self.low > 0 or self.high < 0)

    @property
    def excludes_beyond(self) -> float:
        """The largest effect, in either direction, that the interval does not rule out."""
        return float(max(abs(self.low), abs(self.high)))


def per_seed_matrix(correct: Sequence[np.ndarray], side: str, values: bool = False) -> np.ndarray:
    """``[seeds, items]`` of one side's per-seed vectors (right answers, or scores with ``values``), checked
    to be non-empty and of one length; errors name the ``side``."""
    rows = [np.asarray(c, dtype=float if values else bool) for c in correct]
    if not rows or len({r.shape for r in rows}) != 1 or rows[0].ndim != 1 or rows[0].size == 0:
        shapes = [r.shape for r in rows]
        raise ValueError(f"{side}: need one non-empty vector of right answers per seed, all of one test set's "
                         f"length (got shapes {shapes})")
    return np.stack(rows).astype(float)


def two_way_interval(correct_a: Sequence[np.ndarray], correct_b: Sequence[np.ndarray],
                    confidence: float = CONFIDENCE, values: bool = False) -> TwoWayInterval:
    """A − B over ``S`` paired seeds (``correct_*[s]``: which test items seed ``s`` got right; at least two
    seeds, the same items on both sides). ``values``: per-item scores instead of right/wrong (e.g. each
    query's reciprocal rank); the layout is the same."""
    a, b = per_seed_matrix(correct_a, "A", values), per_seed_matrix(correct_b, "B", values)
    if a.shape != b.shape:
        raise ValueError(f"A and B need the same seeds and test items (got {a.shape} and {b.shape})")
    n_seeds, n_items = a.shape
    if n_seeds < 2:
        raise ValueError("a comparison over seeds and items needs at least two seeds; with one, use McNemar "
                         "(compare_correct)")
    d = a - b
    mean = float(d.mean())
    seed_means, item_means = d.mean(axis=1), d.mean(axis=0)
    ms_seed = n_items * float(np.sum((seed_means - mean) ** 2)) / (n_seeds - 1)
    ms_item = n_seeds * float(np.sum((item_means - mean) ** 2)) / (n_items - 1) if n_items > 1 else 0.0
    residual = d - seed_means[:, None] - item_means[None, :] + mean
    ms_res = float(np.sum(residual ** 2)) / ((n_seeds - 1) * max(n_items - 1, 1))
    seed_part = max(ms_seed - ms_res, 0.0) / (n_items * n_seeds)           # σ²_a / S
    item_part = (max(ms_item - ms_res, 0.0) + ms_res) / (n_seeds * n_items)  # σ²_b / n + σ²_e / (S n)
    variance = seed_part + item_part
    if variance == 0:  # every seed and item agree: no noise to measure
        return TwoWayInterval(mean, mean, mean, 1.0 if mean == 0 else 0.0, float("inf"), 0.0, 0.0, n_seeds,
                             n_items)
    df = _satterthwaite(ms_seed, ms_item, ms_res, n_seeds, n_items, seed_part, item_part)
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * variance ** 0.5
    p = float(2 * stats.t.sf(abs(mean) / variance ** 0.5, df))
    return TwoWayInterval(mean, mean - half, mean + half, p, df, seed_part, item_part, n_seeds, n_items)


def _satterthwaite(ms_seed: float, ms_item: float, ms_res: float, n_seeds: int, n_items: int,
                   seed_part: float, item_part: float) -> float:
    """Degrees of freedom of the variance estimate, written as a combination of the mean squares: each mean
    square's net coefficient (a part taken as zero drops its terms, and terms that cancel add nothing)."""
    scale = n_seeds * n_items
    coefficients = {"seed": 0.0, "item": 0.0, "residual": 0.0}
    if seed_part > 0:  # σ²_a / S = (MS_seed − MS_res) / (S n)
        coefficients["seed"] += 1.0
        coefficients["residual"] -= 1.0
    if ms_item > ms_res:  # σ²_b / n + σ²_e / (S n) = MS_item / (S n)
        coefficients["item"] += 1.0
    else:  # σ²_b taken as zero: σ²_e / (S n) = MS_res / (S n)
        coefficients["residual"] += 1.0
    squares = {"seed": (ms_seed, n_seeds - 1), "item": (ms_item, n_items - 1),
               "residual": (ms_res, (n_seeds - 1) * (n_items - 1))}
    denominator = sum((c * squares[k][0] / scale) ** 2 / squares[k][1]
                      for k, c in coefficients.items() if c != 0 and squares[k][1] > 0)
    return float((seed_part + item_part) ** 2 / denominator) if denominator > 0 else float("inf")


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the input order (NaN stays NaN and does not count)."""
    p = np.asarray(p_values, dtype=float)
    out = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m, running = len(order), 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        out[index] = running
    return out
