"""From token vectors to one sentence vector: ``mean`` (masked), ``cls`` and ``max`` pooling."""
from __future__ import annotations

import torch

POOLING_MODES: tuple[str, ...] = ("mean", "cls", "max")


def mean_pool(token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Masked mean of token vectors ``[batch, tokens, hidden]`` over each text's real tokens: ``[batch, hidden]``."""
    mask = attention_mask.unsqueeze(-1).to(token_embeddings.dtype)
    summed = (token_embeddings * mask).sum(dim=1)
    counts = mask.sum(dim=1).clamp(min=1e-9)
    return summed / counts


def cls_pool(token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The vector of the first token (``[CLS]`` for BERT)."""
    return token_embeddings[:, 0]


def max_pool(token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum over the real tokens (padding is set to a very low value first)."""
    mask = attention_mask.unsqueeze(-1).bool()
    lowest = torch.finfo(token_embeddings.dtype).min
    return token_embeddings.masked_fill(~mask, lowest).max(dim=1).values


_POOLERS = {"mean": mean_pool, "cls": cls_pool, "max": max_pool}


def pool(token_embeddings: torch.Tensor, attention_mask: torch.Tensor, mode: str = "mean") -> torch.Tensor:
    """Pool ``[batch, tokens, hidden]`` token vectors into ``[batch, hidden]`` with ``mode``."""
    try:
        return _POOLERS[mode](token_embeddings, attention_mask)
    except KeyError:
        raise ValueError(f"unknown pooling '{mode}'; choose one of {POOLING_MODES}") from None
