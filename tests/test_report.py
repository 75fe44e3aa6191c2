"""The narrow tables the notebooks show (series.report): the columns a reader needs, formatted,
from the full tables the notebooks save."""
import numpy as np
import pandas as pd
import pytest

from series import report
from series.comparisons import compare_correct, with_margin


def test_prediction_view_keeps_each_answer_with_its_probability(served):
    full = served.predict(["Stocks fell.", "A lovely film."])
    view = report.prediction_view(full)
    assert list(view.columns) == ["sentence", *served.task_labels]
    for i, row in full.reset_index(drop=True).iterrows():
        for task in served.task_labels:
            label = row[task]
            assert view.loc[i, task] == f"{label} ({row[f'{task}: p({label})']:.2f})"


def test_prediction_view_refuses_a_table_that_is_not_predicts():
    with pytest.raises(ValueError, match="no 'sentence' column"):
        report.prediction_view(pd.DataFrame({"text": ["a"]}))


def probe_rows():
    nan = float("nan")
    return pd.DataFrame([
        {"task": "topic", "vectors": "raw", "pooling": "mean", "accuracy": 0.9, "low": 0.88, "high": 0.92,
         "macro-F1": 0.89, "vs mean": nan, "vs mean low": nan, "vs mean high": nan},
        {"task": "topic", "vectors": "raw", "pooling": "cls", "accuracy": 0.87, "low": 0.85, "high": 0.89,
         "macro-F1": 0.86, "vs mean": -0.03, "vs mean low": -0.05, "vs mean high": -0.01},
        {"task": "topic", "vectors": "L2-normalised", "pooling": "max", "accuracy": 0.9, "low": 0.88,
         "high": 0.92, "macro-F1": 0.9, "vs mean": 0.004, "vs mean low": -0.004, "vs mean high": 0.01},
        {"task": "topic", "vectors": "-", "pooling": "majority class", "accuracy": 0.25, "macro-F1": 0.08}])


def test_probe_view_gives_intervals_and_verdicts():
    view = report.probe_view(probe_rows())
    assert view.index.names == ["task", "vectors", "pooling"]
    assert list(view["verdict"]) == ["reference", "worse", "no difference detected", "baseline"]
    assert view["accuracy [95%]"].iloc[1] == "0.870 [0.850, 0.890]"
    assert view["− raw mean [95%]"].iloc[2] == "+0.004 [−0.004, +0.010]"
    assert view["accuracy [95%]"].iloc[3] == "0.250" and view["− raw mean [95%]"].iloc[3] == ""


def test_comparison_view_adds_drops_and_indexes_columns():
    rng = np.random.default_rng(0)
    a, b = rng.random(200) < 0.9, rng.random(200) < 0.8
    table = pd.DataFrame([{**compare_correct("x", a, "start", b, "topic"), "kept": 0.97531}])
    view = report.comparison_view(table, extra=["kept"], drop=["task"], index=["B", "A"])
    assert view.index.names == ["B", "A"] and "task" not in view
    assert view["kept"].iloc[0] == 0.975
    with pytest.raises(ValueError, match=r"no column\(s\) \['gone'\]"):
        report.comparison_view(table, extra=["gone"])


def test_comparison_view_names_the_margin_in_the_verdict():
    a = np.arange(400) < 300
    b = a.copy()
    b[[0, 1, 2, 300, 301, 302]] ^= True  # three disagreements each way: a zero difference
    table = with_margin(pd.DataFrame([compare_correct("x", a, "y", b, "topic")]), 0.05)
    assert list(report.comparison_view(table)["verdict"]) == ["equivalent within ±0.05"]
    wide = with_margin(table.drop(columns=["margin", "equivalent"]), 0.001)
    assert list(report.comparison_view(wide)["verdict"]) == ["inconclusive at ±0.001"]
    assert "margin" not in report.comparison_view(wide)


