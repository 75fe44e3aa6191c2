"""Notebook 04 (freezing): the cache is exact, a frozen network does not learn, the sweep and scenarios are
complete and paired, a frozen head stays bit-identical through joint training, pretraining beats random
weights, forgetting is reported as a share of the gain kept, and classification training's cost to the
embedding is measured against MiniLM as shipped."""
from notebook_checks import check_comparison, check_sts


def check(m: dict) -> None:
    assert m["equivalence_max_abs_diff"] < 1e-5, "training on the frozen-layer cache differs from the full model"
    n = m["num_layers"]
    ks = sorted(v["k"] for v in m["sweep"].values())
    assert ks[0] == 0 and ks[-1] == n
    trainable = [v["trainable"] for v in sorted(m["sweep"].values(), key=lambda v: v["k"])]
    assert trainable == sorted(trainable, reverse=True) and trainable[-1] < 0.001 * trainable[0]
    seconds = {v["k"]: v["train_seconds"] for v in m["sweep"].values()}
    assert seconds[n] < 0.2 * seconds[0], seconds  # heads only on cached vectors is far cheaper
    for task, baseline in m["majority_baseline"].items():
        assert m["frozen_all"][task] < m["sweep"]["k=0"]["accuracy"][task]  # random heads learn nothing
        assert m["sweep"]["k=0"]["accuracy"][task] > baseline + 0.05
        assert abs(m["gain_kept_by_k"]["0"][task] - 1) < 1e-9  # k = 0 keeps all of its own gain
    # every k against k = 0 (heads only included), and the frozen backbone's second arm, the probe on the same
    # examples with no selection; all judged against the margin declared before the runs
    frozen = [r for r in m["sweep_comparisons"] if r["A"] == "frozen backbone (probe, same examples)"]
    assert len(m["sweep_comparisons"]) == 2 * (len(ks) - 1) + len(frozen) and f"k={n}" in {
        r["A"] for r in m["sweep_comparisons"]}
    assert {r["task"] for r in frozen} == set(m["majority_baseline"])
    for row in frozen:
        probe = next(p for p in m["heads_only_vs_probe"] if p["task"] == row["task"])
        assert abs(row["A accuracy"] - probe["B accuracy"]) < 1e-12 and row["B"] == "k=0", row
    assert all(r["margin"] > 0 and r["seeds"] == len(m["seeds"]) for r in m["sweep_comparisons"] + m["heads_only_vs_probe"])
    # scenario 3: joint training with the topic head frozen; the head must not move by a single bit
    assert m["frozen_head_unchanged"] and all(m["frozen_head_unchanged"].values()), m["frozen_head_unchanged"]
    assert {r["task"] for r in m["frozen_head"]} == {"topic", "sentiment"}
    assert m["frozen_head_k"] == n - 1  # both arms train the top layer and the heads (the sweep's k = n - 1)
    top = m["sweep"].get(f"k={n - 1}")  # the full run's sweep has k = n - 1, the quick run's does not
    for row in m["frozen_head"]:  # the trainable arm is then the sweep's k = n - 1 runs, from the run cache
        assert row["B"] == "all heads trainable" and row["seeds"] == len(m["seeds"]), row
        assert top is None or abs(row["B accuracy"] - top["accuracy"][row["task"]]) < 1e-9, row
    for row in m["sweep_comparisons"] + m["forgetting"] + m["frozen_head"] + m["heads_only_vs_probe"] \
            + m["pretrained_vs_random"]:
        check_comparison(row)
    # what pretraining is worth: the pretrained probe beats the same network with random weights on topic
    topic = next(r for r in m["pretrained_vs_random"] if r["task"] == "topic")
    assert topic["detected"] and topic["difference"] > 0, topic
    assert m["forgetting_gain_kept"] <= 1.5 and len(m["topic_test_accuracy_by_round"]) >= 2
    _embedding_cost(m)


def _embedding_cost(m: dict) -> None:
    """The last section: every classification-trained encoder against MiniLM as shipped on notebook 02's
    benchmark and on human-judged similarity; the contrastive task at the protocol's seeds and margins."""
    encoders = {row["encoder"] for row in m["series"]["table"]}
    assert {"MiniLM as shipped", "contrastive, batch 32 (02)", "multi-task (03)",
            "multi-task + contrastive"} <= encoders, encoders
    assert {row["task"] for row in m["contrastive_task"]["comparisons"]} == {"retrieval (MRR@10)", "topic",
                                                                             "sentiment"}
    seeds = len(m["seeds"])
    assert len(m["contrastive_task"]["seeds"]) == seeds
    for row in [*m["series"]["comparisons"], *m["contrastive_task"]["comparisons"], *m["sts"]["comparisons"]]:
        check_comparison(row)
    for row in m["series"]["comparisons"] + m["contrastive_task"]["comparisons"] + m["sts"]["comparisons"]:
        assert row["seeds"] == seeds and row["margin"] > 0, row
    # no encoder is clustered on the labels it was trained to separate
    for row in m["series"]["table"]:
        if row.get("topic accuracy") is not None:
            assert row["V-measure (topic)"] is None, row
    sts = m["sts"]
    check_sts(sts)
    assert ("multi-task + contrastive", "multi-task (03)") in {(row["A"], row["B"]) for row in sts["comparisons"]}
