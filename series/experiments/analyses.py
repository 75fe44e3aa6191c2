"""Analyses of finished runs: retention over the majority class, whether a head moved, the test examples a run got wrong."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

from mtl_utils.data.tasks import Task
from mtl_utils.modeling.model import MultiTaskModel
from mtl_utils.training.trainer import TrainResult, task_logits


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
