def check(m: dict) -> None:
    assert m["embedding_dim"] == 384
    assert m["one_sentence_shape"] == [1, 384]
    assert m["reference_max_abs_diff"] < 1e-5
    # padding must not count, and the unmasked mean must visibly differ
    assert m["padding"]["alone_vs_batched_max_abs_diff"] < 1e-5
    assert m["padding"]["unmasked_vs_alone_max_abs_diff"] > 1e-3
    for task in ("topic", "sentiment"):
        assert m["probe"][task]["mean"]["accuracy"] > m["majority_baseline"][task]
        for results in (m["probe"][task], m["probe_l2"][task]):
            assert set(results) == {"mean", "cls", "max"}
            assert all(0 <= r["accuracy"] <= 1 and 0 <= r["macro_f1"] <= 1 for r in results.values())
    assert m["speed"]["length_sorted"]["padded_fraction"] < m["speed"]["input_order"]["padded_fraction"]
    assert all(m["speed"][k]["best_sentences_per_s"] > 0 for k in ("length_sorted", "input_order"))
