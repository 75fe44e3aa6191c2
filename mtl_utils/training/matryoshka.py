"""Matryoshka embeddings: train every prefix of the vector to work on its own, so it can be cut short: the in-batch
loss (:func:`~mtl_utils.training.contrastive.in_batch_negatives_loss`) of the first ``d`` dimensions, each ``d`` in
``dims``, weighted and summed, each prefix normalised (Kusupati et al., 2022, https://arxiv.org/abs/2205.13147;
sentence-transformers' ``MatryoshkaLoss`` around ``MultipleNegativesRankingLoss``, tested equal). Taught in notebook 02.

    >>> loss = matryoshka_loss(queries, passages, dims=(384, 128, 32))
"""
from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import pandas as pd
from torch import Tensor

from mtl_utils.data.retrieval import RetrievalSet
from mtl_utils.evaluation.retrieval import rank_metrics
from mtl_utils.evaluation.similarity import cosine_matrix
from mtl_utils.modeling.encoder import SentenceEncoder
from mtl_utils.training import contrastive, optim
from mtl_utils.training.sentence_training import PairConfig, PairData, PairTrainer

DIMS = (384, 256, 128, 64, 32)  # MiniLM's width, then halves down to 32 (:func:`nested_dims` of 384)


def nested_dims(width: int, smallest: int = 32) -> tuple[int, ...]:
    """The full ``width``, then every power of two below it down to ``smallest``: 384 -> (384, 256, ..., 32)."""
    return (width, *[2 ** k for k in range(width.bit_length(), -1, -1) if smallest <= 2 ** k < width])


def check_dims(dims: Sequence[int], width: int | None, weights: Sequence[float] | None = None) -> None:
    """``ValueError`` unless ``dims`` are distinct integers in 1..``width`` (``None``: any), one per ``weights``."""
    if not len(dims) or any(isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1
                            or (width is not None and d > width) for d in dims):
        bound = "positive integers" if width is None else f"integers between 1 and the vector's width {width}"
        raise ValueError(f"Matryoshka dims must be {bound}, got {list(dims)}")
    if len(set(dims)) != len(dims):
        raise ValueError(f"Matryoshka dims must differ from each other, got {list(dims)}")
    if weights is not None and len(weights) != len(dims):
        raise ValueError(f"one Matryoshka weight per dimension: {len(dims)} dims, {len(weights)} weights")


def matryoshka_loss(queries: Tensor, passages: Tensor, dims: Sequence[int] = DIMS,
                    weights: Sequence[float] | None = None, scale: float = contrastive.SCALE) -> Tensor:
    """Sum over ``dims`` of ``weight × in-batch loss`` of the first ``d`` dimensions (weights: 1 each)."""
    check_dims(dims, queries.shape[-1], weights)
    weights = [1.0] * len(dims) if weights is None else weights
    return sum(w * contrastive.in_batch_negatives_loss(queries[:, :d], passages[:, :d], scale)
               for d, w in zip(dims, weights))


class MatryoshkaTrainer(PairTrainer):
    """:class:`~mtl_utils.training.sentence_training.PairTrainer` with the Matryoshka loss in its step."""

    def __init__(self, config: PairConfig, pairs: PairData, dims: Sequence[int] = DIMS, **kwargs) -> None:
        if config.loss != "in-batch negatives" or config.mini_batch is not None:
            raise ValueError("the Matryoshka trainer wraps the in-batch loss without GradCache "
                             "(loss='in-batch negatives', mini_batch=None)")
        check_dims(tuple(dims), None)  # integers, distinct: before any work
        self.dims = tuple(int(d) for d in dims)
        super().__init__(config, pairs, **kwargs)

    def prepare_model(self, encoder: SentenceEncoder | None) -> None:
        super().prepare_model(encoder)
        check_dims(self.dims, self.encoder.dim)  # the model's width: before tokenising

    def train_step(self, idx: np.ndarray) -> float:
        enc = self.encoder
        a, b = self.embed(self.a, idx), self.embed(self.b, idx)
        loss = matryoshka_loss(a, b, self.dims, scale=self.config.scale)
        loss.backward()
        optim.optimizer_step(self.optimizer, self.scheduler, enc.parameters(), self.config.max_grad_norm)
        return float(loss.detach())


def prefix_metrics(encoder: SentenceEncoder, data: RetrievalSet, dims: Sequence[int] = DIMS
                   ) -> dict[int, pd.DataFrame]:
    """Per-query retrieval metrics (:func:`~mtl_utils.evaluation.retrieval.rank_metrics`) of the first ``d``
    dimensions of ``encoder``'s vectors (cosines: each prefix re-normalised), for each ``d`` in ``dims`` (one encoding)."""
    check_dims(dims, encoder.dim)
    q = encoder.encode(list(data.queries), batch_size=64, show_progress=False, warn_truncation=False)
    p = encoder.encode(list(data.passages), batch_size=64, show_progress=False, warn_truncation=False)
    return {d: rank_metrics(cosine_matrix(q[:, :d], p[:, :d]), data) for d in dims}
