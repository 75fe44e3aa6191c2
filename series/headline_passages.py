"""A retrieval benchmark from the shipped BBC News articles: find an article's passage from its headline.

Every article gives a **headline** (its first line) and a **passage**: the third sentence of its body, the
first beyond the two lead sentences that the topic task uses, so a passage is never a text the classifiers
trained or were tested on. The article splits are the topic task's (same stable hash, same deduplication),
so no article feeds two splits:

* **training pairs**: (headline, passage) of every training article (what contrastive training sees);
* **evaluation**: the test articles' headlines are the queries, the passages of the validation *and* test
  articles the corpus (more distractors than queries), one relevant passage per query.

Taught in notebook 02 (how a sentence transformer is trained).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import pandas as pd

from mtl_utils.core import assets
from mtl_utils.data.retrieval import RetrievalSet
from series.corpora import TOPIC_LABELS, assign_splits, split_sentences, stratified_subsample

# Quick mode: training articles, test articles (queries) and validation articles (extra passages).
QUICK_ARTICLES: dict[str, int] = {"train": 128, "test": 100, "validation": 50}
LEAD_SENTENCES = 2      # the topic task's lead: skipped
PASSAGE_SENTENCES = 1   # sentences per passage


@dataclass(frozen=True)
class HeadlinePassages:
    """The benchmark: training pairs (``article``, ``headline``, ``passage``, ``label``), the evaluation
    set, and how many articles were left out and why (no passage; a held-out headline or passage that a
    training article also has, which would leak; a passage text two held-out articles share)."""

    train: pd.DataFrame = field(repr=False)
    evaluation: RetrievalSet = field(repr=False)
    dropped: dict[str, int] = field(default_factory=dict)

    def describe(self) -> pd.DataFrame:
        """Sizes as a small table."""
        e = self.evaluation
        return pd.DataFrame({"texts": [len(self.train), len(e), len(e.corpus_ids)]},
                            index=["training pairs (headline, passage)", "queries (test headlines)",
                                   "corpus (validation + test passages)"])


@lru_cache(maxsize=None)
def _articles() -> pd.DataFrame:
    """Every BBC article once (``article``, ``label``, ``text``: the raw file, ``split``), split as the topic
    task splits it (:func:`~series.corpora.assign_splits` on the same deduplicated texts)."""
    rows = []
    for folder in sorted(p for p in assets.bbc_news_dir().iterdir() if p.is_dir()):
        label = {"sports": "sport"}.get(folder.name, folder.name)
        if label not in TOPIC_LABELS:
            raise ValueError(f"unexpected BBC topic folder {folder}; expected one of {TOPIC_LABELS}")
        for path in sorted(folder.glob("*.txt")):
            raw = path.read_bytes().decode("utf-8", errors="replace").strip()
            rows.append({"article": f"{label}/{path.stem}", "label": TOPIC_LABELS.index(label), "text": raw})
    articles = pd.DataFrame(rows).drop_duplicates("text").reset_index(drop=True)
    articles["split"] = assign_splits(articles["text"], articles["label"])
    return articles


def _pairs(articles: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for art in articles.itertuples():
        headline, _, body = art.text.partition("\n")
        sentences = split_sentences(body)[LEAD_SENTENCES:LEAD_SENTENCES + PASSAGE_SENTENCES]
        rows.append({"article": art.article, "headline": headline.strip(), "passage": " ".join(sentences),
                     "label": art.label, "split": art.split})
    return pd.DataFrame(rows)


def load_headline_passages(quick: bool = False) -> HeadlinePassages:
    """The headline → passage benchmark (module docstring); ``quick`` takes a fixed stratified sample of
    :data:`QUICK_ARTICLES` articles per split."""
    pairs = _pairs(_articles())
    kept = pairs[(pairs["passage"] != "") & (pairs["headline"] != "")]
    train = kept[kept["split"] == "train"]
    held_out = kept[kept["split"] != "train"]
    seen = held_out["headline"].isin(set(train["headline"])) | held_out["passage"].isin(set(train["passage"]))
    repeated = held_out["passage"].duplicated(keep=False)
    held_out = held_out[~seen & ~repeated]
    if quick:
        sample = pd.concat([train, held_out]).rename(columns={"article": "text"})
        train, held_out = (pd.concat([stratified_subsample(sample[sample["split"] == s], QUICK_ARTICLES[s])
                                      for s in splits]).rename(columns={"text": "article"})
                           for splits in (["train"], ["test", "validation"]))
    test = held_out[held_out["split"] == "test"]
    corpus = held_out.sort_values("article")
    evaluation = RetrievalSet(tuple(test["article"]), tuple(test["headline"]), tuple(corpus["article"]),
                              tuple(corpus["passage"]), {a: frozenset([a]) for a in test["article"]})
    dropped = {"no passage (a body of two sentences or fewer)": int(len(pairs) - len(kept)),
               "held-out headline or passage also in training": int(seen.sum()),
               "held-out passage repeated": int((repeated & ~seen).sum())}
    return HeadlinePassages(train.drop(columns="split").reset_index(drop=True), evaluation, dropped)


def headline_sentences(benchmark: HeadlinePassages, per_article: int = 8) -> tuple[list[str], list[list[str]]]:
    """Each training article's headline and its body sentences past the lead (at most ``per_article``, the
    benchmark's passage first): the pairs notebook 06's static model trains on. Training articles only (the
    split keeps articles apart; a sentence two articles share is not looked for)."""
    bodies = _articles().set_index("article")["text"]
    headlines, sentences = [], []
    for article, headline in zip(benchmark.train["article"], benchmark.train["headline"]):
        body = split_sentences(bodies[article].partition("\n")[2])[LEAD_SENTENCES:LEAD_SENTENCES + per_article]
        headlines.append(headline)
        sentences.append([s for s in body if s])
    return headlines, sentences


def validation_queries(benchmark: HeadlinePassages) -> RetrievalSet:
    """The validation articles' headlines as queries against the benchmark's corpus (which holds their
    passages): what a training budget is chosen on, never the test headlines."""
    e = benchmark.evaluation
    headline = _pairs(_articles()).set_index("article")["headline"]
    asked = [a for a in e.corpus_ids if a not in e.relevant]
    return RetrievalSet(tuple(asked), tuple(headline[a].strip() for a in asked), e.corpus_ids, e.passages,
                        {a: frozenset([a]) for a in asked})
