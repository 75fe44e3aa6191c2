def check(m: dict) -> None:
    base = m["majority_baseline"]
    for task in ("topic", "sentiment"):
        assert m["test"]["multi-task"][task]["accuracy"] > base[task], (task, m["test"]["multi-task"], base)
        assert m["test"][f"single-task {task}"][task]["accuracy"] > base[task]
        assert 0 < m["test"]["multi-task"][task]["macro-F1"] <= 1
    assert m["reload_max_abs_diff"] < 1e-5
    assert set(m["sampling"]) >= {"proportional"}
