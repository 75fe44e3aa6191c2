"""Notebook 03 (freezing trade-offs): the cache is exact, a frozen network does not learn, the probe does."""


def check(m: dict) -> None:
    assert m["equivalence_max_abs_diff"] < 1e-5, "training on the frozen-layer cache differs from the full model"
    n = m["num_layers"]
    ks = sorted(int(k) for k in m["sweep"])
    assert ks[0] == 0 and ks[-1] == n and set(ks) <= set(range(n + 1))
    for task, baseline in m["majority_baseline"].items():
        # scenario 2: heads trained on the frozen backbone beat always predicting the majority class
        assert m["heads_only"][task]["accuracy"] > baseline, (task, m["heads_only"][task], baseline)
        # scenario 1: random heads on a frozen network stay near chance (well below a trained probe)
        assert m["frozen_all"][task]["accuracy"] < m["heads_only"][task]["accuracy"]
    # fewer trainable parameters as k grows; heads only trains under 0.1% of the model
    trainable = [m["sweep"][str(k)]["trainable"] for k in ks]
    assert trainable == sorted(trainable, reverse=True) and trainable[-1] < 0.001 * trainable[0]
    # with the backbone and the topic head frozen, topic predictions cannot move
    assert m["head_drift"]["backbone_frozen"] == 0.0
