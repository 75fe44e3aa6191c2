"""Attention pooling: token vectors ``h_t`` weighted by ``softmax(q · h_t / sqrt(d))`` for one learned query ``q``; at
``q = 0`` (its start), the masked mean. Trained with the encoder (``pooling="attention"``), or alone (notebook 01)."""
from __future__ import annotations

import math

import torch
from torch import nn


class AttentionPooling(nn.Module):
    """One learned query over the token vectors; ``learn_query=False`` keeps it at zero (the masked mean)."""

    def __init__(self, hidden_size: int, learn_query: bool = True) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.zeros(hidden_size), requires_grad=learn_query)

    def weights(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attention weights ``[batch, tokens]``: softmax of ``q · h_t / sqrt(d)`` over the real pieces."""
        scores = tokens @ self.query.to(tokens.dtype) / math.sqrt(tokens.shape[-1])
        return torch.softmax(scores.masked_fill(~mask.bool(), float("-inf")), dim=-1)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Sentence vectors ``[batch, hidden]`` from token vectors ``[batch, tokens, hidden]`` and their mask."""
        return (self.weights(tokens, mask).unsqueeze(-1) * tokens).sum(dim=1)
