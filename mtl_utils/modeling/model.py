"""The multi-task model: a shared sentence encoder, a head per task; its checkpoints load verified, running no code."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer

from mtl_utils.core.batching import eval_mode
from mtl_utils.modeling.backbone import check_encoder_config, check_no_custom_code, quiet_hf
from mtl_utils.modeling.checkpoint import (
    BACKBONE_DIR,
    FORMAT_VERSION,
    WEIGHTS_FILE,
    CheckpointError,
    read_checkpoint_config,
    read_weights,
    save_checkpoint,
)
from mtl_utils.modeling.encoder import SentenceEncoder, check_batch_size, check_sentences, sentence_index
from mtl_utils.modeling.heads import TaskHead, check_task_spec

__all__ = ["CheckpointError", "MultiTaskModel", "TaskHead", "check_task_spec"]


class MultiTaskModel(nn.Module):
    """A shared :class:`SentenceEncoder` and an ``nn.ModuleDict`` of task heads; ``forward`` returns ``{task: logits}``
    for every task or the ones asked for. ``tasks``: ``{task: label names}``, e.g.
    ``{"topic": [...5 labels], "sentiment": [...]}``; ``encoder``: one to share (``None``: built from ``model``,
    ``pooling``, ...); ``dropout``, ``hidden_dim``: the heads (``hidden_dim=None``: one linear layer)."""

    def __init__(self, tasks: Mapping[str, Sequence[str]], encoder: SentenceEncoder | None = None, *,
                 model: str | None = None, pooling: str = "mean", normalize: bool = False,
                 max_length: int | None = None, output_dim: int | None = None, dropout: float = 0.1,
                 hidden_dim: int | None = None, device: str | torch.device | None = None) -> None:
        super().__init__()
        self.task_labels = check_task_spec(tasks)
        self.encoder = encoder or SentenceEncoder(model, pooling=pooling, normalize=normalize, max_length=max_length,
                                                  output_dim=output_dim, device=device)
        self.head_config = {"dropout": dropout, "hidden_dim": hidden_dim}
        self.heads = nn.ModuleDict({name: TaskHead(self.encoder.dim, len(labels), dropout, hidden_dim)
                                    for name, labels in self.task_labels.items()})
        self.to(self.encoder.device)

    @property
    def task_names(self) -> list[str]:
        return list(self.task_labels)

    def check_tasks(self, tasks: str | Sequence[str] | None) -> list[str]:
        """Task names to compute (all when ``None``); ``KeyError`` for an unknown one, ``ValueError`` for none."""
        if tasks is None:
            return self.task_names
        names = [tasks] if isinstance(tasks, str) else list(tasks)
        if not names:
            raise ValueError(f"no tasks asked for: pass None (every task) or some of {self.task_names}")
        for name in names:
            if name not in self.heads:
                raise KeyError(f"unknown task '{name}'; this model has {self.task_names}")
        return names

    def heads_forward(self, vectors: torch.Tensor, tasks: str | Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Each requested head on sentence vectors ``[batch, dim]``: ``{task: [batch, labels]}``."""
        return {name: self.heads[name](vectors) for name in self.check_tasks(tasks)}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, tasks: str | Sequence[str] | None = None,
                **extra: torch.Tensor) -> dict[str, torch.Tensor]:
        """One pass through the shared encoder, then each requested head: ``{task: [batch, labels]}``."""
        return self.heads_forward(self.encoder(input_ids, attention_mask, **extra), tasks)

    def logits(self, sentences, tasks: str | Sequence[str] | None = None, batch_size: int = 64,
               warn_truncation: bool = True) -> dict[str, np.ndarray]:
        """Inference logits ``{task: [n, labels]}`` (eval mode, length-sorted batches, input order)."""
        names = self.check_tasks(tasks)
        batch_size = check_batch_size(batch_size)
        vectors = self.encoder.encode(sentences, batch_size=batch_size, convert_to_tensor=True, show_progress=False,
                                      warn_truncation=warn_truncation)
        with eval_mode(self), torch.inference_mode():
            return {name: logits.float().cpu().numpy()
                    for name, logits in self.heads_forward(vectors.to(self.encoder.device), names).items()}

    def predict(self, sentences, tasks: str | Sequence[str] | None = None, batch_size: int = 64,
                warn_truncation: bool = True) -> pd.DataFrame:
        """One row per sentence: each task's predicted label and label probabilities (a Series' index is kept)."""
        texts = check_sentences(sentences)
        table = pd.DataFrame({"sentence": texts}, index=sentence_index(sentences))
        for name, logits in self.logits(texts, tasks, batch_size, warn_truncation).items():
            probs = torch.softmax(torch.from_numpy(logits), dim=-1).numpy()
            labels = self.task_labels[name]
            table[name] = [labels[i] for i in probs.argmax(axis=1)]
            for j, label in enumerate(labels):
                table[f"{name}: p({label})"] = probs[:, j].astype(float).round(3)
        return table

    def config(self) -> dict:
        return {"format_version": FORMAT_VERSION, "encoder": self.encoder.config(),
                "tasks": {name: list(labels) for name, labels in self.task_labels.items()},
                "head": dict(self.head_config)}

    def save(self, folder: str | Path) -> Path:
        """Write a checkpoint into ``folder`` atomically (:func:`mtl_utils.modeling.checkpoint.save_checkpoint`)."""
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}

        def write_backbone(path: Path) -> None:
            self.encoder.transformer.config.save_pretrained(path)
            self.encoder.tokenizer.save_pretrained(path)
        return save_checkpoint(folder, self.config(), state, write_backbone)

    @classmethod
    def load(cls, folder: str | Path, tasks: Mapping[str, Sequence[str]] | None = None,
             device: str | torch.device | None = None) -> "MultiTaskModel":
        """Rebuild a saved model offline in eval mode, running no code from it; a missing, damaged or edited file, or a
        backbone that is no encoder or wants custom code: :class:`CheckpointError`. ``tasks``: labels it must have."""
        folder = Path(folder)
        config = read_checkpoint_config(folder)
        saved = {name: tuple(labels) for name, labels in config["tasks"].items()}
        if tasks is not None:
            wanted = check_task_spec(tasks)
            if wanted != saved:
                raise ValueError(f"{folder} was trained for tasks/labels {saved}, not {wanted}")
        state = read_weights(folder, config)
        backbone = folder / BACKBONE_DIR
        try:
            check_no_custom_code(backbone)
            with quiet_hf():
                backbone_config = AutoConfig.from_pretrained(backbone, trust_remote_code=False)
                check_encoder_config(backbone_config, str(backbone))
                tokenizer = AutoTokenizer.from_pretrained(backbone, config=backbone_config, trust_remote_code=False)
                transformer = AutoModel.from_config(backbone_config, trust_remote_code=False)
        except ValueError as err:
            raise CheckpointError(_first_line(err, backbone)) from None
        if getattr(transformer, "pooler", None) is not None:
            transformer.pooler = None
        encoder = SentenceEncoder(backbone=(tokenizer, transformer), device=device, **config["encoder"])
        model = cls(saved, encoder=encoder, **config["head"])
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise CheckpointError(f"{folder / WEIGHTS_FILE}: weights do not fit the config (missing {missing[:5]}, "
                                  f"unexpected {unexpected[:5]})")
        return model.eval()


def _first_line(err: Exception, backbone: Path) -> str:
    """An error's first line, naming ``backbone`` if it does not already."""
    lines = str(err).strip().splitlines()
    line = lines[0] if lines else type(err).__name__
    return line if str(backbone) in line else f"{backbone}: {line}"
