"""Paired comparisons under the series' rule, from which test examples each side got right.

Two shapes of evidence, one row format (``A``, ``B``, ``task``, accuracies, ``difference`` with ``low`` and
``high``, ``p-value``, ``excludes beyond``, ``detected``):

* :func:`compare_correct`: two fixed models on the same test examples: the exact paired interval over the
  examples and McNemar's exact test (used for one seed, probes, continuations);
* :func:`compare_over_seeds`: two configurations run with the same seeds, scored on the same test items:
  one interval that carries both the training runs' noise and the test set's sampling noise
  (:mod:`series.intervals`);
* :func:`compare_seeds`: whichever of the two the number of seeds allows (one seed: the first);
* :func:`compare_scores`: the same for per-item scores instead of right/wrong (a query's reciprocal rank,
  a retrieval metric): the seeds-and-items interval over two or more seeds, a paired t interval over the
  items with one;
* :func:`compare_correlations`: the same for a correlation with human ratings (STS), which is not a mean
  over items: a paired bootstrap over the items and the seeds;
* :func:`holm_family`: the verdicts of one table as one family (Holm's adjustment of their p-values);
* :func:`with_margin`: a table judged against its equivalence margin, declared before its runs.

A difference is *detected* when its 95 % interval excludes zero; otherwise the row says what the interval
rules out: ``excludes beyond`` is the largest effect, either way, the interval leaves possible (no power
computed from the run's own spread). With a declared margin ``m`` the verdict has three outcomes
(:func:`outcome`): *A better* (or *B*), *equivalent within ±m* when the interval lies inside ±m (two one-sided
tests at 2.5 % each), or *inconclusive*. :mod:`series.experiments` and :mod:`series.pooling_probes` build their
tables from these functions.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from series.intervals import per_seed_matrix, holm, two_way_interval
from series.statistics import excludes_beyond, mcnemar, paired_interval


def compare_correct(a: str, correct_a: np.ndarray, b: str, correct_b: np.ndarray, task: str) -> dict:
    """Two fixed models on the same test examples of ``task`` (``correct_*``: which ones each got right): the
    accuracy difference A − B with its exact paired interval, McNemar's p-value, what the interval rules out
    (``excludes beyond``) and the verdict under the series' rule (detected when the interval excludes zero)."""
    correct_a, correct_b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if correct_a.shape != correct_b.shape:
        raise ValueError(f"{a} and {b} were scored on different test sets ({correct_a.shape} vs {correct_b.shape})")
    boot, test = paired_interval(correct_a, correct_b), mcnemar(correct_a, correct_b)
    return {"A": a, "B": b, "task": task, "A accuracy": float(correct_a.mean()), "B accuracy": float(correct_b.mean()),
            "difference": boot["difference"], "low": boot["low"], "high": boot["high"], "p-value": test.p_value,
            "excludes beyond": excludes_beyond(boot),
            "detected": bool(boot["low"] > 0 or boot["high"] < 0)}


def compare_seeds(a: str, correct_a: Sequence[np.ndarray], b: str, correct_b: Sequence[np.ndarray],
                  task: str) -> dict:
    """A − B on ``task`` from as many paired seeds as there are (``correct_*[i]``: seed ``i``'s right answers):
    :func:`compare_over_seeds` with two or more, :func:`compare_correct` over the test examples with one. Both
    give the same row format, with ``seeds``, ``per seed`` and ``method``."""
    if len(correct_a) != len(correct_b) or len(correct_a) == 0:
        raise ValueError(f"{a} and {b} need the same seeds, at least one (got {len(correct_a)} and {len(correct_b)})")
    if len(correct_a) >= 2:
        return compare_over_seeds(a, correct_a, b, correct_b, task)
    one = compare_correct(a, correct_a[0], b, correct_b[0], task)
    return {"A": a, "B": b, "task": task, "seeds": 1, **one, "per seed": [one["difference"]],
            "method": "McNemar, exact paired interval (one seed)"}


