"""Notebook 03 (freezing): the cache is exact, a frozen network does not learn, the sweep and scenarios are
complete and paired, freezing the backbone as well as the head keeps the frozen task's predictions."""


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
    assert len(m["sweep_comparisons"]) == 2 * (len(ks) - 1) and len(m["gradual"]) == 2
    for row in m["sweep_comparisons"] + m["forgetting"] + m["gradual"] + m["heads_only_vs_probe"]:
        assert row["low"] <= row["difference"] <= row["high"]
    frozen_both = m["topic_val_accuracy_by_round"]["topic head and backbone frozen"]
    assert len(set(frozen_both)) == 1, "with the backbone and the head frozen, topic cannot move"
