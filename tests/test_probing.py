"""Probing, similarity, speed and plotting helpers of notebook 01, on the real model and small real data."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from mtl_utils import SentenceEncoder, load_tasks
from mtl_utils.plots import MapPanel, embedding_maps, pooling_bars, similarity_heatmap
from mtl_utils.pooling import POOLING_MODES
from mtl_utils.probing import (
    accuracy_interval,
    cached_poolings,
    describe_poolings,
    compare_poolings,
    embed_poolings,
    l2_normalize,
    majority_scores,
    pooling_table,
    probe,
)
from mtl_utils.similarity import cosine_matrix, nearest_neighbours, project_2d
from mtl_utils.speed import batching_speed


@pytest.fixture(scope="module")
def raw_encoder():
    """The bundled model, no normalisation: the vectors embed_poolings is meant to reproduce."""
    return SentenceEncoder(normalize=False)


@pytest.fixture(scope="module")
def small_topic():
    """A small real, stratified slice of the topic task: 150 train, 100 test sentences."""
    return load_tasks(sizes={"train": 150, "validation": 10, "test": 100})["topic"]


@pytest.fixture(scope="module")
def topic_vectors(raw_encoder, small_topic):
    return {split: embed_poolings(raw_encoder, list(small_topic[split]["text"]), batch_size=16)
            for split in ("train", "test")}


def test_embed_poolings_matches_encode_for_every_mode(raw_encoder, small_topic):
    texts = list(small_topic["test"]["text"][:12]) + ["Short.", "A rather longer sentence, with commas, to pad."]
    vectors = embed_poolings(raw_encoder, texts, batch_size=5)
    assert set(vectors) == set(POOLING_MODES)
    for mode in POOLING_MODES:
        raw_encoder.pooling = mode
        try:
            expected = raw_encoder.encode(texts, batch_size=7, sort_by_length=False)
        finally:
            raw_encoder.pooling = "mean"
        assert vectors[mode].shape == (len(texts), 384)
        assert np.abs(vectors[mode] - expected).max() < 1e-5, mode
    # the three modes really differ
    assert np.abs(vectors["mean"] - vectors["cls"]).max() > 1e-2
    assert np.abs(vectors["mean"] - vectors["max"]).max() > 1e-2


def test_embed_poolings_edge_cases(raw_encoder):
    assert embed_poolings(raw_encoder, [], modes=["mean"])["mean"].shape == (0, 384)
    one = embed_poolings(raw_encoder, "one sentence", modes=["cls"])
    assert list(one) == ["cls"] and one["cls"].shape == (1, 384)
    with pytest.raises(ValueError, match="unknown pooling"):
        embed_poolings(raw_encoder, ["x"], modes=["sum"])
    with pytest.raises(ValueError, match="batch_size"):
        embed_poolings(raw_encoder, ["x"], batch_size=0)


def test_cache_loads_and_recomputes(raw_encoder, tmp_path, monkeypatch):
    texts = ["The market rallied.", "A dull, lifeless film."]
    first = cached_poolings(raw_encoder, texts, "demo", modes=["mean", "max"], cache=tmp_path)
    assert not first.from_cache and first.path.is_file() and first.path.parent == tmp_path
    second = cached_poolings(raw_encoder, texts, "demo", modes=["mean", "max"], cache=tmp_path)
    assert second.from_cache and second.path == first.path
    assert np.array_equal(second["mean"], first["mean"]) and np.array_equal(second["max"], first["max"])
    other = cached_poolings(raw_encoder, texts[:1], "demo", modes=["mean", "max"], cache=tmp_path)
    assert other.path != first.path and not other.from_cache  # different texts, different key

    import mtl_utils.probing as probing

    calls = []
    real = probing.embed_poolings
    monkeypatch.setattr(probing, "embed_poolings", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = cached_poolings(raw_encoder, texts, "demo", modes=["mean", "max"], cache=tmp_path, recompute=True)
    assert calls and not again.from_cache
    assert np.abs(again["mean"] - first["mean"]).max() < 1e-6


def test_probe_beats_majority_and_shuffled_labels(topic_vectors, small_topic):
    train_y, test_y = small_topic["train"]["label"].values, small_topic["test"]["label"].values
    real = probe(topic_vectors["train"]["mean"], train_y, topic_vectors["test"]["mean"], test_y)
    base = majority_scores(train_y, test_y)
    assert base["accuracy"] == pytest.approx(small_topic.majority_baseline("test"))
    assert real["converged"] == 1.0
    assert real["accuracy"] > base["accuracy"] + 0.3
    assert real["macro_f1"] > base["macro_f1"] + 0.3
    shuffled = np.random.default_rng(0).permutation(train_y)
    noise = probe(topic_vectors["train"]["mean"], shuffled, topic_vectors["test"]["mean"], test_y)
    assert noise["accuracy"] < real["accuracy"] - 0.3  # the probe learns labels, not artefacts


def test_probe_scores_on_known_data():
    X = np.array([[0.0, 1.0], [0.1, 0.9], [1.0, 0.0], [0.9, 0.1]] * 5)
    y = np.array([0, 0, 1, 1] * 5)
    assert probe(X, y, X, y) == {"accuracy": 1.0, "macro_f1": 1.0, "converged": 1.0}
    flipped = probe(X, y, X, 1 - y)
    assert flipped["accuracy"] == 0.0 and flipped["macro_f1"] == 0.0
    # majority class on a 3:1 test split: accuracy 0.75, macro-F1 = (F1 of class 0 + 0) / 2
    base = majority_scores(np.array([0, 0, 1]), np.array([0, 0, 0, 1]))
    assert base["accuracy"] == 0.75 and base["macro_f1"] == pytest.approx((2 * 0.75 / 1.75) / 2)


def test_compare_poolings_and_table(topic_vectors, small_topic):
    train_y, test_y = small_topic["train"]["label"].values, small_topic["test"]["label"].values
    results = compare_poolings(topic_vectors["train"], train_y, topic_vectors["test"], test_y)
    assert set(results) == {"raw", "l2"} and set(results["raw"]) == set(POOLING_MODES)
    table = pooling_table({"topic": results}, {"topic": majority_scores(train_y, test_y)})
    assert list(table.columns[:2]) == ["accuracy", "macro-F1"]
    assert len(table) == 2 * len(POOLING_MODES) + 1
    assert table.loc[("topic", "raw", "mean"), "accuracy"] == results["raw"]["mean"]["accuracy"]
    assert table.loc[("topic", "-", "majority class"), "accuracy"] == pytest.approx(small_topic.majority_baseline())
    assert table["accuracy"].between(0, 1).all()
    with pytest.raises(ValueError, match="unknown variant"):
        compare_poolings(topic_vectors["train"], train_y, topic_vectors["test"], test_y, variants=["zscore"])
    with pytest.raises(ValueError, match="n_test"):
        describe_poolings(table)
    with_ci = pooling_table({"topic": results}, {"topic": majority_scores(train_y, test_y)}, {"topic": len(test_y)})
    acc = with_ci.loc[("topic", "L2-normalised", "cls"), "accuracy"]
    assert with_ci.loc[("topic", "L2-normalised", "cls"), "accuracy ±95%"] == pytest.approx(
        1.96 * np.sqrt(acc * (1 - acc) / len(test_y)))
    text = describe_poolings(with_ci)
    assert text.startswith("- **topic**: best") and "mean minus other poolings: cls" in text
    assert "L2-normalised minus raw vectors: mean" in text


def test_accuracy_interval():
    assert accuracy_interval(0.5, 100) == pytest.approx(0.098)
    assert accuracy_interval(1.0, 10) == 0.0
    assert accuracy_interval(0.9, 10_000) < accuracy_interval(0.9, 100)
    with pytest.raises(ValueError):
        accuracy_interval(0.5, 0)


def test_l2_normalize():
    out = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert np.allclose(out, [[0.6, 0.8], [0.0, 0.0]])


def test_similarity_and_neighbours(raw_encoder, small_topic):
    corpus = list(small_topic["train"]["text"][:40])
    labels = [small_topic.labels[i] for i in small_topic["train"]["label"][:40]]
    vectors = raw_encoder.encode(corpus)
    sims = cosine_matrix(vectors)
    assert sims.shape == (40, 40) and np.allclose(np.diag(sims), 1, atol=1e-5) and np.allclose(sims, sims.T)
    table = nearest_neighbours(vectors[[3, 7]], [corpus[3], corpus[7]], vectors, corpus, labels, k=2)
    assert len(table) == 4
    assert table.loc[(corpus[3], 1), "neighbour"] == corpus[3] and table.loc[(corpus[3], 1), "cosine"] == 1.0
    assert table.loc[(corpus[7], 1), "label"] == labels[7]
    assert table.loc[(corpus[3], 2), "cosine"] < 1.0
    with pytest.raises(ValueError, match="lengths"):
        nearest_neighbours(vectors[:2], ["only one"], vectors, corpus)


def test_project_2d(topic_vectors):
    X = topic_vectors["test"]["mean"][:60]
    pca = project_2d(X, "pca")
    assert pca.shape == (60, 2) and np.isfinite(pca).all()
    assert pca[:, 0].var() >= pca[:, 1].var()  # first component explains the most
    tsne = project_2d(X, "tsne", seed=1)
    assert tsne.shape == (60, 2) and np.allclose(tsne, project_2d(X, "tsne", seed=1))
    with pytest.raises(ValueError, match="unknown method"):
        project_2d(X, "umap")


def test_batching_speed_table(raw_encoder, small_topic):
    texts = list(small_topic["train"]["text"][:40]) + sorted(small_topic["train"]["text"], key=len)[-8:]
    table = batching_speed(raw_encoder, texts, batch_size=8, repeats=1)
    assert list(table.index) == ["length-sorted", "input order"]
    assert (table["sentences/s (best)"] > 0).all()
    assert table.loc["length-sorted", "padded positions"] < table.loc["input order", "padded positions"]


def test_figures_are_labelled(topic_vectors, small_topic):
    import matplotlib.pyplot as plt

    sims = cosine_matrix(topic_vectors["test"]["mean"][:5])
    fig = similarity_heatmap(sims, [f"sentence {i}" for i in range(5)], title="five")
    assert isinstance(fig, Figure) and fig.axes[0].get_title() == "five" and fig.axes[0].get_xlabel()
    with pytest.raises(ValueError, match="does not match"):
        similarity_heatmap(sims, ["too few"])
    table = pd.DataFrame(
        {"accuracy": [0.9, 0.8, 0.3], "macro-F1": [0.9, 0.8, 0.1]},
        index=pd.MultiIndex.from_tuples([("topic", "raw", "mean"), ("topic", "raw", "cls"),
                                         ("topic", "-", "majority class")], names=["task", "vectors", "pooling"]),
    )
    bars = pooling_bars(table)
    ax = bars.axes[0]
    assert ax.get_ylabel() == "test accuracy" and "topic" in ax.get_title()
    assert bars.axes[0].get_legend() is not None
    assert [t.get_text() for t in ax.get_xticklabels()] == ["mean", "cls"]
    coords = project_2d(topic_vectors["test"]["mean"][:30], "pca")
    labels = small_topic["test"]["label"].values[:30]
    maps = embedding_maps([MapPanel(coords, labels, small_topic.labels, "by topic", "PC")] * 3)
    visible = [a for a in maps.axes if a.get_visible()]
    assert len(visible) == 3 and visible[0].get_xlabel() == "PC 1"
    plt.close("all")
