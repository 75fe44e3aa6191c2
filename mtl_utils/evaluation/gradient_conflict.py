"""Gradient conflict: the cosine of two tasks' gradients per encoder unit (embeddings, each layer): +1 alike, 0
unrelated, −1 opposite (Yu et al. 2020, *Gradient Surgery for Multi-Task Learning*). Taught in notebook 03."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from mtl_utils.core.batching import eval_mode
from mtl_utils.data.tasks import Task
from mtl_utils.modeling import anatomy
from mtl_utils.modeling.model import MultiTaskModel


def gradient_conflict(model: MultiTaskModel, data: Mapping[str, Task], tasks: Sequence[str], batches: int = 8,
                      batch_size: int = 16, seed: int = 0) -> pd.DataFrame:
    """Cosine of the tasks' summed gradients over ``batches`` batches per encoder unit (eval mode, model unchanged)."""
    if len(tasks) != 2:
        raise ValueError(f"gradient conflict compares two tasks, got {list(tasks)}")
    units = [u for u in anatomy.depth_units(model) if u.kind in ("layer", "embeddings")][::-1]
    grads: dict[str, list[torch.Tensor]] = {}
    rng = np.random.default_rng(seed)
    with eval_mode(model):
        for task in tasks:
            model.zero_grad(set_to_none=True)
            df = data[task]["train"]
            for _ in range(batches):
                idx = rng.choice(len(df), size=min(batch_size, len(df)), replace=False)
                inputs = model.encoder.tokenize(list(df["text"].iloc[idx]))
                labels = torch.from_numpy(df["label"].to_numpy()[idx]).to(model.encoder.device)
                torch.nn.functional.cross_entropy(model(**inputs, tasks=task)[task], labels).backward()
            grads[task] = [torch.cat([p.grad.flatten() if p.grad is not None else torch.zeros(p.numel(),
                                      device=p.device) for _, p in u.params]) for u in units]
    model.zero_grad(set_to_none=True)
    a, b = (grads[t] for t in tasks)
    return pd.DataFrame([{"unit": u.name, "depth": u.depth,
                          "cosine": float(torch.nn.functional.cosine_similarity(x, y, dim=0))}
                         for u, x, y in zip(units, a, b)])
