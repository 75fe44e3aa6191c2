"""Notebook 05 (layer-wise learning rates): groups, rates, schedule, the weight-change mechanism, paired
comparisons of every configuration against uniform rates, judged against margins declared before the runs;
gradual unfreezing keeps its last round (no selection, as uniform); summed vs alternating at equal steps and
examples; the shares of steps of round-robin and proportional sampling; the arms with the whole encoder trained."""
from notebook_checks import check_comparison


def check(m: dict) -> None:
    # every trainable parameter sits in exactly one optimizer group, for every setting shown
    for name, cov in m["coverage"].items():
        assert cov["trainable, in no group"] == 0 and cov["in two groups"] == 0 and cov["frozen in a group"] == 0, name
        assert cov["grouped parameters"] == cov["trainable parameters"] > 0, name
    # rates from the top layer down to the embeddings: constant when uniform, strictly decreasing under decay
    for name, rates in m["rates_top_down"].items():
        assert len(rates) == m["n_layers"] + 1, name
        if name == "uniform":
            assert len(set(rates)) == 1
        else:
            assert all(a > b for a, b in zip(rates, rates[1:])), f"{name}: rates do not fall with depth: {rates}"
    assert m["schedule_ratio_spread"] < 1e-9, "the schedule must scale every group by the same factor"
    # the mechanism: decayed runs moved their bottom layer less, relative to the top, in proportion to xi^(L-1)
    ratio, decays = m["bottom_over_top"], m["layer_decay"]
    for name, xi in decays.items():
        if xi is not None:
            relative = ratio[name] / ratio["uniform"]
            expected = xi ** (m["n_layers"] - 1)
            assert 0.7 * expected < relative < 1.3 * expected, (name, relative, expected)
    # every decayed setting keeps uniform's mean rate over depth (the top layer pays for the slower bottom)
    uniform_rate = m["rates_top_down"]["uniform"][0]
    for name, rates in m["rates_top_down"].items():
        assert abs(sum(rates) / len(rates) - uniform_rate) < 1e-9 * uniform_rate, (name, rates)
        assert m["top_lr"][name] == rates[0]
    assert {r["A"] for r in m["comparisons"]} == set(m["experiments"]) - {"uniform"}
    for row in m["comparisons"]:
        assert row["B"] == "uniform" and row["margin"] > 0
        check_comparison(row)
    assert m["gradual_best_round"] == m["gradual_rounds"], "gradual unfreezing must keep its last round"
    assert m["accuracy"]["uniform"] > m["majority_baseline"] + (0.05 if len(m["seeds"]) > 1 else 0.0)  # quick: 400
    # gradual unfreezing is an arm like the others; forgetting: uniform and decayed continuations, paired
    assert "gradual unfreezing" in m["experiments"]
    decayed = [f"ξ = {xi}" for xi in m["forget_decays"]]
    assert [r["A"] for r in m["forgetting"]] == ["uniform", *decayed]
    for row in m["forgetting"] + m["forgetting_protection"]:
        check_comparison(row)
        assert -1 <= row["difference"] <= 1
    for row in m["forgetting"]:
        assert row["share of topic's gain kept"] <= 1.5, row  # a share of the starting model's gain
    assert {(r["A"], r["task"]) for r in m["forgetting_protection"]} == {(name, task) for name in decayed
                                                                           for task in ("topic", "sentiment")}
    # summed vs alternating: the same steps and examples (half a batch of each task per summed step)
    lc = m["loss_combination"]
    assert lc["steps"]["summed"] == lc["steps"]["alternating"], lc["steps"]
    assert lc["weights"]["topic"] < 1 < lc["weights"]["sentiment"]  # 1/ln 5 and 1/ln 2, shown not trained
    for run in ("alternating", "summed"):
        assert lc["accuracy"][f"{run}/topic"] > lc["majority_baseline"]["topic"] + 0.3, (run, lc["accuracy"])
        assert lc["accuracy"][f"{run}/sentiment"] > lc["majority_baseline"]["sentiment"] - 0.05, (run, lc["accuracy"])
    assert {(r["A"], r["B"], r["task"]) for r in lc["comparisons"]} == {
        ("summed", "alternating", t) for t in ("topic", "sentiment")}
    for row in lc["comparisons"]:
        assert row["margin"] > 0
        check_comparison(row)
    # task sampling: round-robin and proportional shares of steps (the proportional arm is notebook 03's exercise 2)
    ts = m["task_sampling"]
    in_proportion = ts["sizes"]["topic"] / sum(ts["sizes"].values())
    assert ts["shares"]["round-robin"]["topic"] == 0.5
    assert abs(ts["shares"]["proportional"]["topic"] - in_proportion) < 1e-12, ts["shares"]
