"""Scores of a classifier: accuracy and macro-F1 from labels or logits, the majority-class baseline. Whether a
difference is real: :mod:`series.statistics`, :mod:`series.intervals`, :mod:`series.comparisons`."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score


def one_dimensional(values, name: str) -> np.ndarray:
    """``values`` as an array, refused (naming ``name``) unless one-dimensional."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    return array


def scores(y_true: Sequence[int], y_pred: Sequence[int], num_labels: int | None = None) -> dict[str, float]:
    """Accuracy and macro-F1 (each class counts the same; with ``num_labels``, classes never predicted too, as F1 0)."""
    y_true, y_pred = one_dimensional(y_true, "y_true"), one_dimensional(y_pred, "y_pred")
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    if len(y_true) == 0:
        raise ValueError("no examples to score")
    labels = list(range(num_labels)) if num_labels else None
    return {"accuracy": float(np.mean(y_true == y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro", labels=labels, zero_division=0))}


def classification_scores(y_true: Sequence[int], logits: np.ndarray, num_labels: int) -> dict:
    """From logits ``[n, labels]``: accuracy, macro-F1, confusion matrix (rows: true), predictions, which were right."""
    logits = np.asarray(logits)
    if logits.ndim != 2 or logits.shape[1] != num_labels:
        raise ValueError(f"logits must be [n, {num_labels}], got shape {logits.shape}")
    y_true = one_dimensional(y_true, "y_true")
    pred = logits.argmax(axis=1)
    return {**scores(y_true, pred, num_labels), "confusion": confusion_matrix(y_true, pred, labels=range(num_labels)),
            "predictions": pred, "correct": pred == y_true}


def majority_label(train_labels: Sequence[int]) -> int:
    """The most frequent training label (the smallest one on ties)."""
    values, counts = np.unique(one_dimensional(train_labels, "train_labels"), return_counts=True)
    return int(values[np.argmax(counts)])


def majority_scores(train_labels: Sequence[int], test_labels: Sequence[int],
                    num_labels: int | None = None) -> dict[str, float]:
    """Scores of always predicting the most frequent training label: the floor every model must beat."""
    test_labels = one_dimensional(test_labels, "test_labels")
    return scores(test_labels, np.full(len(test_labels), majority_label(train_labels)), num_labels)
