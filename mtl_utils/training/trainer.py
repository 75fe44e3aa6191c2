"""Multi-task training (:func:`train`): one task per mini-batch (or one of each, losses summed), AdamW with warm-up and
decay, validation after each of ``rounds`` equal parts of the budget, the best round's weights kept. The step
(:meth:`Trainer.train_step`): sample a task, take a batch, run it through the shared encoder and that task's head,
weight its loss (``sampling="summed"``: a batch of *each* task), backpropagate, clip, step, schedule."""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from mtl_utils.core.batching import eval_mode
from mtl_utils.core.progress import progress
from mtl_utils.core.seeding import set_seed
from mtl_utils.data.checks import check_datasets
from mtl_utils.data.tasks import SPLITS, Task
from mtl_utils.evaluation.metrics import classification_scores
from mtl_utils.modeling.encoder import Tokenized
from mtl_utils.modeling.model import MultiTaskModel
from mtl_utils.training import distributed, freezing, optim, step_inputs
from mtl_utils.training.config import TrainConfig
from mtl_utils.training.frozen_cache import FrozenCache, cached_logits
from mtl_utils.training.sampling import TaskBatches, TaskSampler
from mtl_utils.training.step_inputs import StepInputs
from mtl_utils.training.validation_rounds import BestRound, History, RoundFreezing


def build_model(config: TrainConfig, data: Mapping[str, Task]) -> MultiTaskModel:
    """The model a run of ``config`` starts from: pretrained encoder, fresh heads seeded by ``config.seed``."""
    set_seed(config.seed)
    return MultiTaskModel({t: data[t].labels for t in config.tasks}, model=config.model, pooling=config.pooling,
                          max_length=config.max_length, dropout=config.dropout, hidden_dim=config.hidden_dim,
                          device=config.device)


def task_logits(model: MultiTaskModel, tokens: Tokenized, task: str, batch_size: int = 64) -> np.ndarray:
    """Inference logits ``[n, labels]`` of one task for already tokenised texts (eval mode, input order)."""
    vectors = model.encoder.encode_tokenized(tokens, batch_size, show_progress=False)
    with eval_mode(model), torch.inference_mode():
        return model.heads[task](vectors.to(model.encoder.device)).float().cpu().numpy()


def evaluate(model: MultiTaskModel, task: Task, split: str = "test", batch_size: int = 64,
             cache: FrozenCache | None = None, tokens: Tokenized | None = None) -> dict:
    """Accuracy, macro-F1, confusion (rows: true), predictions, which were right on ``task[split]`` (via ``cache``)."""
    if cache is not None:
        logits = cached_logits(model, cache, task.name, batch_size)[task.name]
    else:
        tokens = tokens or model.encoder.token_ids(list(task[split]["text"]))
        logits = task_logits(model, tokens, task.name, batch_size)
    if not np.isfinite(logits).all():
        raise FloatingPointError(f"task '{task.name}', {split} split: the model's logits are not finite (NaN or "
                                 "infinite weights): the run diverged; lower the learning rate")
    return classification_scores(task[split]["label"].to_numpy(), logits, task.num_labels)


@dataclass
class TrainResult:
    """A finished run: best-by-validation model, history, step losses, test scores, confusion, predictions, ``seen``."""

    model: MultiTaskModel
    config: TrainConfig
    history: pd.DataFrame
    test: pd.DataFrame
    confusion: dict[str, np.ndarray]
    predictions: dict[str, np.ndarray]
    best_round: int
    train_seconds: float
    steps: pd.DataFrame
    cached: bool = False
    seen: dict[str, np.ndarray] = field(default_factory=dict)

    def correct(self, data: Mapping[str, Task], task: str) -> np.ndarray:
        """Which test examples of ``task`` this run got right (for McNemar and bootstrap comparisons)."""
        return self.predictions[task] == data[task]["test"]["label"].to_numpy()


@dataclass
class StepBatch:
    """One task's mini-batch: labels, the divisor turning its summed loss into its part of the mean, encoder input."""

    labels: torch.Tensor
    divisor: float
    inputs: dict[str, torch.Tensor]


class StepLoss(nn.Module):
    """A step's forward pass as one module call: each task's batch through the shared encoder and its head, then its
    loss; with several processes, the module DDP wraps (a summed step stays one forward and one backward)."""

    def __init__(self, model: MultiTaskModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, batches: Mapping[str, StepBatch],
                inputs: StepInputs) -> dict[str, Tensor]:
        """``{task: loss}``: the sum of the batch's cross-entropies over its divisor (the mean for one process)."""
        losses = {}
        for task, batch in batches.items():
            logits = inputs.logits(self.model, batch.inputs, task)  # encoder + head
            loss = nn.functional.cross_entropy(logits, batch.labels, reduction="sum")
            losses[task] = loss / batch.divisor
        return losses


