"""Notebook 04 (layer-wise learning rates): groups, rates, schedule and the weight-change mechanism."""


def check(m: dict) -> None:
    # every trainable parameter sits in exactly one optimizer group, for every setting shown
    assert m["coverage"], "no coverage recorded"
    for name, cov in m["coverage"].items():
        assert cov["trainable, in no group"] == 0 and cov["in two groups"] == 0 and cov["frozen in a group"] == 0, name
        assert cov["grouped tensors"] == cov["trainable tensors"] > 0, name
        assert cov["grouped parameters"] == cov["trainable parameters"] > 0, name

    # rates from the top layer down to the embeddings: constant when uniform, strictly decreasing under decay
    for name, rates in m["rates_top_down"].items():
        assert len(rates) == m["n_layers"] + 1, name
        if name == "uniform":
            assert len(set(rates)) == 1
        else:
            assert all(a > b for a, b in zip(rates, rates[1:])), f"{name}: rates do not decrease with depth: {rates}"
    assert m["schedule_ratio_spread"] < 1e-9, "the schedule must scale every group by the same factor"

    # every configuration ran on every seed and produced valid scores
    assert m["runs"] == len(m["experiments"]) * len(m["seeds"])
    for experiment in m["experiments"]:
        for task, scores in m["test"][experiment].items():
            assert 0.0 <= scores["accuracy_mean"] <= 1.0 and 0.0 <= scores["macro_f1_mean"] <= 1.0

    # the mechanism: decayed runs moved their bottom layer less (relative to their top layer) than the uniform
    # run, more so for smaller xi; the higher head rate moved the heads further
    ratio = m["bottom_over_top"]
    decayed = sorted((xi, name) for name, xi in m["layer_decay"].items() if xi is not None)
    assert decayed, "no layer-decay experiment recorded"
    for xi, name in decayed:
        assert ratio[name] < ratio["uniform"], f"{name}: bottom/top change {ratio[name]} vs uniform {ratio['uniform']}"
    assert ratio[decayed[0][1]] < ratio[decayed[-1][1]], "smaller xi must slow the bottom layer more"
    assert m["head_change"][m["head_run"]] > m["head_change"]["uniform"]
