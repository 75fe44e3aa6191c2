"""The multi-task model: one shared sentence encoder, one classification head per task, and its checkpoints.

A checkpoint is one self-contained folder that loads offline for any base model:

* ``config.json``: encoder settings, tasks and label names, head shape, and a SHA-256 of every other file;
* ``model.safetensors``: every weight (no pickle); its metadata holds a digest of the configuration, so an
  edited ``config.json`` (label names, pooling, max length) is detected, and flipped bytes in the weights too;
* ``backbone/``: the transformer's own configuration and the tokenizer files.

:meth:`MultiTaskModel.save` writes into a temporary folder and swaps it in, so a failed save leaves the
previous checkpoint intact; :meth:`MultiTaskModel.load` verifies every checksum and returns the model in
eval mode.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer

from .batching import eval_mode
from .encoder import SentenceEncoder, _quiet_hf, check_batch_size, check_sentences, sentence_index

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
BACKBONE_DIR = "backbone"
FORMAT_VERSION = 2


class CheckpointError(ValueError):
    """A checkpoint folder is missing, incomplete, corrupted or edited; the message names the file."""


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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _config_digest(config: Mapping) -> str:
    """Digest of a checkpoint's configuration, without its file checksums (stored inside the weights file)."""
    core = {k: v for k, v in config.items() if k != "files"}
    return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()


