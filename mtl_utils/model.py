"""The multi-task model: one shared sentence encoder, one classification head per task."""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .encoder import SentenceEncoder

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT_VERSION = 1


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
    if not tasks:
        raise ValueError("a multi-task model needs at least one task: pass {task name: [label names]}")
    spec = {}
    for name, labels in tasks.items():
        labels = tuple(labels)
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ValueError(f"task '{name}' needs two or more distinct label names, got {labels}")
        spec[str(name)] = labels
    return spec


class MultiTaskModel(nn.Module):
    """A shared :class:`SentenceEncoder` and an ``nn.ModuleDict`` of task heads.

    Tasks are data: ``tasks={"topic": [...5 labels], "sentiment": ["negative", "positive"]}``; a third task
    is one more entry. ``forward`` returns ``{task: logits}`` for every task or for the ones asked for.

    Args:
        tasks: task name -> label names.
        encoder: an existing encoder to share; if ``None`` one is built from ``model``, ``pooling``, ...
        dropout, hidden_dim: head architecture (``hidden_dim=None``: a single linear layer).
    """

    def __init__(
        self,
        tasks: Mapping[str, Sequence[str]],
        encoder: SentenceEncoder | None = None,
        *,
        model: str | None = None,
        pooling: str = "mean",
        normalize: bool = False,
        max_length: int | None = None,
        output_dim: int | None = None,
        dropout: float = 0.1,
        hidden_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.task_labels = check_task_spec(tasks)
        self.encoder = encoder or SentenceEncoder(
            model, pooling=pooling, normalize=normalize, max_length=max_length, output_dim=output_dim
        )
        self.head_config = {"dropout": dropout, "hidden_dim": hidden_dim}
        self.heads = nn.ModuleDict(
            {name: TaskHead(self.encoder.dim, len(labels), dropout, hidden_dim) for name, labels in self.task_labels.items()}
        )

    @property
    def task_names(self) -> list[str]:
        return list(self.task_labels)

    def check_tasks(self, tasks: str | Sequence[str] | None) -> list[str]:
        """Task names to compute (all when ``None``); an unknown name raises ``KeyError`` listing known ones."""
        if tasks is None:
            return self.task_names
        tasks = [tasks] if isinstance(tasks, str) else list(tasks)
        for name in tasks:
            if name not in self.heads:
                raise KeyError(f"unknown task '{name}'; this model has {self.task_names}")
        return tasks

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        tasks: str | Sequence[str] | None = None,
        **extra: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """One pass through the shared encoder, then each requested head: ``{task: [batch, labels]}``."""
        names = self.check_tasks(tasks)
        vectors = self.encoder(input_ids, attention_mask, **extra)
        return {name: self.heads[name](vectors) for name in names}

    def logits(
        self, sentences: str | Sequence[str], tasks: str | Sequence[str] | None = None, batch_size: int = 64
    ) -> dict[str, np.ndarray]:
        """Inference logits per task (eval mode, length-sorted batches, input order kept)."""
        names = self.check_tasks(tasks)
        vectors = self.encoder.encode(sentences, batch_size=batch_size, convert_to_tensor=True, show_progress=False,
                                      warn_truncation=False)
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                vectors = vectors.to(self.encoder.device)
                return {name: self.heads[name](vectors).float().cpu().numpy() for name in names}
        finally:
            self.train(was_training)

    def predict(
        self, sentences: str | Sequence[str], tasks: str | Sequence[str] | None = None, batch_size: int = 64
    ) -> pd.DataFrame:
        """A table with one row per sentence: per task the predicted label and each label's probability."""
        texts = [sentences] if isinstance(sentences, str) else list(sentences)
        table = pd.DataFrame({"sentence": texts})
        for name, logits in self.logits(texts, tasks, batch_size).items():
            probs = torch.softmax(torch.from_numpy(logits), dim=-1).numpy()
            labels = self.task_labels[name]
            table[name] = [labels[i] for i in probs.argmax(axis=1)]
            for j, label in enumerate(labels):
                table[f"{name}: p({label})"] = probs[:, j].round(3)
        return table

    def parameter_summary(self) -> pd.DataFrame:
        """Parameters per part (shared encoder, each head): total and trainable."""
        parts = {"shared encoder": self.encoder}
        parts.update({f"head: {name}": head for name, head in self.heads.items()})
        rows = [
            {
                "part": part,
                "parameters": sum(p.numel() for p in module.parameters()),
                "trainable": sum(p.numel() for p in module.parameters() if p.requires_grad),
            }
            for part, module in parts.items()
        ]
        table = pd.DataFrame(rows)
        table.loc[len(table)] = {"part": "total", "parameters": table["parameters"].sum(),
                                 "trainable": table["trainable"].sum()}
        table["share of total"] = (table["parameters"] / table["parameters"].iloc[-1]).map("{:.2%}".format)
        return table

    def config(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "encoder": self.encoder.config(),
            "tasks": {name: list(labels) for name, labels in self.task_labels.items()},
            "head": dict(self.head_config),
        }

    def save(self, folder: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (no pickle) into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(folder / WEIGHTS_FILE))
        (folder / CONFIG_FILE).write_text(json.dumps(self.config(), indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path, tasks: Mapping[str, Sequence[str]] | None = None) -> "MultiTaskModel":
        """Rebuild a saved model. With ``tasks``, first check that the checkpoint has exactly those tasks and
        labels (in order) and raise ``ValueError`` naming the difference otherwise."""
        folder = Path(folder)
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder} is not a saved MultiTaskModel: {name} is missing")
        config = json.loads((folder / CONFIG_FILE).read_text())
        if config.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{folder}: checkpoint format {config.get('format_version')}, expected {FORMAT_VERSION}")
        saved = {name: tuple(labels) for name, labels in config["tasks"].items()}
        if tasks is not None:
            wanted = check_task_spec(tasks)
            if wanted != saved:
                raise ValueError(f"{folder} was trained for tasks/labels {saved}, not {wanted}")
        model = cls(saved, **config["encoder"], **config["head"])
        missing, unexpected = model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)), strict=False)
        if missing or unexpected:
            raise ValueError(f"{folder}: weights do not fit the config (missing {missing[:5]}, unexpected {unexpected[:5]})")
        return model