def test_shown_selects_renames_and_rounds():
    table = pd.DataFrame({"batch": [8, 32], "memory (MB)": [90.4701, 340.4], "MRR@10": [0.47412, 0.4861],
                          "unused": [1, 2]})
    view = report.shown(table, {"batch": "batch", "MRR@10": "MRR", "memory (MB)": "MB"},
                        digits={"memory (MB)": 1}, index="batch")
    assert list(view.columns) == ["MRR", "MB"] and view.index.name == "batch"
    assert view["MB"].tolist() == [90.5, 340.4] and view["MRR"].tolist() == [0.474, 0.486]
    with pytest.raises(ValueError, match="no column"):
        report.shown(table, ["nDCG@10"])


def test_probe_findings_lead_with_the_best_probe_and_sort_the_others_by_verdict():
    """Sorted by the paired difference's interval, not the probe's accuracy interval (both are low/high-like)."""
    rows = probe_rows().assign(**{"McNemar p": [float("nan"), 0.02, 0.36, float("nan")],
                                  "excludes beyond": [float("nan"), 0.05, 0.01, float("nan")]})
    text = report.probe_findings(rows)
    assert text == ("* **topic**: best, mean pooling on raw vectors, 0.900 (majority class 0.250). "
                    "Below raw mean: cls raw (−0.030). No difference detected: max L2-normalised (+0.004).")


def _row(task, a, b, difference, low, high, detected, margin=0.01, seeds=3):
    return {"task": task, "A": a, "B": b, "difference": difference, "low": low, "high": high,
            "detected": detected, "p-value": 0.01 if detected else 0.4, "seeds": seeds, "margin": margin,
            "equivalent": -margin <= low and high <= margin}


def test_findings_lead_with_the_verdict_and_quote_at_most_two_intervals():
    from tools.reading_limits import INTERVAL

    table = pd.DataFrame([_row("topic", "attention", "mean", 0.001, -0.005, 0.007, False),
                          _row("sentiment", "attention", "mean", 0.007, 0.001, 0.013, True),
                          _row("genre", "attention", "mean", -0.002, -0.030, 0.026, False),
                          _row("news", "attention", "mean", -0.020, -0.030, -0.010, True)])
    text = report.findings(table)
    lines = text.splitlines()
    assert lines[0] == "**attention − mean** (3 seeds, paired over seeds and test sentences):"
    assert lines[1] == "* **attention better**: sentiment (+0.007 [+0.001, +0.013])."
    assert lines[2] == "* **mean better**: news (−0.020 [−0.030, −0.010])."
    assert lines[3] == "* **equivalent within ±0.01**: topic (+0.001)."
    assert lines[4] == "* **inconclusive at ±0.01**: genre (−0.002)."
    assert len(INTERVAL.findall(text)) == 2
    assert len(INTERVAL.findall(report.findings(table, quote=4))) == 4


def test_findings_name_what_varies_and_refuse_an_empty_table():
    table = pd.DataFrame([_row("retrieval", "topic model", "shipped", -0.2, -0.25, -0.15, True, seeds=1),
                          _row("retrieval", "sentiment model", "shipped", -0.1, -0.15, -0.05, True, seeds=1)])
    text = report.findings(table)
    assert text.startswith("**… − shipped** (one seed, paired over test sentences):")
    assert "topic model (−0.200 [−0.250, −0.150]); sentiment model (−0.100 [−0.150, −0.050])" in text
    both = pd.DataFrame([_row("topic", "multi", "single topic", 0.008, 0.002, 0.014, True),
                         _row("sentiment", "half", "single sentiment", -0.01, -0.03, 0.005, False)])
    assert report.findings(both).startswith("**paired differences, A − B**")
    assert "* **inconclusive at ±0.01**: half − single sentiment (−0.010 [−0.030, +0.005])." in report.findings(both)
    with pytest.raises(ValueError, match="empty"):
        report.findings(both.iloc[:0])


def test_summary_rows_name_each_comparison_with_its_interval_and_verdict():
    table = pd.DataFrame([_row("topic", "attention", "mean", 0.001, -0.005, 0.007, False),
                          _row("sentiment", "attention", "mean", 0.007, 0.001, 0.013, True)])
    assert report.summary_rows(table) == {
        "topic: attention − mean": "+0.001 [−0.005, +0.007], equivalent within ±0.01",
        "sentiment: attention − mean": "+0.007 [+0.001, +0.013], attention better"}
