"""The pieces of every inference loop: length-sorted batches, padding per batch, eval mode (dropout off)."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn


def length_sorted_batches(lengths: Sequence[int] | np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Row numbers in batches of ``batch_size``, longest texts first (stable for equal lengths)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def pad_ids(ids: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad token-id lists to the longest of them: ``input_ids`` and ``attention_mask`` ``[n, longest]``."""
    longest = max((len(row) for row in ids), default=0)
    input_ids = torch.full((len(ids), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), longest), dtype=torch.long)
    for i, row in enumerate(ids):
        input_ids[i, :len(row)] = torch.as_tensor(row, dtype=torch.long)
        mask[i, :len(row)] = 1
    return {"input_ids": input_ids, "attention_mask": mask}


def padded_positions(lengths: Sequence[int] | np.ndarray, batches: Sequence[np.ndarray]) -> float:
    """Share of token positions that are padding when texts of ``lengths`` are batched as ``batches``."""
    lengths = np.asarray(lengths)
    padded = sum(len(idx) * lengths[idx].max() for idx in batches if len(idx))
    return float(1 - lengths.sum() / padded) if padded else 0.0


@contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Run the block with ``modules`` in eval mode (dropout off), then restore every submodule's mode as it was."""
    was = [(m, m.training) for module in modules for m in module.modules()]
    for module in modules:
        module.eval()
    try:
        yield
    finally:
        for module, training in was:
            module.training = training