class Trainer:
    """``Trainer(config, data).fit()`` returns a :class:`TrainResult`; ``model``: an existing model to continue."""

    def __init__(self, config: TrainConfig, data: Mapping[str, Task], model: MultiTaskModel | None = None,
                 progress_bar: bool = True) -> None:
        self.config, self.data, self.progress_bar = config, data, progress_bar
        check_datasets(data, config.tasks + config.watch_tasks)
        self.prepare_model(model)
        self.prepare_data()
        self.prepare_optimizer()

    def prepare_model(self, model: MultiTaskModel | None) -> None:
        """The model (built from the config unless given), its freezing and the per-round freezing schedule."""
        c = self.config
        self.model = build_model(c, self.data) if model is None else model
        self.world = distributed.world()
        self.processes = distributed.processes(self.world)  # one process, or a share of each batch
        set_seed(c.seed)
        distributed.own_dropout(c.seed, self.world)
        check_heads(self.model, c, self.data)
        self.freezing = RoundFreezing(self.model, c, self.data)
        self.device = self.model.encoder.device

    def prepare_data(self) -> None:
        """Tokenise every split once; a batch stream per trained task; the task sampler."""
        c = self.config
        rng = np.random.default_rng(c.seed)
        tokenize = self.model.encoder.token_ids
        needed = [(t, "train") for t in c.tasks] + [(t, s) for t in c.tasks + c.watch_tasks for s in SPLITS[1:]]
        self.tokens = {(t, s): tokenize(list(self.data[t][s]["text"])) for t, s in needed}
        self.labels = {t: torch.from_numpy(self.data[t]["train"]["label"].to_numpy().astype(np.int64)) for t in c.tasks}
        self.batches = {t: TaskBatches(self.tokens[t, "train"].lengths, c.batch_size, rng, c.length_bucketing)
                        for t in c.tasks}
        self.sampler = iter(TaskSampler({t: len(self.data[t]["train"]) for t in c.tasks}, c.sampling, c.temperature,
                                        rng))
        self.total_steps = c.steps(self.data)
        if c.rounds > self.total_steps:
            raise ValueError(f"TrainConfig.rounds={c.rounds}, but the budget is {self.total_steps} steps: choose at "
                             f"most {self.total_steps} rounds or a larger budget (examples)")
        self.loss_weights = {t: c.loss_weights.get(t, 1.0) for t in c.tasks}

    def prepare_optimizer(self) -> None:
        """AdamW (fused where available) over the trainable parameters, linear warm-up and decay."""
        c = self.config
        groups = optim.param_groups(self.model, c.lr, c.weight_decay, c.head_lr, c.layer_decay)
        if not any(g["params"] for g in groups):
            raise ValueError("nothing to train: every parameter is frozen")
        self.trainable = [p for g in groups for p in g["params"]]
        self.optimizer = optim.make_optimizer(groups, c.lr)
        self.scheduler = optim.linear_warmup_decay(self.optimizer, int(c.warmup_ratio * self.total_steps),
                                                   self.total_steps)

    def train_step(self) -> dict[str, float]:
        """One optimizer step of multi-task training; each task's (unweighted) loss."""
        step_tasks = next(self.sampler)  # 1. this step's task (all tasks when summed)
        batches = {t: self.task_batch(t) for t in step_tasks}  # 2. a batch of each
        losses = self.step_loss(batches, self.inputs)  # 3. encoder + head: loss
        values = self.processes.loss_values(losses)  # each task's loss, a number
        check_losses(values, self.step, self.config)
        total = sum(self.loss_weights[t] * loss for t, loss in losses.items())
        total.backward()  # 4. the weighted (summed) loss
        optim.optimizer_step(self.optimizer, self.scheduler, self.trainable,
                             self.config.max_grad_norm)  # 5. clip, update, schedule
        return values

    def task_batch(self, task: str) -> StepBatch:
        """The next mini-batch of ``task``: its labels and the encoder's input."""
        idx = self.batches[task].next_indices()  # a mini-batch of that task
        rows, divisor = self.processes.rows(idx)  # this process's rows: all, alone
        labels = self.labels[task][rows].to(self.device)
        return StepBatch(labels, divisor, self.inputs.batch(task, rows))

    def begin(self) -> None:
        """Start counting: no steps taken, nothing recorded, no best round yet."""
        self.step, self.history = 0, History()
        self.best = BestRound(keep_weights=self.config.rounds > 1, last=not self.config.keep_best_round)

    def set_round_freezing(self, k: int) -> None:
        """This round's freezing (bottom ``k``; the rest as configured), caches and step inputs from them."""
        self.frozen_layers = k
        self.caches, self.cache_seconds = self.freezing.apply(k, self.tokens)
        self.inputs = step_inputs.for_round(self.model, self.tokens, self.caches, k)
        self.step_loss = self.processes.wrap(StepLoss(self.model), self.config.sampling, self.config.tasks,
                                             getattr(self, "step_loss", None))

    def fit_round(self, round_: int, steps: int) -> dict[str, list[float]]:
        """Train ``steps`` steps; returns each task's losses."""
        self.model.train()
        freezing.set_frozen_eval(self.model)
        bar = progress(range(steps), desc=f"round {round_}/{self.config.rounds}", disable=not self.progress_bar,
                       unit="step", leave=False)
        for _ in bar:
            losses = self.train_step()
            self.step += 1
            self.history.step(round_, self.step, losses)
        return self.history.end_round()

    def scores(self, task: str, split: str) -> dict:
        """Metrics of ``task`` on ``split`` now (through this round's cache when there is one)."""
        return evaluate(self.model, self.data[task], split, self.config.eval_batch_size,
                        self.caches.get((task, split)), self.tokens[task, split])

    def validate(self, round_: int, losses: dict[str, list[float]], seconds: float) -> None:
        """A history row per task after a round, with validation scores when used (several rounds, or watched tasks);
        offers the round to :class:`BestRound`. ``steps`` counts the steps that trained the task."""
        c, needed = self.config, self.config.rounds > 1 or bool(self.config.watch_tasks)
        rows = []
        for task in c.tasks + c.watch_tasks:
            val = self.scores(task, "validation") if needed else {"accuracy": float("nan"), "macro_f1": float("nan")}
            rows.append(self.history.round_row(round_, task, task in c.tasks, losses, val, self.frozen_layers, seconds,
                                               self.cache_seconds))
            if task in c.watch_tasks:
                rows[-1]["test accuracy"] = self.scores(task, "test")["accuracy"]
        if needed:
            self.best.offer(round_, float(np.mean([r["val macro-F1"] for r in rows if r["trained"]])), self.model)

    def fit(self) -> TrainResult:
        """Every round (train, validate), the best round restored, then the test sets."""
        c = self.config
        self.begin()
        train_seconds = 0.0
        bounds = [round(self.total_steps * r / c.rounds) for r in range(c.rounds + 1)]
        if c.watch_tasks:
            self.set_round_freezing(self.freezing.schedule[0])
            self.validate(0, {}, 0.0)
        for round_, k in enumerate(self.freezing.schedule, start=1):
            self.set_round_freezing(k)
            start = time.perf_counter()
            losses = self.fit_round(round_, bounds[round_] - bounds[round_ - 1])
            seconds = time.perf_counter() - start
            train_seconds += seconds
            self.validate(round_, losses, seconds)
        self.best.restore(self.model)
        check_finite_weights(self.model, c)
        test, confusion, predictions = score_test_sets(self.scores, self.data, c.tasks + c.watch_tasks)
        self.model.eval()
        history, steps = self.history.tables()
        seen = {t: np.flatnonzero(self.batches[t].seen) for t in c.tasks}  # training rows drawn
        return TrainResult(self.model, c, history, test, confusion, predictions, self.best.round,
                           round(train_seconds, 3), steps, seen=seen)


