"""Probing, similarity, speed and the figures, on the real model (small real data) and the tiny one."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from mtl_utils import SentenceEncoder
from mtl_utils.evaluation.metrics import majority_scores
from mtl_utils.evaluation.probing import embed_poolings, l2_normalize, probe, probe_cv
from mtl_utils.evaluation.similarity import cosine_matrix, nearest_neighbours, project_2d
from mtl_utils.modeling.pooling import POOLING_MODES
from mtl_utils.serving.padding import batching_speed
from series import plots
from series.corpora import load_tasks
from series.pooling_probes import cached_poolings, compare_poolings, probe_table


@pytest.fixture(scope="module")
def small_topic():
    """A small real, stratified slice of the topic task."""
    return load_tasks(sizes={"train": 150, "validation": 60, "test": 100})["topic"]


@pytest.fixture(scope="module")
def topic_vectors(encoder, small_topic):
    return {split: embed_poolings(encoder, list(small_topic[split]["text"]), batch_size=16)
            for split in ("train", "validation", "test")}


@pytest.fixture(scope="module")
def labels(small_topic):
    return {split: small_topic[split]["label"].to_numpy() for split in ("train", "validation", "test")}


def test_embed_poolings_matches_encode_for_every_mode(tiny_model_dir, small_topic):
    raw = SentenceEncoder(tiny_model_dir)
    texts = list(small_topic["test"]["text"][:12]) + ["Short.", "A rather longer sentence, with commas, to pad."]
    vectors = embed_poolings(raw, texts, batch_size=5)
    assert set(vectors) == set(POOLING_MODES)
    for mode in POOLING_MODES:
        raw.pooling = mode
        expected = raw.encode(texts, batch_size=7, sort_by_length=False)
        assert vectors[mode].shape == (len(texts), 32) and np.abs(vectors[mode] - expected).max() < 1e-5, mode
    assert np.abs(vectors["mean"] - vectors["cls"]).max() > 1e-3
    assert embed_poolings(raw, [], modes=["mean"])["mean"].shape == (0, 32)
    with pytest.raises(ValueError, match="unknown pooling"):
        embed_poolings(raw, ["x"], modes=["sum"])


def test_embedding_cache_is_keyed_on_the_weights(tiny_model_dir, tmp_path):
    """A fine-tuned (here: nudged) encoder with the same name never gets the pretrained encoder's vectors."""
    texts = ["The market rallied.", "A dull, lifeless film."]
    encoder = SentenceEncoder(tiny_model_dir)
    first = cached_poolings(encoder, texts, "demo", modes=["mean"], cache=tmp_path)
    again = cached_poolings(encoder, texts, "demo", modes=["mean"], cache=tmp_path)
    assert not first.from_cache and again.from_cache and np.array_equal(first["mean"], again["mean"])
    with torch.no_grad():
        encoder.transformer.encoder.layer[1].intermediate.dense.weight.mul_(1.5)
    tuned = cached_poolings(encoder, texts, "demo", modes=["mean"], cache=tmp_path)
    assert not tuned.from_cache and tuned.path != first.path
    assert np.abs(tuned["mean"] - first["mean"]).max() > 1e-3
    assert cached_poolings(encoder, texts[:1], "demo", modes=["mean"], cache=tmp_path).path != tuned.path
    tuned.path.write_bytes(b"not an npz")
    with pytest.warns(UserWarning, match="is damaged .*; computing them again"):
        repaired = cached_poolings(encoder, texts, "demo", modes=["mean"], cache=tmp_path)
    assert np.array_equal(repaired["mean"], tuned["mean"])
    assert not list(tmp_path.glob(".tmp-*"))


def test_probe_chooses_C_on_validation_and_beats_majority(topic_vectors, labels):
    result = probe(topic_vectors["train"]["mean"], labels["train"], topic_vectors["validation"]["mean"],
                   labels["validation"], topic_vectors["test"]["mean"], labels["test"])
    assert result.C == max(result.validation, key=lambda c: (result.validation[c], -abs(np.log10(c))))
    assert set(result.validation) == {0.1, 1.0, 10.0} and result.correct.shape == labels["test"].shape
    base = majority_scores(labels["train"], labels["test"])
    assert result.accuracy > base["accuracy"] + 0.3 and result.macro_f1 > base["macro_f1"] + 0.3
    shuffled = np.random.default_rng(0).permutation(labels["train"])
    noise = probe(topic_vectors["train"]["mean"], shuffled, topic_vectors["validation"]["mean"], labels["validation"],
                  topic_vectors["test"]["mean"], labels["test"])
    assert noise.accuracy < result.accuracy - 0.3  # the probe learns labels, not artefacts


