def check(m: dict) -> None:
    assert m["embedding_dim"] == 384
    assert m["reference_max_abs_diff"] < 1e-5
    for task in ("topic", "sentiment"):
        assert m["probe"][task]["mean"]["accuracy"] > m["majority_baseline"][task]
