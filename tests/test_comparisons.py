"""Paired comparisons: one row format for the two shapes of evidence, and clear errors."""
import numpy as np
import pandas as pd
import pytest

import series
from series import report
from series.comparisons import compare_correct, compare_over_seeds, compare_seeds


def test_over_seeds_detects_a_consistent_gain_and_not_noise():
    rng = np.random.default_rng(0)
    base = [rng.random(2000) < 0.80 for _ in range(3)]
    better = [b | (rng.random(2000) < 0.25) for b in base]  # every seed better by about 5 points
    row = compare_over_seeds("better", better, "base", base, "topic")
    assert row["detected"] and row["low"] > 0 and row["seeds"] == 3 and len(row["per seed"]) == 3
    assert row["difference"] == pytest.approx(np.mean([b.mean() - a.mean() for a, b in zip(base, better)]))
    noise = compare_over_seeds("a", base, "b", [rng.random(2000) < 0.80 for _ in range(3)], "topic")
    assert not noise["detected"] and noise["low"] < 0 < noise["high"] and noise["excludes beyond"] > 0


def test_row_format_is_shared_and_bad_input_is_refused():
    a, b = np.array([1, 1, 0, 1, 0, 1] * 50, bool), np.array([1, 0, 0, 1, 1, 1] * 50, bool)
    one, over = compare_correct("a", a, "b", b, "t"), compare_over_seeds("a", [a, a], "b", [b, b], "t")
    assert set(one) <= set(over)  # every field of a one-model comparison exists over seeds too
    assert series.compare_correct is compare_correct  # the package re-exports the same function
    with pytest.raises(ValueError, match="at least two"):
        compare_over_seeds("a", [a], "b", [b], "t")
    with pytest.raises(ValueError, match="same seeds"):
        compare_over_seeds("a", [a, a], "b", [b], "t")
    with pytest.raises(ValueError, match="different test sets"):
        compare_correct("a", a, "b", b[:-1], "t")


def test_compare_seeds_takes_the_shape_the_seeds_allow():
    rng = np.random.default_rng(1)
    a, b = [rng.random(300) < 0.8 for _ in range(3)], [rng.random(300) < 0.7 for _ in range(3)]
    one = compare_seeds("a", a[:1], "b", b[:1], "t")
    assert {k: v for k, v in one.items() if k not in ("seeds", "per seed", "method")} == compare_correct(
        "a", a[0], "b", b[0], "t")
    assert one["seeds"] == 1 and one["per seed"] == [one["difference"]] and "McNemar" in one["method"]
    assert compare_seeds("a", a, "b", b, "t") == compare_over_seeds("a", a, "b", b, "t")
    with pytest.raises(ValueError, match="same seeds"):
        compare_seeds("a", a, "b", b[:2], "t")
    with pytest.raises(ValueError, match="at least one"):
        compare_seeds("a", [], "b", [], "t")


def test_verdicts_name_the_budget_of_a_label_budget_row():
    row = {"task": "topic", "A": "fine-tuned", "B": "probe", "difference": 0.03, "low": 0.01, "high": 0.05,
           "seeds": 3, "detected": True, "p-value": 0.02, "excludes beyond": 0.05}
    assert report.verdict(row).startswith("**topic**: fine-tuned − probe = +0.030 [+0.010, +0.050] (3 seeds")
    rows = pd.DataFrame([{**row, "labels": 50}, {**row, "labels": "all", "detected": False}])
    lines = report.verdicts(rows).splitlines()
    assert lines[0].startswith("* **topic, 50 labels**: ") and lines[0].endswith("**fine-tuned is better**.")
    assert lines[1].startswith("* **topic, all labels**: ") and "no difference detected" in lines[1]


def test_compare_scores_over_seeds_and_with_one_seed():
    from series.comparisons import compare_scores

    rng = np.random.default_rng(0)
    base = rng.uniform(size=400)
    better = [np.clip(base + 0.1 + rng.normal(0, 0.05, 400), 0, 1) for _ in range(3)]
    same = [np.clip(base + rng.normal(0, 0.05, 400), 0, 1) for _ in range(3)]
    row = compare_scores("A", better, "B", same, "retrieval", "MRR@10")
    assert row["detected"] and row["low"] > 0 and row["seeds"] == 3 and row["metric"] == "MRR@10"
    one = compare_scores("A", same[:1], "B", same[1:2], "retrieval", "MRR@10")
    assert not one["detected"] and one["seeds"] == 1 and "paired t" in one["method"]
    with pytest.raises(ValueError, match="same seeds"):
        compare_scores("A", better, "B", same[:2], "retrieval", "MRR@10")


def test_a_declared_margin_gives_three_verdicts_that_match_two_one_sided_tests():
    """Equivalent within ±m exactly when both one-sided t tests (A − B > −m and A − B < +m) reject at
    2.5 %: scipy's on the paired differences of one seed's per-item scores."""
    from scipy import stats

    from series.comparisons import compare_scores, outcome, with_margin

    rng = np.random.default_rng(1)
    cases = {"equal": 0.0, "small": 0.002, "big": 0.05}
    rows = []
    for name, shift in cases.items():
        b = rng.random(3000)
        a = b + shift + rng.normal(0, 0.05, 3000)
        rows.append(compare_scores(name, [a], "base", [b], "task", "score"))
        d, m = a - b, 0.01
        lower = stats.ttest_1samp(d, -m, alternative="greater").pvalue
        upper = stats.ttest_1samp(d, m, alternative="less").pvalue
        rows[-1]["tost"] = bool(max(lower, upper) < 0.025)
    judged = with_margin(pd.DataFrame(rows), 0.01)
    assert list(judged["equivalent"]) == list(judged["tost"]) == [True, True, False]
    words = [outcome(row) for row in judged.to_dict("records")]
    assert words[0] == "equivalent within ±0.01" and words[2] == "big better"
    wide = with_margin(pd.DataFrame([{**rows[0], "low": -0.02, "high": 0.015}]), 0.01)
    assert outcome(wide.iloc[0].to_dict()) == "inconclusive"
    assert "**inconclusive**" in report.verdict({**wide.iloc[0].to_dict(), "seeds": 1})
    assert "**equivalent within ±0.01**" in report.verdict({**judged.iloc[0].to_dict(), "seeds": 1})
    assert outcome({**rows[0], "detected": False}) == "no difference detected"  # no margin declared
    for bad in (0, -0.01, 1.5, True, "0.01"):
        with pytest.raises(ValueError, match="margin"):
            with_margin(judged, bad)
