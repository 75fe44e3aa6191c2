"""Notebook 01 (sentence embeddings): shapes, reference check, padding, probes above the majority, few labels."""
from notebook_checks import check_comparison


def check(m: dict) -> None:
    assert m["embedding_dim"] == 384 and m["one_sentence_shape"] == [1, 384]
    assert m["reference_max_abs_diff"] < 1e-5, "our encoder must reproduce sentence-transformers"
    assert m["padding"]["alone_vs_batched_max_abs_diff"] < 1e-5  # the masked mean ignores padding
    assert m["padding"]["unmasked_vs_alone_max_abs_diff"] > 1e-2  # ... and the unmasked one visibly does not
    # margins over the majority class seen in quick runs (topic ~ +0.6, sentiment ~ +0.12), with room for noise
    margins = {"topic": 0.4, "sentiment": 0.05}
    for task, margin in margins.items():
        assert m["mean_probe"][task]["accuracy"] > m["majority_baseline"][task] + margin, (task, m["mean_probe"][task])
        assert m["mean_probe"][task]["C"] in (0.1, 1.0, 10.0)
        assert len(m["probe"][task]) == 6  # 3 poolings x raw / L2-normalised
    assert m["neighbours_label_agreement"] >= 0.5
    assert m["heatmap"]["mean_cosine_same_label"] > m["heatmap"]["mean_cosine_different_label"]
    assert m["speed"]["length_sorted"]["padded_fraction"] < m["speed"]["input_order"]["padded_fraction"]
    # attention pooling: paired with mean pooling over three seeds (same probe), well above the majority class
    assert {row["task"] for row in m["attention_vs_mean"]} == {"topic", "sentiment", "genre"}
    for row in m["attention_vs_mean"]:
        assert row["seeds"] == 3, row
        check_comparison(row)
        assert row["A accuracy"] > m["majority_baseline"][row["task"]] + 0.05, row
    # the seed's task A: three balanced classes; the frozen probe and the bag of words both far above chance
    assert abs(m["majority_baseline"]["genre"] - 1 / 3) < 0.02
    assert m["mean_probe"]["genre"]["accuracy"] > m["majority_baseline"]["genre"] + 0.3
    assert m["bag_of_words"]["genre"]["accuracy"] > m["majority_baseline"]["genre"] + 0.3
    assert set(m["genre_by_class"]) == {"news", "opinion", "entertainment"}
    for row in m["encoder_vs_bag_of_words"]:
        check_comparison(row)
    # § 9: full fine-tuning against the frozen encoder + probe on the same labelled subsets, paired by seed
    few, majority = m["few_labels"], m["majority_baseline"]["topic"]
    # "labels": each budget's subset size (stratified rounding may add a sentence); comparisons name the budget
    assert len(few["labels"]) == 2 and few["labels"][0] < few["labels"][1]
    budget = few["comparisons"][0]["labels"]
    assert [row["labels"] for row in few["comparisons"]] == [budget, "all"] and abs(few["labels"][0] - budget) <= 3
    for row in few["comparisons"]:  # each row carries its subset size, which names both arms' accuracies
        assert {f"full fine-tuning/{row['sentences']}", f"frozen encoder + probe/{row['sentences']}"} \
            <= set(few["accuracy"]), (row["sentences"], few["accuracy"])
    for row in few["comparisons"]:
        assert (row["A"], row["B"], row["task"]) == ("full fine-tuning", "frozen encoder + probe", "topic"), row
        assert -1 <= row["low"] and row["high"] <= 1, row
        check_comparison(row)
        assert row["B accuracy"] > majority + 0.2, row  # frozen vectors separate topics even from few labels
    assert few["accuracy"][f"full fine-tuning/{few['labels'][-1]}"] > majority + 0.2
    # the seeded comparisons are judged against margins declared before their runs
    assert all(r["margin"] > 0 for r in m["attention_vs_mean"] + m["few_labels"]["comparisons"])
