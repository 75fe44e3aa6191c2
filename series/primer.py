"""Test sets with a known truth, for the statistics primer (notebook 08) and the tests of the intervals.

A simulated comparison knows what a real one never does, the true difference, so each way of drawing an
interval can be checked against it: how often does it cover the truth? The model of right and wrong
answers is the one the tests of :mod:`series.intervals` use: each test sentence has a difficulty both models
share, some sentences suit one model more than the other, each training run (seed) is a little lucky or
unlucky, and each answer is a coin flip with the resulting chance.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from series.intervals import two_way_interval
from series.statistics import CONFIDENCE, paired_interval, seed_difference


def simulate(runs: int, seeds: int, items: int, seed_sd: float, item_sd: float, rng: np.random.Generator,
             shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Right answers ``[run, seed, item]`` of models A and B. Difficulty is shared by both (wide: most
    sentences are easy or hard whatever the seed, as for fine-tuned models); ``item_sd`` is how much some
    sentences suit A and others B; ``seed_sd`` how lucky or unlucky a training run is; ``shift`` moves A up
    on the logit scale (0: no true difference on the population of sentences)."""
    difficulty = rng.normal(2.0, 3.0, (runs, 1, items))
    suits = rng.normal(0.0, item_sd, (runs, 1, items))
    run_a, run_b = (rng.normal(0.0, seed_sd, (runs, seeds, 1)) for _ in range(2))
    p_a = 1 / (1 + np.exp(-(difficulty + suits + run_a + shift)))
    p_b = 1 / (1 + np.exp(-(difficulty - suits + run_b)))
    return rng.random(p_a.shape) < p_a, rng.random(p_b.shape) < p_b


def unpaired_interval(correct_a: np.ndarray, correct_b: np.ndarray,
                      confidence: float = CONFIDENCE) -> dict[str, float]:
    """A − B as if the two accuracies came from two separate test sets (the normal interval of a difference
    of independent proportions): what forgetting the pairing gives."""
    a, b = np.asarray(correct_a, float), np.asarray(correct_b, float)
    se = np.sqrt(a.mean() * (1 - a.mean()) / a.size + b.mean() * (1 - b.mean()) / b.size)
    half = float(stats.norm.ppf(0.5 + confidence / 2) * se)
    d = float(a.mean() - b.mean())
    return {"difference": d, "low": d - half, "high": d + half}


def _one_seed(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    r = paired_interval(a[0], b[0])
    return r["low"], r["high"]


def _seeds_alone(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    r = seed_difference(a.mean(axis=1), b.mean(axis=1))
    return r.low, r.high


def _seeds_and_sentences(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    r = two_way_interval(list(a), list(b))
    return r.low, r.high


#: Three ways to draw a 95 % interval of A − B from ``[seed, item]`` right answers.
METHODS = {"one seed, exact interval over the sentences (McNemar)": _one_seed,
           "t interval over the seeds' accuracies alone": _seeds_alone,
           "the series' interval over seeds and sentences": _seeds_and_sentences}


def coverage(correct_a: np.ndarray, correct_b: np.ndarray) -> pd.DataFrame:
    """For each of :data:`METHODS`, over simulated comparisons with no true difference (``correct_*``:
    ``[run, seed, item]``, :func:`simulate` with ``shift=0``): how often its 95 % interval covers zero,
    how often it calls a difference anyway, and its median width."""
    rows = []
    for name, method in METHODS.items():
        low, high = np.array([method(correct_a[k], correct_b[k]) for k in range(len(correct_a))]).T
        covers = (low <= 0) & (0 <= high)
        rows.append({"interval": name, "covers the truth": float(covers.mean()),
                     "calls a difference that is not there": float(1 - covers.mean()),
                     "median width": float(np.median(high - low))})
    return pd.DataFrame(rows).set_index("interval")
