"""One module per notebook, named after its stem (``01_sentence_embeddings.py`` -> ``nb01.py``), each with
``check(metrics: dict) -> None`` asserting on the numbers that notebook records in its ``metrics.json``."""


def check_comparison(row: dict) -> None:
    """A paired-comparison row that is consistent with itself: the difference is A's accuracy minus B's, the
    interval has width unless the two sides agree on every example, and the verdict says what the interval says
    (detected when it excludes zero). Each of these can fail; ``low <= difference <= high`` alone is true of any
    interval built around its estimate."""
    assert abs(row["difference"] - (row["A accuracy"] - row["B accuracy"])) < 1e-9, row
    assert row["high"] > row["low"] or (row["difference"] == 0 and row["high"] == row["low"] == 0), row
    assert row["detected"] == bool(row["low"] > 0 or row["high"] < 0), row
    assert 0 <= row["p-value"] <= 1, row
    # "no difference detected" says what it rules out: the interval's farther end, either way
    assert abs(row["excludes beyond"] - max(abs(row["low"]), abs(row["high"]))) < 1e-12, row
    if row.get("seeds", 1) > 1:  # over seeds the interval carries the test sentences' noise too
        assert "test items" in row["method"], row


def check_sts(sts: dict) -> None:
    """A record's human-judged similarity: some of the STS benchmark's 1,379 test pairs, correlations in
    [−1, 1]."""
    assert 0 < sts["pairs"] <= 1379, sts["pairs"]
    assert all(-1 <= row["spearman"] <= 1 and -1 <= row["pearson"] <= 1 for row in sts["table"])
