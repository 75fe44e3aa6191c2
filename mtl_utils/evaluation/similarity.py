"""Geometry of an embedding space: cosine similarities, nearest neighbours, 2-D projections."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_limits


def cosine_matrix(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Cosine similarity of every row of ``a`` with every row of ``b`` (default: ``a`` itself): ``[len(a), len(b)]``."""
    a = np.asarray(a, dtype=np.float64)
    b = a if b is None else np.asarray(b, dtype=np.float64)
    a_n = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b_n = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a_n @ b_n.T


def nearest_neighbours(query_vectors: np.ndarray, queries: Sequence[str], corpus_vectors: np.ndarray,
                       corpus_texts: Sequence[str], corpus_labels: Sequence[str] | None = None,
                       k: int = 3) -> pd.DataFrame:
    """The ``k`` corpus texts most cosine-similar to each query: one row per (query, rank)."""
    if len(query_vectors) != len(queries) or len(corpus_vectors) != len(corpus_texts):
        raise ValueError("each vector needs its text: lengths of vectors and texts differ")
    sims = cosine_matrix(query_vectors, corpus_vectors)
    k = min(k, sims.shape[1])
    rows = []
    for qi, query in enumerate(queries):
        top = np.argsort(-sims[qi], kind="stable")[:k]
        for rank, j in enumerate(top, start=1):
            row = {"query": query, "rank": rank, "cosine": round(float(sims[qi, j]), 3), "neighbour": corpus_texts[j]}
            if corpus_labels is not None:
                row["label"] = corpus_labels[j]
            rows.append(row)
    return pd.DataFrame(rows).set_index(["query", "rank"])


def project_2d(vectors: np.ndarray, method: str = "pca", seed: int = 0, perplexity: float = 30.0,
               threads: int | None = 1) -> np.ndarray:
    """``[n, 2]`` coordinates of ``vectors`` by ``pca`` or ``tsne`` (PCA-initialised, seeded, perplexity capped at
    ``(n - 1) / 3``). ``threads`` caps BLAS/OpenMP threads (``None``: no cap; one keeps t-SNE fast when busy)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if method not in ("pca", "tsne"):
        raise ValueError(f"unknown method '{method}'; choose 'pca' or 'tsne'")
    with threadpool_limits(threads):
        if method == "pca":
            return PCA(n_components=2, random_state=seed).fit_transform(vectors)
        perplexity = float(min(perplexity, max(2.0, (len(vectors) - 1) / 3)))
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(vectors)