def check_losses(values: Mapping[str, float], step: int, config: TrainConfig) -> None:
    """Raise ``FloatingPointError`` naming a task whose loss is NaN or infinite (every process agrees)."""
    for task, value in values.items():
        if not np.isfinite(value):
            raise FloatingPointError(f"the loss of task '{task}' is {value} at step {step}: lower the learning "
                                     f"rate (lr={config.lr}, head_lr={config.head_lr}) or check the inputs")


def check_heads(model: MultiTaskModel, config: TrainConfig, data: Mapping[str, Task]) -> None:
    """The model has a head for every trained, watched and frozen task, predicting the data's labels."""
    model.check_tasks(config.tasks + config.watch_tasks + config.frozen_heads)
    for t in config.tasks + config.watch_tasks:
        if tuple(model.task_labels[t]) != tuple(data[t].labels):
            raise ValueError(f"the model's head '{t}' predicts {model.task_labels[t]}, but the data's labels are "
                             f"{data[t].labels}")


def check_finite_weights(model: MultiTaskModel, config: TrainConfig) -> None:
    """Raise ``FloatingPointError`` naming the first non-finite parameter: the run diverged."""
    for name, param in model.named_parameters():
        if not torch.isfinite(param).all():
            raise FloatingPointError(f"training left non-finite weights in {name}: the run diverged; lower the "
                                     f"learning rate (lr={config.lr}) or the weight decay "
                                     f"(weight_decay={config.weight_decay})")


def score_test_sets(scores, data: Mapping[str, Task], tasks: Sequence[str]
                ) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Test metrics per task (``scores(task, "test")``), confusion matrices, predictions."""
    rows, confusion, predictions = [], {}, {}
    for task in tasks:
        res = scores(task, "test")
        confusion[task], predictions[task] = res["confusion"], res["predictions"]
        rows.append({"task": task, "accuracy": res["accuracy"], "macro-F1": res["macro_f1"],
                     "majority baseline": data[task].majority_baseline("test"),
                     "test examples": len(res["predictions"])})
    return pd.DataFrame(rows), confusion, predictions


def train(config: TrainConfig, data: Mapping[str, Task], model: MultiTaskModel | None = None,
          progress_bar: bool = True) -> TrainResult:
    """Train ``config`` on ``data`` (see :class:`Trainer`) and return the best round's model with its metrics."""
    return Trainer(config, data, model, progress_bar).fit()