class MultiTaskModel(nn.Module):
    """A shared :class:`SentenceEncoder` and an ``nn.ModuleDict`` of task heads.

    Tasks are data: ``tasks={"topic": [...5 labels], "sentiment": ["negative", "positive"]}``; a third task
    is one more entry. ``forward`` returns ``{task: logits}`` for every task or for the ones asked for.

    Args:
        tasks: task name -> label names.
        encoder: an existing encoder to share; if ``None`` one is built from ``model``, ``pooling``, ...
        dropout, hidden_dim: head architecture (``hidden_dim=None``: a single linear layer).
    """

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
        """Task names to compute (all when ``None``). An unknown name raises ``KeyError`` listing the known
        ones; an empty list is an error too (it would compute nothing)."""
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
        """Inference logits per task ``{task: [n, labels]}`` (eval mode, length-sorted batches, input order;
        inputs as :func:`mtl_utils.encoder.check_sentences` accepts; truncation warned unless switched off)."""
        names = self.check_tasks(tasks)
        batch_size = check_batch_size(batch_size)
        vectors = self.encoder.encode(sentences, batch_size=batch_size, convert_to_tensor=True, show_progress=False,
                                      warn_truncation=warn_truncation)
        with eval_mode(self), torch.inference_mode():
            return {name: logits.float().cpu().numpy()
                    for name, logits in self.heads_forward(vectors.to(self.encoder.device), names).items()}

    def predict(self, sentences, tasks: str | Sequence[str] | None = None, batch_size: int = 64,
                warn_truncation: bool = True) -> pd.DataFrame:
        """One row per sentence: per task the predicted label and each label's probability. A pandas Series'
        index is kept."""
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
        """Write a self-contained checkpoint (see the module docstring) into ``folder``, atomically: a failed
        save keeps what was there. An existing folder that is not a checkpoint is never replaced."""
        folder = Path(folder)
        if folder.exists() and any(folder.iterdir()) and not (folder / CONFIG_FILE).is_file():
            raise FileExistsError(f"{folder} exists and is not a MultiTaskModel checkpoint: refusing to replace it")
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.parent / f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir()
            config = self.config()
            state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
            save_file(state, str(tmp / WEIGHTS_FILE), metadata={"config_sha256": _config_digest(config)})
            self.encoder.transformer.config.save_pretrained(tmp / BACKBONE_DIR)
            self.encoder.tokenizer.save_pretrained(tmp / BACKBONE_DIR)
            config["files"] = {str(p.relative_to(tmp)): _sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
            (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2))
            _swap_in(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return folder

    @classmethod
    def load(cls, folder: str | Path, tasks: Mapping[str, Sequence[str]] | None = None,
             device: str | torch.device | None = None) -> "MultiTaskModel":
        """Rebuild a saved model (offline: everything comes from the folder), in eval mode.

        Every file is checked against its SHA-256, and the configuration against the digest stored in the
        weights: a missing, corrupted or edited file raises :class:`CheckpointError` naming it. With
        ``tasks``, the checkpoint must have exactly those tasks and labels (in order)."""
        folder = Path(folder)
        config = read_checkpoint_config(folder)
        saved = {name: tuple(labels) for name, labels in config["tasks"].items()}
        if tasks is not None:
            wanted = check_task_spec(tasks)
            if wanted != saved:
                raise ValueError(f"{folder} was trained for tasks/labels {saved}, not {wanted}")
        state = _read_weights(folder, config)
        backbone = folder / BACKBONE_DIR
        with _quiet_hf():
            tokenizer = AutoTokenizer.from_pretrained(backbone)
            transformer = AutoModel.from_config(AutoConfig.from_pretrained(backbone))
        if getattr(transformer, "pooler", None) is not None:
            transformer.pooler = None
        encoder = SentenceEncoder(backbone=(tokenizer, transformer), device=device, **config["encoder"])
        model = cls(saved, encoder=encoder, **config["head"])
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise CheckpointError(f"{folder / WEIGHTS_FILE}: weights do not fit the config (missing {missing[:5]}, "
                                  f"unexpected {unexpected[:5]})")
        return model.eval()


def _swap_in(tmp: Path, folder: Path) -> None:
    """Replace ``folder`` by ``tmp``: the old folder is moved aside first and deleted only afterwards."""
    old = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
    if folder.exists():
        os.replace(folder, old)
    try:
        os.replace(tmp, folder)
    except OSError:
        if old.exists():
            os.replace(old, folder)
        raise
    shutil.rmtree(old, ignore_errors=True)


def read_checkpoint_config(folder: Path) -> dict:
    """A checkpoint's ``config.json``, after checking the folder, the format and every file's checksum."""
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder: no MultiTaskModel checkpoint there")
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{folder} is not a saved MultiTaskModel: {CONFIG_FILE} is missing")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err}): the checkpoint is corrupted; save it again") from None
    if not isinstance(config, dict) or config.get("format_version") != FORMAT_VERSION:
        found = config.get("format_version") if isinstance(config, dict) else None
        raise CheckpointError(f"{path}: checkpoint format {found}, expected {FORMAT_VERSION}")
    for key in ("encoder", "tasks", "head", "files"):
        if key not in config:
            raise CheckpointError(f"{path} has no '{key}' entry: the checkpoint is incomplete")
    for name, expected in config["files"].items():
        file = folder / name
        if not file.is_file():
            raise CheckpointError(f"{file} is missing from the checkpoint")
        if _sha256(file) != expected:
            raise CheckpointError(f"{file} does not match its checksum in {CONFIG_FILE}: the file is corrupted")
    if WEIGHTS_FILE not in config["files"]:
        raise CheckpointError(f"{path} lists no {WEIGHTS_FILE}: the checkpoint is incomplete")
    return config


def _read_weights(folder: Path, config: dict) -> dict[str, torch.Tensor]:
    path = folder / WEIGHTS_FILE
    try:
        with safe_open(str(path), framework="pt") as handle:
            stored = (handle.metadata() or {}).get("config_sha256")
            state = {k: handle.get_tensor(k) for k in handle.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} cannot be read ({err}): the checkpoint is corrupted") from None
    if stored != _config_digest(config):
        raise CheckpointError(f"{folder / CONFIG_FILE} was changed after the weights were saved (its digest does not "
                              f"match the one in {WEIGHTS_FILE}): label names, pooling or lengths no longer fit them")
    return state