def test_probe_on_known_data():
    X = np.array([[0.0, 1.0], [0.1, 0.9], [1.0, 0.0], [0.9, 0.1]] * 5)
    y = np.array([0, 1] * 0 + [0, 0, 1, 1] * 5)
    result = probe(X, y, X, y, X, y)
    assert result.accuracy == 1.0 and result.macro_f1 == 1.0 and result.correct.all()
    assert probe(X, y, X, y, X, 1 - y).accuracy == 0.0


def test_compare_poolings_and_table(topic_vectors, labels):
    results = compare_poolings(topic_vectors, labels)
    assert set(results) == {"raw", "l2"} and set(results["raw"]) == set(POOLING_MODES)
    table = probe_table({"topic": results}, {"topic": majority_scores(labels["train"], labels["test"])})
    assert len(table) == 2 * len(POOLING_MODES) + 1
    row = table[(table["vectors"] == "raw") & (table["pooling"] == "mean")].iloc[0]
    assert row["accuracy"] == results["raw"]["mean"].accuracy and row["low"] < row["accuracy"] < row["high"]
    cls = table[(table["vectors"] == "raw") & (table["pooling"] == "cls")].iloc[0]
    gap = results["raw"]["cls"].accuracy - results["raw"]["mean"].accuracy
    assert cls["vs mean"] == pytest.approx(gap) and cls["vs mean low"] <= gap <= cls["vs mean high"]
    assert 0 <= cls["McNemar p"] <= 1 and cls["excludes beyond"] > 0
    with pytest.raises(ValueError, match="unknown variant"):
        compare_poolings(topic_vectors, labels, variants=["zscore"])


def test_l2_normalize():
    assert np.allclose(l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]])), [[0.6, 0.8], [0.0, 0.0]])


def test_similarity_and_neighbours(topic_vectors, small_topic):
    corpus = list(small_topic["train"]["text"][:40])
    names = [small_topic.labels[i] for i in small_topic["train"]["label"][:40]]
    vectors = topic_vectors["train"]["mean"][:40]
    sims = cosine_matrix(vectors)
    assert sims.shape == (40, 40) and np.allclose(np.diag(sims), 1, atol=1e-5) and np.allclose(sims, sims.T)
    table = nearest_neighbours(vectors[[3, 7]], [corpus[3], corpus[7]], vectors, corpus, names, k=2)
    assert len(table) == 4 and table.loc[(corpus[3], 1), "neighbour"] == corpus[3]
    with pytest.raises(ValueError, match="lengths"):
        nearest_neighbours(vectors[:2], ["only one"], vectors, corpus)


def test_project_2d(topic_vectors):
    X = topic_vectors["test"]["mean"][:60]
    pca = project_2d(X, "pca")
    assert pca.shape == (60, 2) and pca[:, 0].var() >= pca[:, 1].var()
    assert np.allclose(project_2d(X, "tsne", seed=1), project_2d(X, "tsne", seed=1))
    with pytest.raises(ValueError, match="unknown method"):
        project_2d(X, "umap")


def test_batching_speed_table(tiny_model_dir, small_topic):
    texts = list(small_topic["train"]["text"][:40]) + sorted(small_topic["train"]["text"], key=len)[-8:]
    table = batching_speed(SentenceEncoder(tiny_model_dir), texts, batch_size=8, repeats=1)
    assert list(table.index) == ["length-sorted", "input order"] and (table["sentences/s (best)"] > 0).all()
    assert table.loc["length-sorted", "padded positions"] < table.loc["input order", "padded positions"]


