"""A second pair set, from another domain: a film synopsis's **opening sentence** and its **next sentence**, from
the Rotten Tomatoes corpus's plot synopses (no task of the series uses them). Films are split by name
(:func:`~series.corpora.assign_splits`), so no synopsis feeds two splits. As in :mod:`series.headline_passages`:

* **training pairs**: (opening, next sentence) of every training film;
* **evaluation**: the test films' openings are the queries, the next sentences of the validation *and* test
  films the corpus, one relevant sentence per query.

A synopsis of one sentence, or whose next sentence another synopsis repeats, is left out. Taught in notebook 02
(two pair sets).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import pandas as pd

from mtl_utils.core import assets
from mtl_utils.data.retrieval import RetrievalSet
from series.corpora import assign_splits, split_sentences, stable_hash

# Quick mode: films per split (the lowest by hash of their name).
QUICK_FILMS: dict[str, int] = {"train": 64, "test": 60, "validation": 30}


@dataclass(frozen=True)
class FilmPlots:
    """Training pairs (``film``, ``opening``, ``next``) and the evaluation set."""

    train: pd.DataFrame = field(repr=False)
    evaluation: RetrievalSet = field(repr=False)


@lru_cache(maxsize=None)
def load_film_plots(quick: bool = False) -> FilmPlots:
    """The opening → next sentence pairs (module docstring); ``quick`` keeps :data:`QUICK_FILMS` films per split."""
    raw = pd.read_csv(assets.rotten_tomatoes_csv())
    plots = raw[raw["category"] == "plot"].dropna(subset=["text"]).drop_duplicates("movie_name")
    sentences = plots["text"].map(split_sentences)
    films = pd.DataFrame({"film": plots["movie_name"].to_numpy(), "opening": sentences.str[0].to_numpy(),
                          "next": sentences.map(lambda s: s[1] if len(s) > 1 else "").to_numpy()})
    films = films[(films["next"] != "") & ~films["next"].duplicated(keep=False)].reset_index(drop=True)
    films["split"] = assign_splits(films["film"], pd.Series(0, index=films.index))
    if quick:
        films = pd.concat([part.loc[sorted(part.index, key=lambda i: stable_hash(part.at[i, "film"]))[:QUICK_FILMS[s]]]
                           for s, part in films.groupby("split")])
    train = films[films["split"] == "train"].sort_values("film")
    test = films[films["split"] == "test"].sort_values("film")
    corpus = films[films["split"] != "train"].sort_values("film")
    evaluation = RetrievalSet(tuple(test["film"]), tuple(test["opening"]), tuple(corpus["film"]),
                              tuple(corpus["next"]), {f: frozenset([f]) for f in test["film"]})
    return FilmPlots(train[["film", "opening", "next"]].reset_index(drop=True), evaluation)
