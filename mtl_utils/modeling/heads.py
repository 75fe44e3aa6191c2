"""A task head, and the task specification a multi-task model is built from (``{task: label names}``)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn


class TaskHead(nn.Module):
    """Dropout + linear layer (with an optional hidden layer) from a sentence vector to class logits."""

    def __init__(self, in_dim: int, num_labels: int, dropout: float = 0.1, hidden_dim: int | None = None) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden_dim:
            layers += [nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Dropout(dropout)]
            in_dim = hidden_dim
        layers.append(nn.Linear(in_dim, num_labels))
        self.net = nn.Sequential(*layers)

    def forward(self, sentence_vectors: torch.Tensor) -> torch.Tensor:
        return self.net(sentence_vectors)


def check_task_spec(tasks: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """Validate ``{task name: label names}``: at least one task, each with two or more distinct labels."""
    if not isinstance(tasks, Mapping) or not tasks:
        raise ValueError("a multi-task model needs at least one task: pass {task name: [label names]}")
    spec = {}
    for name, labels in tasks.items():
        if isinstance(labels, str):
            raise ValueError(f"task '{name}': label names must be a list of strings, not the string {labels!r}")
        labels = tuple(labels)
        if len(labels) < 2 or len(set(labels)) != len(labels) or not all(isinstance(x, str) for x in labels):
            raise ValueError(f"task '{name}' needs two or more distinct label names (strings), got {labels}")
        spec[str(name)] = labels
    return spec
