"""Notebook 03 (multi-task model): the learning curves cover half, once and twice the budget (multi-task at
the budget only); every model learns well beyond the majority class, the multi-task run gives each task its budget,
paired comparisons are complete at both fairnesses (same examples, same updates) and judged against the
margin declared before the runs, the checkpoint reloads exactly."""
from notebook_checks import check_comparison


def check(m: dict) -> None:
    base = m["majority_baseline"]
    # margins over the majority class seen in quick runs, with room for noise
    margins = {"topic": 0.3, "sentiment": 0.05 if m["budget"] > 1000 else 0.0}  # quick: 400 film-split snippets
    for task, margin in margins.items():
        for run in (f"single-task {task}", "multi-task"):
            assert m["accuracy"][f"{run}/{task}"]["mean"] > base[task] + margin, (run, task, m["accuracy"])
        assert m["probe"][task]["accuracy"] > base[task] + margin
    assert m["steps_per_task"]["topic"] == m["steps_per_task"]["sentiment"]  # round-robin: equal steps per task
    arms = {"multi-task", "multi-task, half per task"}
    assert {(r["A"], r["task"], r["B"]) for r in m["sharing"]} == {
        (a, t, f"single-task {t}") for a in arms for t in ("topic", "sentiment")}
    assert all(r["margin"] == m["margin"] > 0 and r["equivalent"] == (-m["margin"] <= r["low"] and r["high"] <= m["margin"])
               for r in m["sharing"])
    budget, curve = m["budget"], m["learning_curve"]
    points = {(r["experiment"], r["task"]): [] for r in curve}
    for r in curve:
        points[(r["experiment"], r["task"])].append(r["examples per task"])
        assert 0 <= r["validation accuracy"] <= 1
    full = budget > 1000  # quick runs stop the curve at the budget
    for t in ("topic", "sentiment"):
        assert points[(f"single-task {t}", t)] == [budget // 2, budget] + ([2 * budget] if full else [])
        assert points[("multi-task", t)] == [budget]
    # the budget's point is the grid's own run (same configuration and seed, loaded from the run cache)
    at_budget = {(r["experiment"], r["task"]): r["test accuracy"] for r in curve if r["examples per task"] == budget}
    seed = m["seeds"][0]
    for t in ("topic", "sentiment"):
        assert abs(at_budget[(f"single-task {t}", t)] - m["per_seed"][f"single-task {t}/{t}/{seed}"]) < 1e-9
    for row in m["sharing"] + m["versus_probe"]:
        check_comparison(row)
    # fine-tuning against the frozen probe on the same examples: one row per task, over the seeds, with margin
    assert {(r["A"], r["task"]) for r in m["versus_probe"]} == {(f"single-task {t}", t) for t in ("topic", "sentiment")}
    assert all(r["seeds"] == len(m["seeds"]) and r["margin"] == m["margin"] for r in m["versus_probe"])
    cosines = m["gradient_cosine"]
    assert all(-1 <= c <= 1 for c in cosines.values()) and len(set(round(c, 6) for c in cosines.values())) > 1
    assert 0 <= m["neutral_news"]["share called positive"] <= 1
    assert m["reload_max_abs_diff"] < 1e-5