def compare_over_seeds(a: str, correct_a: Sequence[np.ndarray], b: str, correct_b: Sequence[np.ndarray],
                       task: str) -> dict:
    """Accuracy of ``a`` minus ``b`` over the same seeds *and* test items (``correct_*[i]``: which test examples
    seed ``i`` got right, the same seed on both sides): the interval carries the training runs' noise and the
    test set's sampling noise (:func:`~series.intervals.two_way_interval`), with its
    p-value, ``excludes beyond`` (the largest effect the interval leaves possible, what a "no difference
    detected" rules out), the per-seed differences and the verdict under the series' rule."""
    if len(correct_a) != len(correct_b) or len(correct_a) < 2:
        raise ValueError(f"{a} and {b} need the same seeds, at least two (got {len(correct_a)} and {len(correct_b)}); "
                         "with one seed use compare_correct")
    r = two_way_interval(correct_a, correct_b)
    acc_a, acc_b = [float(np.mean(c)) for c in correct_a], [float(np.mean(c)) for c in correct_b]
    return {"A": a, "B": b, "task": task, "seeds": r.seeds, "A accuracy": float(np.mean(acc_a)),
            "B accuracy": float(np.mean(acc_b)), "difference": r.difference, "low": r.low, "high": r.high,
            "p-value": r.p_value, "excludes beyond": r.excludes_beyond,
            "per seed": [round(x - y, 6) for x, y in zip(acc_a, acc_b)],
            "method": "paired over seeds and test items (two-way, Satterthwaite t)", "detected": r.detected}


def compare_scores(a: str, scores_a: Sequence[np.ndarray], b: str, scores_b: Sequence[np.ndarray], task: str,
                   metric: str) -> dict:
    """Mean per-item ``metric`` of ``a`` minus ``b`` (``scores_*[i]``: seed ``i``'s score of every test item,
    the same seeds and items on both sides), in the row format of :func:`compare_over_seeds` (the means in
    ``A accuracy``/``B accuracy``, the metric in ``metric``). Over two or more seeds the two-way interval;
    with one, the paired t interval over the items."""
    if len(scores_a) != len(scores_b) or not scores_a:
        raise ValueError(f"{a} and {b} need the same seeds, at least one (got {len(scores_a)} and {len(scores_b)})")
    mean_a, mean_b = [float(np.mean(s)) for s in scores_a], [float(np.mean(s)) for s in scores_b]
    row = {"A": a, "B": b, "task": task, "metric": metric, "seeds": len(scores_a),
           "A accuracy": float(np.mean(mean_a)), "B accuracy": float(np.mean(mean_b)),
           "per seed": [round(x - y, 6) for x, y in zip(mean_a, mean_b)]}
    if len(scores_a) >= 2:
        r = two_way_interval(scores_a, scores_b, values=True)
        low, high, p, method = r.low, r.high, r.p_value, "paired over seeds and test items (two-way, Satterthwaite t)"
    else:
        d = np.asarray(scores_a[0], dtype=float) - np.asarray(scores_b[0], dtype=float)
        if d.ndim != 1 or d.size < 2:
            raise ValueError(f"need at least two paired test items, got {d.size}")
        half = stats.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size)
        low, high = float(d.mean() - half), float(d.mean() + half)
        p = float(stats.ttest_rel(scores_a[0], scores_b[0]).pvalue) if d.std() > 0 else float(d.mean() == 0)
        method = "one seed, paired t over test items"
    difference = float(np.mean(mean_a) - np.mean(mean_b))
    return {**row, "difference": difference, "low": low, "high": high, "p-value": p,
            "excludes beyond": float(max(abs(low), abs(high))), "method": method,
            "detected": bool(low > 0 or high < 0)}


