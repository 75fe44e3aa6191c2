"""Notebook 02 (multi-task model): every model learns well beyond the majority class, the multi-task run
gives each task its budget, paired comparisons are complete, the checkpoint reloads exactly; the genre variant
(the seed's task A beside sentiment) learns beyond chance and is compared, paired."""
from notebook_checks import check_comparison


def check(m: dict) -> None:
    base = m["majority_baseline"]
    # margins over the majority class seen in quick runs, with room for noise
    margins = {"topic": 0.3, "sentiment": 0.05}
    for task, margin in margins.items():
        for run in (f"single-task {task}", "multi-task"):
            assert m["accuracy"][f"{run}/{task}"]["mean"] > base[task] + margin, (run, task, m["accuracy"])
        assert m["probe"][task]["accuracy"] > base[task] + margin
    assert m["steps_per_task"]["topic"] == m["steps_per_task"]["sentiment"]  # round-robin: equal steps per task
    assert {(r["task"], r["B"]) for r in m["sharing"]} == {("topic", "single-task topic"),
                                                           ("sentiment", "single-task sentiment")}
    for row in m["sharing"] + m["versus_probe"]:
        check_comparison(row)
    assert len(m["versus_probe"]) == 2 * 2 * len(m["seeds"])
    cosines = m["gradient_cosine"]
    assert all(-1 <= c <= 1 for c in cosines.values()) and len(set(round(c, 6) for c in cosines.values())) > 1
    assert 0 <= m["neutral_news"]["share called positive"] <= 1
    assert m["reload_max_abs_diff"] < 1e-5
    # the seed's task A (genre) beside sentiment, top layer trained: learnt beyond chance, paired, cosines valid
    g = m["genre_variant"]
    assert g["frozen_layers"] >= 1
    for run in ("multi-task genre + sentiment", "single-task genre"):
        assert g["accuracy"][f"{run}/genre"]["mean"] > g["majority_baseline"]["genre"] + 0.3, (run, g["accuracy"])
    assert {(r["task"], r["B"]) for r in g["sharing"]} == {("genre", "single-task genre"),
                                                           ("sentiment", "single-task sentiment")}
    for row in g["sharing"]:
        check_comparison(row)
    for pair, cosines in g["gradient_cosine_before"].items():
        assert len(cosines) == len({k for k in m["gradient_cosine"] if k.startswith("before")}), pair
        assert all(-1 <= c <= 1 for c in cosines.values()), pair
