"""The Trainer's collaborators: :class:`RoundFreezing` (each round's ``k`` and frozen-layer caches), :class:`History`
(a row per task and step, and per task and round), :class:`BestRound` (the best validated round and its weights)."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

from mtl_utils.data.tasks import Task
from mtl_utils.modeling import anatomy
from mtl_utils.modeling.encoder import Tokenized
from mtl_utils.modeling.model import MultiTaskModel
from mtl_utils.training import distributed, freezing
from mtl_utils.training.config import TrainConfig
from mtl_utils.training.frozen_cache import FrozenCache, level_for, shared_cache


class RoundFreezing:
    """Each round's frozen bottom ``k`` and (``config.frozen_cache``) its caches per split (:func:`shared_cache`)."""

    def __init__(self, model: MultiTaskModel, config: TrainConfig, data: Mapping[str, Task]) -> None:
        n = anatomy.num_layers(model)
        if config.frozen_layers > n:
            raise ValueError(f"TrainConfig.frozen_layers={config.frozen_layers}, but this model has {n} encoder "
                             f"layers: choose 0..{n}")
        freezing.freeze_bottom(model, config.frozen_layers)
        for name in config.frozen_heads:
            freezing.freeze_head(model, name)
        self.model, self.config, self.data = model, config, data
        self.schedule = (freezing.unfreezing_schedule(n, config.rounds, config.frozen_layers)
                         if config.gradual_unfreezing else [config.frozen_layers] * config.rounds)
        if config.layer_decay is not None:
            anatomy.layer_stack(model)  # a rate per layer needs a layer per depth: refused up front for ALBERT
        self.bottom = {k: {id(p) for _, p in anatomy.bottom_parameters(model, k)} for k in set(self.schedule)}
        cached = [k for k in self.schedule if 0 < k < n] if config.frozen_cache else []
        if cached and min(anatomy.layer_flow(model).output[:max(cached)]) < 0:
            raise ValueError(f"{type(anatomy.transformer_of(model)).__name__}'s layers return more than their token "
                             "vectors: the frozen-layer cache cannot skip them exactly; train with frozen_cache=False")
        self.trainable = [(p, p.requires_grad) for p in anatomy.transformer_of(model).parameters()]
        self.weights_id = model.encoder.fingerprint() if config.frozen_cache and max(self.schedule) > 0 else None

    def apply(self, k: int, tokens: Mapping[tuple[str, str], Tokenized]
              ) -> tuple[dict[tuple[str, str], FrozenCache], float]:
        """Freeze the bottom ``k`` (the rest as configured); return its caches by ``(task, split)`` and seconds."""
        for param, trainable in self.trainable:
            param.requires_grad_(trainable and id(param) not in self.bottom[k])
        caches: dict[tuple[str, str], FrozenCache] = {}
        seconds = 0.0
        if self.config.frozen_cache and k > 0:
            level = level_for(self.model, k)
            for task, split in tokens:
                texts = list(self.data[task][split]["text"])
                cache = shared_cache(self.model, texts, k, self.weights_id, level, self.config.eval_batch_size)
                caches[task, split] = cache
                seconds += cache.seconds
        return caches, seconds


class BestRound:
    """The best round so far (round 0 never counts), its weights if ``keep_weights``; ``last``: the latest is best."""

    def __init__(self, keep_weights: bool, last: bool = False) -> None:
        self.keep_weights, self.last = keep_weights and not last, last
        self.score, self.round = -1.0, 1
        self.state: dict[str, torch.Tensor] | None = None

    def offer(self, round_: int, score: float, model: torch.nn.Module) -> None:
        """Record ``round_`` if its ``score`` beats all before (the main process's decides: GPUs may round apart)."""
        score = distributed.broadcast(score)
        if round_ > 0 and (self.last or score > self.score):
            self.score, self.round = score, round_
            if self.keep_weights:
                self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def restore(self, model: torch.nn.Module) -> None:
        """Load the best round's weights (without kept weights, the model stays as it ended)."""
        if self.state is not None:
            model.load_state_dict(self.state)


class History:
    """What a run did: ``steps`` (a row per task and step: round, step, the task's own step count, its loss) and
    ``rounds`` (a row per task and round: steps, mean loss, validation scores, freezing, seconds)."""

    def __init__(self) -> None:
        self.step_rows: list[dict] = []
        self.round_rows: list[dict] = []
        self.task_steps: dict[str, int] = defaultdict(int)
        self.losses: dict[str, list[float]] = defaultdict(list)

    def step(self, round_: int, step: int, losses: Mapping[str, float]) -> None:
        """Record one optimizer step's (unweighted) loss of each task it trained."""
        for task, loss in losses.items():
            self.task_steps[task] += 1
            self.losses[task].append(loss)
            self.step_rows.append({"round": round_, "step": step, "task": task,
                                   "task step": self.task_steps[task], "loss": loss})

    def end_round(self) -> dict[str, list[float]]:
        """The losses of the round that ends, by task; the next round starts empty."""
        losses, self.losses = dict(self.losses), defaultdict(list)
        return losses

    def round_row(self, round_: int, task: str, trained: bool, losses: Mapping[str, list[float]], val: Mapping,
                  k: int, seconds: float, cache_seconds: float) -> dict:
        """Record (and return) ``task``'s row after ``round_``; ``val`` holds its validation scores (or NaN)."""
        row = {"round": round_, "task": task, "trained": trained, "steps": len(losses.get(task, [])),
               "train loss": float(np.mean(losses[task])) if losses.get(task) else float("nan"),
               "val accuracy": val["accuracy"], "val macro-F1": val["macro_f1"], "frozen layers": k,
               "train seconds": round(seconds, 3), "cache seconds": round(cache_seconds, 3)}
        self.round_rows.append(row)
        return row

    def tables(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """``(rounds, steps)`` as DataFrames."""
        return pd.DataFrame(self.round_rows), pd.DataFrame(self.step_rows)