def compare_correlations(a: str, cosines_a: Sequence[np.ndarray], b: str, cosines_b: Sequence[np.ndarray],
                         ratings: np.ndarray, task: str = "STS benchmark", n_boot: int = 2000,
                         seed: int = 0) -> dict:
    """Spearman correlation with human ``ratings`` of ``a`` minus ``b`` (``cosines_*[s]``: seed ``s``'s
    cosine of every rated pair, the same seeds and pairs on both sides; a fixed encoder repeats its one
    vector), in the row format of :func:`compare_scores` (the correlations in ``A accuracy``/``B accuracy``).

    A rank correlation is not a mean over pairs, so the two-way interval does not apply; the interval is a
    paired percentile bootstrap instead: each draw resamples the pairs and, over two or more seeds, the
    seeds (the hierarchical bootstrap of Saravanan et al., 2020), both sides on the same draw, so it carries
    the training runs' noise and the test pairs'. With three seeds the seed part has three values to draw
    from, and is coarse. p: from the draws' standard error (normal approximation; a share of draws could
    not go below ``1 / n_boot``, which Holm's correction over a large family would punish)."""
    x, y = (per_seed_matrix(c, side, values=True) for c, side in ((cosines_a, "A"), (cosines_b, "B")))
    ratings = np.asarray(ratings, dtype=float)
    if x.shape != y.shape or ratings.shape != (x.shape[1],):
        raise ValueError(f"{a} and {b} need the same seeds and one cosine per rated pair (got {x.shape}, "
                         f"{y.shape} and {ratings.shape} ratings)")
    n_seeds, n_pairs = x.shape

    def spearman(scores: np.ndarray, gold: np.ndarray) -> np.ndarray:  # one per row of scores
        r, g = stats.rankdata(scores, axis=1), stats.rankdata(gold)
        r, g = r - r.mean(axis=1, keepdims=True), g - g.mean()
        return (r @ g) / np.maximum(np.linalg.norm(r, axis=1) * np.linalg.norm(g), 1e-300)

    rho_a, rho_b = spearman(x, ratings), spearman(y, ratings)
    rng = np.random.default_rng(seed)
    draws = np.empty(n_boot)
    for i in range(n_boot):
        items = rng.integers(0, n_pairs, n_pairs)
        rows = rng.integers(0, n_seeds, n_seeds) if n_seeds > 1 else np.zeros(1, dtype=int)
        gold = ratings[items]
        draws[i] = float(np.mean(spearman(x[rows][:, items], gold) - spearman(y[rows][:, items], gold)))
    low, high = (float(v) for v in np.quantile(draws, [0.025, 0.975]))
    difference, spread = float(rho_a.mean() - rho_b.mean()), float(draws.std(ddof=1))
    p_value = float(2 * stats.norm.sf(abs(difference) / spread)) if spread > 0 else float(difference == 0)
    return {"A": a, "B": b, "task": task, "metric": "Spearman", "seeds": n_seeds,
            "A accuracy": float(rho_a.mean()), "B accuracy": float(rho_b.mean()),
            "per seed": [round(float(d), 6) for d in rho_a - rho_b], "difference": difference,
            "low": low, "high": high, "p-value": p_value,
            "excludes beyond": float(max(abs(low), abs(high))),
            "method": ("hierarchical bootstrap over seeds and test items (pairs)" if n_seeds > 1
                       else "bootstrap over test items (pairs), one seed"),
            "detected": bool(low > 0 or high < 0)}


def holm_family(rows: Sequence[dict], alpha: float = 0.05) -> list[dict]:
    """The rows of one table as one family of tests: each gains ``Holm p-value`` (Holm's step-down adjustment
    over the rows) and ``detected (Holm)``, and keeps its unadjusted ``detected`` so a row that loses its
    verdict to the correction can say so."""
    adjusted = holm([row["p-value"] for row in rows])
    return [{**row, "Holm p-value": float(p), "detected (Holm)": bool(p < alpha)} for row, p in zip(rows, adjusted)]


def with_margin(table: pd.DataFrame, margin: float) -> pd.DataFrame:
    """``table`` (rows of this module's format) judged against an equivalence margin ``margin`` (in the
    metric's units, declared before the runs): each row gains ``margin`` and ``equivalent``, whether its 95 %
    interval lies inside ±margin. That is two one-sided tests (A − B > −m, A − B < +m) at 2.5 % each: a
    difference too small to matter is shown, not merely not detected."""
    if not (isinstance(margin, (int, float)) and not isinstance(margin, bool) and 0 < margin < 1):
        raise ValueError(f"margin must be a positive number below 1 (a difference of accuracies), got {margin!r}")
    inside = (table["low"] >= -margin) & (table["high"] <= margin)
    return table.assign(margin=float(margin), equivalent=inside.astype(bool))


def outcome(row: Mapping, detected: str = "detected") -> str:
    """The verdict of a row in words: ``"<A> better"`` / ``"<B> better"`` when ``row[detected]`` (the
    interval excludes zero; ``"detected (Holm)"`` in a family), else ``"equivalent within ±m"`` or
    ``"inconclusive"`` for a row judged :func:`with_margin`, else ``"no difference detected"``."""
    if row[detected]:
        return f"{row['A'] if row['difference'] > 0 else row['B']} better"
    if "margin" in row and not pd.isna(row["margin"]):
        return f"equivalent within ±{row['margin']:.3g}" if row["equivalent"] else "inconclusive"
    return "no difference detected"
