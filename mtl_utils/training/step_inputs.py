"""Where a training step's inputs come from: :class:`FromTokens` (the whole encoder runs on each batch) or
:class:`FromCache` (only the layers above the frozen, cached bottom ``k`` run; the same logits, tested);
:func:`for_round` picks once per round, so the step has no branch. Taught in notebooks 03 and 04."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from mtl_utils.modeling.encoder import Tokenized
from mtl_utils.modeling.model import MultiTaskModel
from mtl_utils.training.frozen_cache import FrozenCache, cached_forward


class FromTokens:
    """Batches of token ids (padded per batch); the whole model runs on them."""

    def __init__(self, model: MultiTaskModel, tokens: Mapping[tuple[str, str], Tokenized]) -> None:
        self.model, self.tokens = model, tokens

    def batch(self, task: str, rows: np.ndarray) -> dict[str, torch.Tensor]:
        """The encoder's input for training sentences ``rows`` of ``task``."""
        ids = self.tokens[task, "train"].ids
        return self.model.encoder.collate([ids[i] for i in rows])

    def logits(self, model: MultiTaskModel, inputs: dict[str, torch.Tensor], task: str) -> torch.Tensor:
        """The encoder, then ``task``'s head."""
        return model(**inputs, tasks=task)[task]


class FromCache:
    """Batches of the frozen bottom ``k`` layers' cached output; the layers above and the head run on them."""

    def __init__(self, caches: Mapping[tuple[str, str], FrozenCache], k: int) -> None:
        self.caches, self.k = caches, k

    def batch(self, task: str, rows: np.ndarray) -> dict[str, torch.Tensor]:
        """The cached vectors of training sentences ``rows`` of ``task``."""
        return self.caches[task, "train"].batch(rows)

    def logits(self, model: MultiTaskModel, inputs: dict[str, torch.Tensor], task: str) -> torch.Tensor:
        """The encoder from layer ``k + 1`` up, then ``task``'s head."""
        return cached_forward(model, inputs, self.k, task)[task]


StepInputs = FromTokens | FromCache


def for_round(model: MultiTaskModel, tokens: Mapping[tuple[str, str], Tokenized],
              caches: Mapping[tuple[str, str], FrozenCache], k: int) -> StepInputs:
    """This round's inputs: from the cache when the round has one (frozen bottom ``k`` > 0, cache on)."""
    return FromCache(caches, k) if caches else FromTokens(model, tokens)
