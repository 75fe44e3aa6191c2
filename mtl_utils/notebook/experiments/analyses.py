"""Analyses of finished runs: retention over the majority class, whether a head moved, gradient conflict
between tasks, the test examples a run got wrong."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ...core.batching import eval_mode
from ...data.tasks import Task
from ...modeling import anatomy
from ...modeling.model import MultiTaskModel
from ...training.trainer import TrainResult, task_logits


def retention(before: float, after: float, majority: float) -> float:
    """Share of a model's gain over the majority baseline that is left: ``(after − majority) / (before −
    majority)``; 1 keeps all of it, 0 is back at the baseline. Raw accuracy differences hide how much of what
    was *learned* is lost when the baseline is high."""
    if before <= majority:
        raise ValueError(f"no gain to retain: accuracy before ({before:.3f}) is not above the majority baseline "
                         f"({majority:.3f})")
    return (after - majority) / (before - majority)


def head_unchanged(result: TrainResult, start: MultiTaskModel, task: str) -> bool:
    """Whether ``task``'s head of a finished run is bit-identical to the head of its starting model."""
    after, before = result.model.heads[task].state_dict(), start.heads[task].state_dict()
    return after.keys() == before.keys() and all(torch.equal(after[k].cpu(), before[k].cpu()) for k in after)


def gradient_conflict(model: MultiTaskModel, data: Mapping[str, Task], tasks: Sequence[str], batches: int = 8,
                      batch_size: int = 16, seed: int = 0) -> pd.DataFrame:
    """Cosine between the tasks' gradients on each encoder unit (embeddings, each layer), from ``batches``
    training batches per task (summed), the model in eval mode (no dropout) and left unchanged.

    +1: the tasks pull that unit the same way; 0: unrelated directions; −1: opposite (conflict)."""
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


def error_examples(result: TrainResult, data: Mapping[str, Task], task: str, n: int = 6) -> pd.DataFrame:
    """The ``n`` test sentences of ``task`` the run got wrong with the highest confidence: text, true and
    predicted label, and the probability it gave its (wrong) prediction."""
    df = data[task]["test"]
    logits = task_logits(result.model, result.model.encoder.token_ids(list(df["text"])), task)
    probs = torch.softmax(torch.from_numpy(logits), dim=-1).numpy()
    pred, labels = probs.argmax(axis=1), data[task].labels
    wrong = np.flatnonzero(pred != df["label"].to_numpy())
    top = wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")[:n]]
    return pd.DataFrame({"text": df["text"].to_numpy()[top], "true": [labels[i] for i in df["label"].to_numpy()[top]],
                         "predicted": [labels[i] for i in pred[top]], "p(predicted)": probs[top, pred[top]].round(3)})
