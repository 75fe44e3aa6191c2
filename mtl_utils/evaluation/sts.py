"""Human-judged similarity (STS): does an encoder's cosine order sentence pairs as people rated them? The STS benchmark
(Cer et al., 2017, *SemEval-2017 Task 1*) rates pairs from 0 (unrelated) to 5 (same meaning); the pairs' cosines are
correlated with the ratings by Spearman's rank correlation (only their order matters to a search), as SBERT (Reimers &
Gurevych, 2019) and MTEB report, Pearson's beside it. Taught in notebook 02 (§ 7). Example (MiniLM: Spearman 0.820)::

    sts_scores(pair_cosines(encoder, pairs["sentence1"], pairs["sentence2"]), pairs["score"])
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from mtl_utils.modeling.encoder import SentenceEncoder


def pair_cosines(encoder: SentenceEncoder, first: Sequence[str], second: Sequence[str],
                 batch_size: int = 64) -> np.ndarray:
    """Cosine of each pair's sentence vectors, ``first[i]`` with ``second[i]``: ``[n]`` (each sentence encoded once)."""
    if len(first := list(first)) != len(second := list(second)):
        raise ValueError(f"each pair needs two sentences: {len(first)} first and {len(second)} second")
    texts = list(dict.fromkeys(first + second))
    vectors = encoder.encode(texts, batch_size=batch_size, show_progress=False, warn_truncation=False)
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    row = {text: i for i, text in enumerate(texts)}
    a, b = vectors[[row[t] for t in first]], vectors[[row[t] for t in second]]
    return np.einsum("ij,ij->i", a, b).astype(np.float64)


def sts_scores(cosines: Sequence[float], ratings: Sequence[float]) -> dict[str, float]:
    """Spearman's and Pearson's correlation of the ``cosines`` with the human ``ratings`` (one per pair)."""
    cosines, ratings = np.asarray(cosines, dtype=float), np.asarray(ratings, dtype=float)
    if cosines.shape != ratings.shape or cosines.ndim != 1 or cosines.size < 3:
        raise ValueError(f"need one cosine per rated pair, at least 3 (got {cosines.shape} and {ratings.shape})")
    return {"spearman": float(stats.spearmanr(cosines, ratings).statistic),
            "pearson": float(stats.pearsonr(cosines, ratings).statistic)}
