"""Pair runs and the contrastive task kept in the run store: trained once, read back after.

* :func:`pairs_or_load`: a finished pair run cached by its configuration, base model, pairs and code, as
  :func:`series.runs.train_or_load` caches classification runs;
* :func:`contrastive_task_or_load`: the multi-task model trained with the contrastive task
  (:class:`mtl_utils.training.sentence_training.ContrastiveTaskTrainer`), cached the same way.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from mtl_utils.core import paths
from mtl_utils.data.checks import warn_about
from mtl_utils.data.tasks import Task
from mtl_utils.modeling.encoder import SentenceEncoder
from mtl_utils.modeling.model import MultiTaskModel
from mtl_utils.training import contrastive, sentence_training
from mtl_utils.training.config import TrainConfig
from mtl_utils.training.sentence_training import (
    ContrastiveTaskTrainer,
    PairConfig,
    PairData,
    PairResult,
    PairTrainer,
)
from mtl_utils.training.trainer import evaluate
from series import store
from series.runs import code_fingerprint, library_versions, run_key


def _key(parts: Mapping) -> str:
    code = store.code_sha256([sys.modules[__name__], sentence_training, contrastive]) + code_fingerprint()
    return store.key({**parts, "code": code, "versions": library_versions()})


def pair_key(config: PairConfig, pairs: PairData) -> str:
    """Cache key of a pair run: configuration, base model files, pairs, code and library versions."""
    return _key({"config": dataclasses.asdict(config), "base model": store.model_digest(config.model),
                 "pairs": pairs.digest()})


def load_pair_run(folder: Path, config: PairConfig, model: torch.nn.Module | None = None) -> PairResult:
    """A pair run's entry read back into ``model`` (default: a new encoder of ``config``; a cross-encoder's
    run passes its own), with the run's losses and seconds."""
    model = model or SentenceEncoder(config.model, max_length=config.max_length)
    model.load_state_dict(load_file(str(folder / "encoder.safetensors")))
    meta = json.loads((folder / "result.json").read_text())
    return PairResult(model.eval(), config, meta["losses"], meta["train_seconds"], cached=True)


def write_pair_run(result: PairResult, tmp: Path) -> None:
    """A pair run's entry (a cross-encoder's too): the encoder's weights, each step's loss, training seconds."""
    state = {k: v.detach().contiguous() for k, v in result.encoder.state_dict().items()}
    save_file(state, str(tmp / "encoder.safetensors"))
    (tmp / "result.json").write_text(json.dumps({"losses": result.losses, "train_seconds": result.train_seconds}))


def pairs_or_load(config: PairConfig, pairs: PairData, force: bool = False,
                  progress_bar: bool = True) -> PairResult:
    """Train a pair run, or load it from ``<cache>/pairs/<key>/`` (weights and losses) when it was trained
    before; ``force`` retrains. The entry is kept by the run store (:func:`series.store.load_or_make`):
    a damaged one is reported and retrained, one that a publish killed between its renames is put back."""

    folder = paths.cache_dir() / "pairs" / pair_key(config, pairs)
    result, _ = store.load_or_make(folder, lambda f: load_pair_run(f, config),
                                   lambda: PairTrainer(config, pairs, progress_bar=progress_bar).fit(),
                                   write_pair_run, what="pair run", redo="training it again", force=force)
    return result


@dataclass
class ContrastiveTaskResult:
    """The multi-task model trained with the contrastive task: its model and which test examples of each
    classification task it got right."""

    model: MultiTaskModel
    correct: dict[str, np.ndarray] = field(repr=False)
    cached: bool = False

    @classmethod
    def scored(cls, model: MultiTaskModel, data: Mapping[str, Task], tasks: Sequence[str],
               cached: bool) -> "ContrastiveTaskResult":
        correct = {t: evaluate(model, data[t], "test")["predictions"] == data[t]["test"]["label"].to_numpy()
                   for t in tasks}
        return cls(model, correct, cached)


def contrastive_task_or_load(config: TrainConfig, data: Mapping[str, Task], pairs: PairData,
                             pair_batch_size: int, pair_examples: int, force: bool = False,
                             progress_bar: bool = True) -> ContrastiveTaskResult:
    """Train :class:`ContrastiveTaskTrainer` (or load it from ``<cache>/pairs/<key>/``, put back first if a publish
    was killed between its renames, warning about the data as a fresh run does)."""
    key = _key({"run": run_key(config, data), "pairs": pairs.digest(), "pair batch": pair_batch_size,
                "pair examples": pair_examples})

    def make() -> MultiTaskModel:
        return ContrastiveTaskTrainer(config, data, pairs, pair_batch_size, pair_examples, progress_bar).fit().model

    model, cached = store.load_or_make(paths.cache_dir() / "pairs" / key, lambda f: MultiTaskModel.load(f / "model"),
                                       make, lambda m, tmp: m.save(tmp / "model"), what="run",
                                       redo="training it again", force=force)
    if cached:
        warn_about(data, config.tasks + config.watch_tasks)  # as the fresh run warns
    return ContrastiveTaskResult.scored(model, data, config.tasks, cached=cached)
