"""Retrieval and clustering scores of sentence vectors, as sentence-transformers and MTEB compute them (notebook 02):
:func:`rank_metrics` (recall@1, recall@10, MRR@10, nDCG@10, as ``InformationRetrievalEvaluator``), :func:`bm25_scores`
(``bm25s``'s BM25), :func:`semantic_search` (nearest passages), :func:`clustering_score` (k-means' V-measure, MTEB)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from weakref import WeakKeyDictionary

import numpy as np
import pandas as pd
from sklearn.cluster import MiniBatchKMeans
from sklearn.metrics import v_measure_score

from mtl_utils.data.retrieval import RetrievalSet
from mtl_utils.evaluation.similarity import cosine_matrix
from mtl_utils.modeling.encoder import SentenceEncoder

METRICS: tuple[str, ...] = ("recall@1", "recall@10", "MRR@10", "nDCG@10")


def rank_metrics(scores: np.ndarray, data: RetrievalSet, k: int = 10) -> pd.DataFrame:
    """One row per query (index: query id): recall@1, recall@``k``, MRR@``k``, nDCG@``k``, rank of the first relevant
    passage, with ``InformationRetrievalEvaluator``'s conventions (ties by ascending corpus id, binary relevance)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (len(data.query_ids), len(data.corpus_ids)):
        raise ValueError(f"scores must be queries × passages = {(len(data.query_ids), len(data.corpus_ids))}, "
                         f"got {scores.shape}")
    ids = np.asarray(data.corpus_ids)
    by_id = np.argsort(ids, kind="stable")               # ties broken by ascending corpus id
    rows = []
    for q, query_id in enumerate(data.query_ids):
        order = by_id[np.argsort(-scores[q, by_id], kind="stable")]
        hits = np.isin(ids[order], list(data.relevant[query_id]))
        n_relevant = len(data.relevant[query_id])
        first = int(np.argmax(hits)) + 1
        top = hits[:k]
        gains = 1.0 / np.log2(np.arange(2, k + 2))
        ideal = gains[:min(n_relevant, k)].sum()
        rows.append({"recall@1": hits[:1].sum() / n_relevant, f"recall@{k}": top.sum() / n_relevant,
                     f"MRR@{k}": 1.0 / first if first <= k else 0.0,
                     f"nDCG@{k}": float(gains[:len(top)][top].sum() / ideal), "rank": first})
    return pd.DataFrame(rows, index=pd.Index(data.query_ids, name="query"))


def summary(per_query: pd.DataFrame) -> dict[str, float]:
    """The mean of each metric over the queries (what the evaluator reports)."""
    return {m: float(per_query[m].mean()) for m in per_query.columns if m != "rank"}


def encoder_scores(encoder: SentenceEncoder, data: RetrievalSet, batch_size: int = 64,
                   show_progress: bool | None = None) -> np.ndarray:
    """Cosine similarities of every query's vector with every passage's (queries × passages)."""
    queries = encoder.encode(list(data.queries), batch_size=batch_size, show_progress=show_progress,
                             warn_truncation=False)
    passages = encoder.encode(list(data.passages), batch_size=batch_size, show_progress=show_progress,
                              warn_truncation=False)
    return cosine_matrix(queries, passages)


def evaluate_encoder(encoder: SentenceEncoder, data: RetrievalSet, batch_size: int = 64,
                     show_progress: bool | None = None) -> pd.DataFrame:
    """:func:`rank_metrics` of ``encoder`` on ``data`` (one row per query)."""
    return rank_metrics(encoder_scores(encoder, data, batch_size, show_progress), data)


def bm25_scores(data: RetrievalSet, k1: float = 1.5, b: float = 0.75) -> np.ndarray:
    """BM25 scores (queries × passages): lower-cased words, English stop words removed, no stemming."""
    import bm25s
    retriever = bm25s.BM25(k1=k1, b=b)
    retriever.index(bm25s.tokenize(list(data.passages), show_progress=False), show_progress=False)
    tokens = bm25s.tokenize(list(data.queries), return_ids=False, show_progress=False)
    return np.stack([retriever.get_scores(t) for t in tokens])


def clustering_score(vectors: np.ndarray, labels: Sequence[int], seed: int = 0) -> float:
    """V-measure of k-means (MiniBatchKMeans, batch 500, as MTEB) of ``vectors`` vs ``labels``: 1 for the classes."""
    labels = np.asarray(labels)
    if len(labels) != len(vectors) or len(labels) < 2:
        raise ValueError(f"need one label per vector, at least two (got {len(labels)} labels, {len(vectors)} vectors)")
    k = len(np.unique(labels))
    clusters = MiniBatchKMeans(n_clusters=k, batch_size=500, n_init="auto", random_state=seed).fit_predict(vectors)
    return float(v_measure_score(labels, clusters))


def semantic_search(encoders: Mapping[str, SentenceEncoder], data: RetrievalSet, query: str,
                    k: int = 3) -> pd.DataFrame:
    """The ``k`` passages nearest to ``query`` under each encoder: encoder, rank, cosine, article, passage start."""
    if not query.strip():
        raise ValueError("type a query: the search text is empty")
    rows = []
    for name, encoder in encoders.items():
        scores = cosine_matrix(encoder.encode([query]), _passage_vectors(encoder, data))[0]
        for rank, i in enumerate(np.argsort(-scores)[:k], start=1):
            passage = data.passages[i]
            rows.append({"encoder": name, "rank": rank, "score": round(float(scores[i]), 3),
                         "article": data.corpus_ids[i], "passage": passage[:90] + ("…" if len(passage) > 90 else "")})
    return pd.DataFrame(rows)


_PASSAGES: "WeakKeyDictionary[SentenceEncoder, dict[tuple[str, ...], np.ndarray]]" = WeakKeyDictionary()


def _passage_vectors(encoder: SentenceEncoder, data: RetrievalSet) -> np.ndarray:
    """The passages' vectors under ``encoder``, once per encoder and corpus (forgotten with it)."""
    known = _PASSAGES.setdefault(encoder, {})
    if data.corpus_ids not in known:
        known[data.corpus_ids] = encoder.encode(list(data.passages), batch_size=64, warn_truncation=False)
    return known[data.corpus_ids]