def test_figures_are_labelled_and_shown_with_alt_text(topic_vectors, small_topic, tmp_path, monkeypatch):
    sims = cosine_matrix(topic_vectors["test"]["mean"][:5])
    fig = plots.similarity_heatmap(sims, [f"sentence {i}" for i in range(5)], title="five")
    assert isinstance(fig, Figure) and fig.axes[0].get_title() == "five" and fig.axes[0].get_xlabel()
    with pytest.raises(ValueError, match="does not match"):
        plots.similarity_heatmap(sims, ["too few"])
    table = pd.DataFrame({"task": ["topic"] * 2, "name": ["mean", "cls"], "variant": ["raw"] * 2,
                          "accuracy": [0.9, 0.8], "low": [0.85, 0.75], "high": [0.93, 0.84],
                          "majority baseline": [0.25, 0.25]})
    bars = plots.interval_bars(table, "variant", "name", "probes", "test accuracy")
    assert bars.axes[0].get_xlabel() == "test accuracy" and bars.axes[0].get_title() == "topic"
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append(obj))
    path = tmp_path / "bars.png"
    plots.show(bars, alt="Accuracy of two poolings", path=path)
    assert path.is_file() and path.read_bytes()[:4] == b"\x89PNG"
    assert 'alt="Accuracy of two poolings"' in shown[0]["text/html"] and shown[0]["image/png"]
    coords = project_2d(topic_vectors["test"]["mean"][:30], "pca")
    maps = plots.embedding_maps([plots.MapPanel(coords, small_topic["test"]["label"].to_numpy()[:30],
                                                small_topic.labels, "by topic", "PC")] * 3)
    assert len([a for a in maps.axes if a.get_visible()]) == 3


def test_bag_of_words_probe_and_random_initialisation(tiny_model_dir, small_topic, labels):
    from mtl_utils.evaluation.probing import bag_of_words_probe, randomly_initialised
    texts = {s: small_topic[s]["text"] for s in ("train", "validation", "test")}
    words = bag_of_words_probe(texts, labels)
    majority = np.mean(labels["test"] == np.bincount(labels["train"]).argmax())
    assert words.correct.shape == labels["test"].shape and words.accuracy == pytest.approx(words.correct.mean())
    assert words.accuracy > majority + 0.1, (words.accuracy, majority)  # even 150 sentences teach some words
    pretrained = SentenceEncoder(tiny_model_dir)
    state = torch.random.get_rng_state().clone()
    random = randomly_initialised(SentenceEncoder(tiny_model_dir), seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's random state is untouched
    assert random.fingerprint() != pretrained.fingerprint()
    assert random.fingerprint() == randomly_initialised(SentenceEncoder(tiny_model_dir), seed=3).fingerprint()
    assert not random.training and random.encode(["a sentence"]).shape == (1, random.hidden_size)


def test_architecture_figure_names_every_part(tiny_model_dir):
    from mtl_utils import anatomy
    from mtl_utils.modeling.model import MultiTaskModel
    spec = {"topic": ("a", "b", "c"), "sentiment": ("neg", "pos"), "genre": ("x", "y")}
    model = MultiTaskModel(spec, model=tiny_model_dir)
    fig = plots.architecture(anatomy.parameter_table(model), spec, model.encoder.hidden_size)
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert isinstance(fig, Figure) and all(f"head: {task}" in texts for task in spec)
    assert f"{anatomy.num_layers(model)} transformer layers" in texts and "neg, pos" in texts


def test_probe_cv_chooses_C_from_the_training_labels_alone(topic_vectors, labels):
    X = {split: topic_vectors[split]["mean"] for split in ("train", "test")}
    result = probe_cv(X["train"], labels["train"], X["test"], labels["test"], seed=0)
    assert set(result.validation) == {0.1, 1.0, 10.0} and result.C in result.validation
    assert result.correct.shape == labels["test"].shape and result.accuracy == result.correct.mean()
    assert result.accuracy > 0.5  # 5 classes: well above the majority class on real vectors
    again = probe_cv(X["train"], labels["train"], X["test"], labels["test"], seed=0)
    assert again.C == result.C and np.array_equal(again.correct, result.correct)
    # the choice depends on the training labels only: scrambled test labels change the score, not C
    shuffled = np.random.default_rng(0).permutation(labels["test"])
    scrambled = probe_cv(X["train"], labels["train"], X["test"], shuffled, seed=0)
    assert scrambled.C == result.C and scrambled.validation == result.validation
    assert scrambled.accuracy < result.accuracy - 0.2
    # three examples per class: five-fold cross-validation is impossible (StratifiedKFold would raise), so it
    # takes three folds and still learns
    few = np.concatenate([np.flatnonzero(labels["train"] == k)[:3] for k in range(5)])
    small = probe_cv(X["train"][few], labels["train"][few], X["test"], labels["test"], seed=0)
    assert small.accuracy > 0.3
    with pytest.raises(ValueError, match="at least 2 training examples of every class"):
        keep = np.r_[np.flatnonzero(labels["train"] != 0), np.flatnonzero(labels["train"] == 0)[:1]]
        probe_cv(X["train"][keep], labels["train"][keep], X["test"], labels["test"])
