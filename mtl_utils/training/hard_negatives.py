"""Hard negatives: passages that look right and are not, mined with an encoder. :func:`mine_hard_negatives` takes for
each query the passage of highest cosine that is not its own and scores clearly below it (``relative_margin``, as
sentence-transformers' ``mine_hard_negatives``); one as high as the positive may be another telling of the same story
(a **false negative**), set aside and reported. :func:`hard_negatives_loss`: the in-batch loss with the mined negatives
added (``MultipleNegativesRankingLoss`` on triplets, tested equal); :class:`HardNegativeTrainer`. Taught in notebook 02.

    >>> negatives, set_aside = mine_hard_negatives(query_vectors, passage_vectors)
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from mtl_utils.evaluation.similarity import cosine_matrix
from mtl_utils.training import contrastive, optim
from mtl_utils.training.sentence_training import PairConfig, PairData, PairTrainer


def mine_hard_negatives(queries: np.ndarray, passages: np.ndarray, relative_margin: float = 0.05
                        ) -> tuple[np.ndarray, pd.DataFrame]:
    """For query ``i`` (positive: passage ``i``), the index of the most similar other passage scoring at most
    ``positive - relative_margin × |positive|`` (-1 where none does), and a table of the passages set aside for
    scoring above that (``query``, ``passage``, ``cosine``, ``positive cosine``), highest first."""
    queries, passages = np.asarray(queries), np.asarray(passages)
    if queries.ndim != 2 or passages.ndim != 2 or queries.shape[1] != passages.shape[1]:
        raise ValueError(f"mining needs two matrices of vectors of one width, got shapes {queries.shape} and "
                         f"{passages.shape}")
    if len(queries) != len(passages) or len(queries) < 2:
        raise ValueError(f"mining needs one positive passage per query, at least two: {len(queries)} queries, "
                         f"{len(passages)} passages")
    if not 0 <= relative_margin < 1:
        raise ValueError(f"relative_margin must be in [0, 1), got {relative_margin!r}")
    scores = cosine_matrix(queries, passages)
    positive = np.diag(scores).copy()
    ceiling = positive - relative_margin * np.abs(positive)
    np.fill_diagonal(scores, -np.inf)
    too_close = scores > ceiling[:, None]
    rows, cols = np.nonzero(too_close)
    set_aside = pd.DataFrame({"query": rows, "passage": cols, "cosine": scores[rows, cols],
                              "positive cosine": positive[rows]}).sort_values("cosine", ascending=False)
    eligible = np.where(too_close, -np.inf, scores)
    negatives = np.where(np.isneginf(eligible).all(axis=1), -1, eligible.argmax(axis=1))
    return negatives, set_aside.reset_index(drop=True)


def duplicates(idx: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """``[B, B]`` booleans for a batch of pairs ``idx``: ``[r, k]`` is true where pair ``k``'s negative must not
    count for row ``r``: it is row ``r``'s own passage, or pair ``k`` has no negative (-1)."""
    mined = negatives[idx]
    return (idx[:, None] == mined[None, :]) | (mined < 0)[None, :]


def hard_negatives_loss(queries: Tensor, positives: Tensor, negatives: Tensor, scale: float = contrastive.SCALE,
                        duplicate: Tensor | None = None) -> Tensor:
    """Cross-entropy of each query picking its own positive among the batch's ``B`` positives and ``B`` negatives;
    ``duplicate[r, k]`` (``[B, B]`` booleans, :func:`duplicates`) drops negative ``k`` from row ``r``'s choices."""
    candidates = torch.cat([F.normalize(positives, dim=-1), F.normalize(negatives, dim=-1)])
    scores = scale * F.normalize(queries, dim=-1) @ candidates.T                       # [B, 2B]
    if duplicate is not None:
        scores = scores.masked_fill(torch.cat([torch.zeros_like(duplicate), duplicate], 1), float("-inf"))
    return F.cross_entropy(scores, torch.arange(len(queries), device=queries.device))


class HardNegativeTrainer(PairTrainer):
    """:class:`~mtl_utils.training.sentence_training.PairTrainer` on triplets: pair ``i`` and ``negatives[i]``,
    the index of another pair's passage (from :func:`mine_hard_negatives`)."""

    def __init__(self, config: PairConfig, pairs: PairData, negatives: Sequence[int], **kwargs) -> None:
        self.negatives = np.asarray(negatives)
        n = len(pairs)
        if self.negatives.shape != (n,) or not np.issubdtype(self.negatives.dtype, np.integer) \
                or not np.all((-1 <= self.negatives) & (self.negatives < n)):
            raise ValueError(f"negatives: one passage index (0 to {n - 1}, or -1 for none) per pair, got "
                             f"{self.negatives.dtype} of shape {self.negatives.shape}")
        own = np.flatnonzero(self.negatives == np.arange(n))
        if len(own):
            raise ValueError(f"negatives: pair {int(own[0])} has its own passage as its negative")
        if config.loss != "in-batch negatives" or config.mini_batch is not None:
            raise ValueError("the hard-negative trainer wraps the in-batch loss without GradCache "
                             "(loss='in-batch negatives', mini_batch=None)")
        super().__init__(config, pairs, **kwargs)

    def train_step(self, idx: np.ndarray) -> float:
        enc, mined = self.encoder, self.negatives[idx]
        a, b = self.embed(self.a, idx), self.embed(self.b, idx)
        n = self.embed(self.b, np.where(mined < 0, idx, mined))   # none: a stand-in, masked
        duplicate = torch.from_numpy(duplicates(idx, self.negatives)).to(a.device)
        loss = hard_negatives_loss(a, b, n, self.config.scale, duplicate)
        loss.backward()
        optim.optimizer_step(self.optimizer, self.scheduler, enc.parameters(), self.config.max_grad_norm)
        return float(loss.detach())
