"""The losses that make a sentence transformer, and the GradCache trick (taught in notebook 02):
:func:`in_batch_negatives_loss` (sentence-transformers' ``MultipleNegativesRankingLoss``, tested equal),
:func:`cosine_similarity_loss` (SetFit's default, ``CosineSimilarityLoss``), :func:`grad_cache_backward` (a large
batch's in-batch loss in a small one's memory, exact: Gao et al., 2021, ``CachedMultipleNegativesRankingLoss``) and
:func:`saved_activation_bytes` (what a forward pass keeps for backward, growing with the batch)."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SCALE = 20.0  # sentence-transformers' default: cosines in [-1, 1] become logits in [-20, 20]


def in_batch_negatives_loss(queries: Tensor, passages: Tensor, scale: float = SCALE) -> Tensor:
    """Mean cross-entropy of each query (row ``i``) picking its own passage (row ``i``) among all the batch's
    passages, by scaled cosine similarity: the other ``B - 1`` passages are its negatives."""
    scores = scale * F.normalize(queries, dim=-1) @ F.normalize(passages, dim=-1).T   # [B, B]
    targets = torch.arange(len(queries), device=queries.device)                      # the diagonal
    return F.cross_entropy(scores, targets)


def cosine_similarity_loss(a: Tensor, b: Tensor, labels: Tensor) -> Tensor:
    """Mean squared error between ``cos(a_i, b_i)`` and ``labels_i`` (1: same class, 0: different)."""
    return F.mse_loss(F.cosine_similarity(a, b, dim=-1), labels.to(a.dtype))


Batch = dict[str, Tensor]


def grad_cache_backward(encoder: nn.Module, queries: Sequence[Batch], passages: Sequence[Batch],
                        scale: float = SCALE) -> float:
    """Backpropagate the in-batch loss of the whole batch, given as mini-batches (``queries[i]`` and
    ``passages[i]``: tokenised chunks), holding one mini-batch's graph at a time; returns the loss."""
    chunks = [*queries, *passages]
    states, vectors = [], []
    with torch.no_grad():                                   # 1. every vector, no graph kept
        for chunk in chunks:
            states.append(torch.get_rng_state())
            vectors.append(encoder(**chunk))
    cached = [v.requires_grad_() for v in vectors]
    n = len(queries)
    loss = in_batch_negatives_loss(torch.cat(cached[:n]), torch.cat(cached[n:]), scale)
    loss.backward()                                         # 2. d loss / d vectors
    for chunk, state, v in zip(chunks, states, cached):     # 3. one graph at a time
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(state)                      #    the same dropout as in 1.
            encoder(**chunk).backward(v.grad)
    return float(loss.detach())


def saved_activation_bytes(forward: Callable[[], Tensor]) -> int:
    """Bytes autograd keeps for backward while ``forward()`` runs (each storage once): a step's activation memory."""
    seen: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        forward()
    return sum(seen.values())
