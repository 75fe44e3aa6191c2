"""Multi-task training: one task per mini-batch (or one of each task, losses summed), a task sampler, AdamW with
warm-up and decay, validation after each round, and the best round's weights kept.

The loop is :class:`Trainer`, a few small methods in the order they run (``prepare_data``,
``prepare_model``, ``prepare_optimizer``, then ``fit`` = ``fit_round`` + ``validate`` per round,
``restore_best``, ``test``). Its heart is :meth:`Trainer.train_step`, the step a reader should know by heart:
sample a task, take a batch of that task, run it through the shared encoder and that task's head, weight
its loss, backpropagate, clip, step, schedule. With ``sampling="summed"`` every step takes a batch of *each*
task and backpropagates the weighted sum of their losses (the seed write-up's "summed or weighted" total
loss). :func:`train` runs it all; :mod:`mtl_utils.runs` caches finished runs.

The budget of a run is the number of training examples it sees (``TrainConfig.examples``); ``rounds`` splits
it into equal parts with a validation after each.
"""
from __future__ import annotations

import dataclasses
import math
import re
import time
import warnings
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import anatomy, freezing, optim, runtime
from .batching import eval_mode
from .data import SPLITS, Task
from .encoder import DEFAULT_MODEL, Tokenized, check_batch_size
from .frozen_cache import FrozenCache, cached_forward, cached_logits, level_for, shared_cache
from .metrics import classification_scores
from .model import MultiTaskModel
from .pooling import POOLING_MODES
from .progress import progress
from .seeding import set_seed

SAMPLING_STRATEGIES: tuple[str, ...] = ("proportional", "uniform", "temperature", "summed")
_RUN_KEY = re.compile(r"^[0-9a-f]{16}$")


def _bad(name: str, value, wanted: str) -> ValueError:
    return ValueError(f"TrainConfig.{name} must be {wanted}, got {value!r}")


def _int(name: str, value, low: int, none_ok: bool = False) -> None:
    if value is None and none_ok:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise _bad(name, value, f"an integer of at least {low}" + (" (or None)" if none_ok else ""))


def _number(name: str, value, low: float, high: float = math.inf, low_open: bool = False,
            none_ok: bool = False) -> None:
    if value is None and none_ok:
        return
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.floating)) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and value <= high
    if not ok:
        bounds = f"{'>' if low_open else '>='} {low:g}" + (f" and <= {high:g}" if high < math.inf else "")
        raise _bad(name, value, f"a finite number {bounds}" + (" (or None)" if none_ok else ""))


def _names(name: str, value) -> tuple[str, ...]:
    if isinstance(value, str):
        raise _bad(name, value, f"a tuple of task names, e.g. ({value!r},), not a bare string")
    names = tuple(value)
    if not all(isinstance(v, str) and v for v in names):
        raise _bad(name, value, "a tuple of non-empty task-name strings")
    if len(set(names)) != len(names):
        raise _bad(name, value, "a tuple of distinct task names (one is repeated)")
    return names


@dataclass
class TrainConfig:
    """Everything that defines a training run (and so its cache key), validated when it is made: a bad
    field raises ``ValueError`` naming the field and what it accepts.

    Budget: ``examples`` training examples seen in total, ``ceil(examples / batch_size)`` optimizer steps
    (``None``: as many examples as every trained task's training set together, one pass when tasks are
    sampled in proportion to their sizes); ``sampling="summed"`` takes a batch of every task per step, so
    ``ceil(examples / (batch_size × tasks))`` steps, the same number for each task. ``rounds`` equal parts,
    each followed by a validation; the round with the best mean validation macro-F1 is kept (with one round
    there is nothing to choose, and no validation is run).

    Rates: the encoder at ``lr``; the heads at ``head_lr`` (a number, ``{task: rate}``, or ``None`` for
    ``lr``); ``layer_decay`` (ξ) multiplies the rate by ξ per layer going down (:mod:`mtl_utils.optim`).

    Freezing (:mod:`mtl_utils.freezing`): ``frozen_layers=k`` freezes the embeddings and the bottom ``k``
    encoder layers; ``frozen_heads`` freezes those tasks' heads. With ``frozen_cache`` the frozen bottom's
    output is computed once per text (:mod:`mtl_utils.frozen_cache`, exact). ``gradual_unfreezing`` (ULMFiT)
    trains the heads alone in round 1 and unfreezes one more layer from the top each round, down to
    ``frozen_layers``. ``init_from`` is the cache key of a finished run whose model training continues from;
    ``watch_tasks`` are tasks of that model that are not trained but evaluated every round.
    """

    tasks: tuple[str, ...] = ("topic", "sentiment")
    model: str = DEFAULT_MODEL
    pooling: str = "mean"
    max_length: int = 64
    batch_size: int = 16
    examples: int | None = None
    rounds: int = 1
    lr: float = 5e-5
    head_lr: float | dict[str, float] | None = None
    layer_decay: float | None = None
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float | None = 1.0
    sampling: str = "proportional"
    temperature: float = 2.0
    loss_weights: dict[str, float] = field(default_factory=dict)
    dropout: float = 0.1
    hidden_dim: int | None = None
    length_bucketing: bool = True
    eval_batch_size: int = 64
    seed: int = 0
    frozen_layers: int = 0
    frozen_heads: tuple[str, ...] = ()
    frozen_cache: bool = True
    gradual_unfreezing: bool = False
    init_from: str | None = None
    watch_tasks: tuple[str, ...] = ()
    device: str | None = None

    def __post_init__(self) -> None:
        self.tasks = _names("tasks", self.tasks)
        if not self.tasks:
            raise _bad("tasks", self.tasks, "at least one task name")
        self.frozen_heads, self.watch_tasks = _names("frozen_heads", self.frozen_heads), _names("watch_tasks",
                                                                                                 self.watch_tasks)
        if not isinstance(self.model, str) or not self.model:
            raise _bad("model", self.model, "a model id or folder (a non-empty string)")
        if self.pooling not in POOLING_MODES:
            raise _bad("pooling", self.pooling, f"one of {POOLING_MODES}")
        for name, low in (("max_length", 2), ("batch_size", 1), ("rounds", 1), ("eval_batch_size", 1), ("seed", 0),
                          ("frozen_layers", 0)):
            _int(name, getattr(self, name), low)
        _int("examples", self.examples, 1, none_ok=True)
        _int("hidden_dim", self.hidden_dim, 1, none_ok=True)
        _number("lr", self.lr, 0, low_open=True)
        self._check_head_lr()
        _number("layer_decay", self.layer_decay, 0, 1, low_open=True, none_ok=True)
        _number("weight_decay", self.weight_decay, 0)
        _number("warmup_ratio", self.warmup_ratio, 0, 1)
        _number("max_grad_norm", self.max_grad_norm, 0, low_open=True, none_ok=True)
        _number("temperature", self.temperature, 0, low_open=True)
        _number("dropout", self.dropout, 0, 1)
        if self.dropout >= 1:
            raise _bad("dropout", self.dropout, "below 1 (1 would drop everything)")
        if self.sampling not in SAMPLING_STRATEGIES:
            raise _bad("sampling", self.sampling, f"one of {SAMPLING_STRATEGIES}")
        self._check_loss_weights()
        for name in ("length_bucketing", "frozen_cache", "gradual_unfreezing"):
            if not isinstance(getattr(self, name), bool):
                raise _bad(name, getattr(self, name), "True or False")
        both = set(self.watch_tasks) & set(self.tasks)
        if both:
            raise _bad("watch_tasks", self.watch_tasks, f"tasks that are not trained ({sorted(both)} are in tasks)")
        unknown = set(self.frozen_heads) - set(self.tasks) - set(self.watch_tasks)
        if unknown:
            raise _bad("frozen_heads", self.frozen_heads, f"heads of trained or watched tasks ({sorted(unknown)} is "
                                                          "neither)")
        if self.init_from is not None and not (isinstance(self.init_from, str) and _RUN_KEY.match(self.init_from)):
            raise _bad("init_from", self.init_from, "None or the 16-character cache key of a finished run")
        if self.watch_tasks and self.init_from is None:
            raise _bad("watch_tasks", self.watch_tasks, "empty unless init_from names a run that has those heads")
        if self.device is not None:
            runtime.device(self.device)

    def _check_head_lr(self) -> None:
        if isinstance(self.head_lr, Mapping):
            self.head_lr = dict(self.head_lr)
            unknown = sorted(set(self.head_lr) - set(self.tasks))
            if unknown:
                raise _bad("head_lr", self.head_lr, f"rates for trained tasks {self.tasks} ({unknown} is not one)")
            for task, rate in self.head_lr.items():
                _number(f"head_lr[{task!r}]", rate, 0, low_open=True)
        else:
            _number("head_lr", self.head_lr, 0, low_open=True, none_ok=True)

    def _check_loss_weights(self) -> None:
        if not isinstance(self.loss_weights, Mapping):
            raise _bad("loss_weights", self.loss_weights, "a dict {task: weight}")
        self.loss_weights = dict(self.loss_weights)
        unknown = sorted(set(self.loss_weights) - set(self.tasks))
        if unknown:
            raise _bad("loss_weights", self.loss_weights, f"weights of trained tasks {self.tasks} ({unknown} is not one)")
        for task, weight in self.loss_weights.items():
            _number(f"loss_weights[{task!r}]", weight, 0, low_open=True)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> "TrainConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def steps(self, data: Mapping[str, Task]) -> int:
        """Optimizer steps of this run on ``data``."""
        examples = self.examples or sum(len(data[t]["train"]) for t in self.tasks)
        per_step = self.batch_size * (len(self.tasks) if self.sampling == "summed" else 1)
        return math.ceil(examples / per_step)


def chance_loss_weights(data: Mapping[str, Task], tasks: Sequence[str]) -> dict[str, float]:
    """Loss weights ``1 / ln(classes)``: each task's cross-entropy divided by its value at chance, so every task's
    weighted loss starts near 1 (an untrained 5-class head starts at ln 5 ≈ 1.61, a 2-class one at ln 2 ≈ 0.69).
    Taught in notebook 04."""
    return {t: 1.0 / math.log(data[t].num_labels) for t in tasks}


class TaskSampler:
    """Chooses the task(s) of the next step, yielded as a tuple.

    * ``proportional``: one task, p(task) proportional to its training-set size;
    * ``uniform``: round-robin, every task in turn (equal steps per task);
    * ``temperature``: p proportional to n ** (1 / T); T=1 is proportional, large T approaches uniform;
    * ``summed``: every task in every step (their losses are summed); ``probabilities`` are then uniform, the
      share of each task in the examples seen.
    """

    def __init__(self, sizes: Mapping[str, int], strategy: str = "proportional", temperature: float = 2.0,
                 rng: np.random.Generator | None = None) -> None:
        if strategy not in SAMPLING_STRATEGIES:
            raise ValueError(f"unknown sampling '{strategy}'; choose one of {SAMPLING_STRATEGIES}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.tasks = list(sizes)
        self.strategy = strategy
        self.rng = rng or np.random.default_rng(0)
        n = np.array([sizes[t] for t in self.tasks], dtype=float)
        weights = {"proportional": n, "temperature": n ** (1.0 / temperature)}.get(strategy, np.ones_like(n))
        self.probabilities = dict(zip(self.tasks, weights / weights.sum()))

    def __iter__(self) -> Iterator[tuple[str, ...]]:
        if self.strategy == "summed":
            while True:
                yield tuple(self.tasks)
        if self.strategy == "uniform":
            while True:
                yield from ((t,) for t in self.tasks)
        p = np.array([self.probabilities[t] for t in self.tasks])
        while True:
            yield (self.tasks[self.rng.choice(len(self.tasks), p=p)],)


class TaskBatches:
    """Endless shuffled mini-batches (row numbers) of one task's training set; reshuffled after each pass.

    With ``bucketing`` the shuffled rows are sorted by token length within chunks of 50 batches before
    batching, so a batch holds texts of similar length and pads little; the order of batches is shuffled
    again, so consecutive batches are not sorted.
    """

    def __init__(self, lengths: Sequence[int] | np.ndarray, batch_size: int, rng: np.random.Generator,
                 bucketing: bool = True) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size, self.rng, self.bucketing = batch_size, rng, bucketing
        self._batches: list[np.ndarray] = []

    def _refill(self) -> None:
        order = self.rng.permutation(len(self.lengths))
        if self.bucketing:
            chunk = self.batch_size * 50
            order = np.concatenate([c[np.argsort(self.lengths[c], kind="stable")]
                                    for c in np.array_split(order, range(chunk, len(order), chunk))])
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        self._batches = [batches[i] for i in self.rng.permutation(len(batches))]

    def next_indices(self) -> np.ndarray:
        """Row numbers of the next mini-batch."""
        if not self._batches:
            self._refill()
        return self._batches.pop()


def check_datasets(data: Mapping[str, Task], tasks: Sequence[str]) -> None:
    """Check every split of ``tasks`` before any model loads: the task exists, each split has ``text`` and
    ``label`` columns and rows, every text is a non-empty string, every label an integer class id of the
    task. Errors name the task, split and row. Warns (naming the task) about a single-class training split and
    about texts that are in both the training and the test split."""
    for name in tasks:
        if name not in data:
            raise KeyError(f"no data for task '{name}'; data has {list(data)}")
        task = data[name]
        for split in SPLITS:
            _check_split(task, split, task[split])
        train_labels = set(task["train"]["label"])
        if len(train_labels) < 2:
            warnings.warn(f"task '{name}': the training split has one class only ({sorted(train_labels)}); "
                          "a classifier cannot learn to tell classes apart from it", stacklevel=2)
        overlap = set(task["train"]["text"]) & set(task["test"]["text"])
        if overlap:
            warnings.warn(f"task '{name}': {len(overlap)} texts are in both the train and the test split (e.g. "
                          f"{next(iter(overlap))!r:.60}); test scores overstate accuracy", stacklevel=2)


def _check_split(task: Task, split: str, df: pd.DataFrame) -> None:
    where = f"task '{task.name}', {split} split"
    for column in ("text", "label"):
        if column not in df.columns:
            raise ValueError(f"{where}: no '{column}' column; its columns are {list(df.columns)}")
    if len(df) == 0:
        raise ValueError(f"{where} is empty")
    texts = df["text"].to_numpy(dtype=object)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        i = bad[0]
        raise ValueError(f"{where}, row {df.index[i]}: text {texts[i]!r} is not a non-empty string "
                         f"({len(bad)} such rows)")
    labels = df["label"].to_numpy(dtype=object)
    for i, label in enumerate(labels):
        if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)):
            raise ValueError(f"{where}, row {df.index[i]}: label {label!r} is a {type(label).__name__}; labels are "
                             f"integer class ids 0..{task.num_labels - 1} ({', '.join(task.labels)})")
    values = df["label"].to_numpy().astype(np.int64)
    outside = np.flatnonzero((values < 0) | (values >= task.num_labels))
    if len(outside):
        i = int(outside[0])
        raise ValueError(f"{where}, row {df.index[i]}: label {values[i]} is outside 0..{task.num_labels - 1} "
                         f"({', '.join(task.labels)}); {len(outside)} such rows")


def build_model(config: TrainConfig, data: Mapping[str, Task]) -> MultiTaskModel:
    """The model a run of ``config`` starts from: the pretrained encoder and fresh heads, initialised after
    ``set_seed(config.seed)`` (so the same config always starts from the same weights)."""
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
    """Accuracy, macro-F1, confusion matrix (rows: true, columns: predicted), predictions and which examples
    were right, on ``task[split]``; through ``cache`` when the bottom of the model is frozen and cached
    (``tokens``: the split already tokenised, to skip tokenising again)."""
    if cache is not None:
        logits = cached_logits(model, cache, task.name, batch_size)[task.name]
    else:
        tokens = tokens or model.encoder.token_ids(list(task[split]["text"]))
        logits = task_logits(model, tokens, task.name, batch_size)
    return classification_scores(task[split]["label"].to_numpy(), logits, task.num_labels)


@dataclass
class TrainResult:
    """A finished run: the best-by-validation model, per-round history, per-step losses, test metrics,
    confusion matrices and test predictions per task (for paired comparisons)."""

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

    def correct(self, data: Mapping[str, Task], task: str) -> np.ndarray:
        """Which test examples of ``task`` this run got right (for McNemar and bootstrap comparisons)."""
        return self.predictions[task] == data[task]["test"]["label"].to_numpy()


class Trainer:
    """Trains one configuration on ``data``; ``Trainer(config, data).fit()`` returns a :class:`TrainResult`.

    Pass ``model`` to continue training an existing model (e.g. from another run); parameters with
    ``requires_grad=False`` are left out of the optimizer, frozen blocks run in eval mode.
    """

    def __init__(self, config: TrainConfig, data: Mapping[str, Task], model: MultiTaskModel | None = None,
                 progress_bar: bool = True) -> None:
        self.config, self.data, self.progress_bar = config, data, progress_bar
        check_datasets(data, config.tasks + config.watch_tasks)
        self.prepare_model(model)
        self.prepare_data()
        self.prepare_optimizer()

    # -- setup --------------------------------------------------------------------------------------------
    def prepare_model(self, model: MultiTaskModel | None) -> None:
        """The model (built from the config unless given), its freezing and the per-round freezing schedule."""
        c = self.config
        self.model = build_model(c, self.data) if model is None else model
        set_seed(c.seed)
        self.model.check_tasks(c.tasks + c.watch_tasks + c.frozen_heads)
        for t in c.tasks + c.watch_tasks:
            if tuple(self.model.task_labels[t]) != tuple(self.data[t].labels):
                raise ValueError(f"the model's head '{t}' predicts {self.model.task_labels[t]}, but the data's labels "
                                 f"are {self.data[t].labels}")
        n = anatomy.num_layers(self.model)
        if c.frozen_layers > n:
            raise ValueError(f"TrainConfig.frozen_layers={c.frozen_layers}, but this model has {n} encoder layers: "
                             f"choose 0..{n}")
        freezing.freeze_bottom(self.model, c.frozen_layers)
        for name in c.frozen_heads:
            freezing.freeze_head(self.model, name)
        self.schedule = (freezing.unfreezing_schedule(n, c.rounds, c.frozen_layers) if c.gradual_unfreezing
                         else [c.frozen_layers] * c.rounds)
        bottom = [anatomy.embeddings(self.model), *anatomy.layer_stack(self.model)]
        self.bottom = [(i, p, p.requires_grad) for i, block in enumerate(bottom) for p in block.parameters()]
        self.weights_id = self.model.encoder.fingerprint() if c.frozen_cache and max(self.schedule) > 0 else None
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

    # -- one step -----------------------------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        """One optimizer step of multi-task training; returns each trained task's (unweighted) loss."""
        step_tasks = next(self.sampler)                          # 1. this step's task (all tasks when summed)
        losses = {task: self.task_loss(task) for task in step_tasks}  # 2.-3. a batch of each, its loss
        total = sum(self.loss_weights[task] * loss for task, loss in losses.items())
        total.backward()                                         # 4. the weighted (summed) loss
        if self.config.max_grad_norm:                            # 5. clip the gradient norm
            nn.utils.clip_grad_norm_(self.trainable, self.config.max_grad_norm)
        self.optimizer.step()                                    # 6. update, advance the schedule
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {task: loss.item() for task, loss in losses.items()}

    def task_loss(self, task: str) -> torch.Tensor:
        """The loss of one mini-batch of ``task``: through the shared encoder and that task's head only."""
        idx = self.batches[task].next_indices()                  # a mini-batch of that task only
        labels = self.labels[task][idx].to(self.device)
        cache = self.caches.get((task, "train"))
        if cache is not None:                                    # the shared encoder (its frozen bottom cached) ...
            logits = cached_forward(self.model, cache.batch(idx), self.k, task)[task]
        else:
            inputs = self.model.encoder.collate([self.tokens[task, "train"].ids[i] for i in idx])
            logits = self.model(**inputs, tasks=task)[task]      # ... then that task's head only
        loss = nn.functional.cross_entropy(logits, labels)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the loss of task '{task}' is {loss.item()} at step {self.step}: lower the "
                                     f"learning rate (lr={self.config.lr}, head_lr={self.config.head_lr}) or check "
                                     "the inputs")
        return loss

    # -- rounds -------------------------------------------------------------------------------------------
    def set_round_freezing(self, k: int) -> None:
        """This round's freezing: the bottom ``k`` frozen, the rest as the config froze it; caches for ``k``."""
        for i, param, trainable in self.bottom:
            param.requires_grad_(trainable and (k == 0 or i > k))
        self.k, self.cache_seconds = k, 0.0
        self.caches: dict[tuple[str, str], FrozenCache] = {}
        if self.config.frozen_cache and k > 0:
            level = level_for(self.model, k)
            for (task, split), tokens in self.tokens.items():
                texts = list(self.data[task][split]["text"])
                cache = shared_cache(self.model, texts, k, self.weights_id, level, self.config.eval_batch_size)
                self.caches[task, split] = cache
                self.cache_seconds += cache.seconds

    def fit_round(self, round_: int, steps: int) -> dict[str, list[float]]:
        """Train ``steps`` steps; returns each task's losses."""
        self.model.train()
        freezing.set_frozen_eval(self.model)
        losses: dict[str, list[float]] = defaultdict(list)
        bar = progress(range(steps), desc=f"round {round_}/{self.config.rounds}", disable=not self.progress_bar,
                       unit="step", leave=False)
        for _ in bar:
            step_losses = self.train_step()
            self.step += 1
            for task, loss in step_losses.items():
                losses[task].append(loss)
                self.step_rows.append({"round": round_, "step": self.step, "task": task,
                                       "task step": len(losses[task]) + self.task_steps[task], "loss": loss})
        for task, values in losses.items():
            self.task_steps[task] += len(values)
        return losses

    def scores(self, task: str, split: str) -> dict:
        """Metrics of ``task`` on ``split`` now (through this round's cache when there is one)."""
        return evaluate(self.model, self.data[task], split, self.config.eval_batch_size,
                        self.caches.get((task, split)), self.tokens[task, split])

    def validate(self, round_: int, losses: dict[str, list[float]], seconds: float) -> None:
        """A history row per task after a round, with validation scores when something uses them (several
        rounds to choose from, or watched tasks); keeps the weights of the best round so far. A row's ``steps``
        counts the optimizer steps that trained its task (with summed steps every task counts every step)."""
        needed = self.config.rounds > 1 or bool(self.config.watch_tasks)
        rows = []
        for task in self.config.tasks + self.config.watch_tasks:
            val = self.scores(task, "validation") if needed else {"accuracy": float("nan"), "macro_f1": float("nan")}
            row = {"round": round_, "task": task, "trained": task in self.config.tasks,
                   "steps": len(losses.get(task, [])),
                   "train loss": float(np.mean(losses[task])) if losses.get(task) else float("nan"),
                   "val accuracy": val["accuracy"], "val macro-F1": val["macro_f1"], "frozen layers": self.k,
                   "train seconds": round(seconds, 3), "cache seconds": round(self.cache_seconds, 3)}
            if task in self.config.watch_tasks:
                row["test accuracy"] = self.scores(task, "test")["accuracy"]
            rows.append(row)
        self.history_rows += rows
        if not needed:
            return
        score = float(np.mean([r["val macro-F1"] for r in rows if r["trained"]]))
        if round_ > 0 and score > self.best_score:
            self.best_score, self.best_round = score, round_
            if self.config.rounds > 1:
                self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def restore_best(self) -> None:
        """Load the weights of the best round (with one round, the model as it ended)."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)

    def test(self) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Test metrics per task (trained and watched), confusion matrices, predictions."""
        rows, confusion, predictions = [], {}, {}
        for task in self.config.tasks + self.config.watch_tasks:
            res = self.scores(task, "test")
            confusion[task], predictions[task] = res["confusion"], res["predictions"]
            rows.append({"task": task, "accuracy": res["accuracy"], "macro-F1": res["macro_f1"],
                         "majority baseline": self.data[task].majority_baseline("test"),
                         "test examples": len(res["predictions"])})
        return pd.DataFrame(rows), confusion, predictions

    def fit(self) -> TrainResult:
        """Every round (train, validate), the best round restored, then the test sets."""
        c = self.config
        self.step, self.task_steps = 0, defaultdict(int)
        self.step_rows, self.history_rows = [], []
        self.best_score, self.best_round, self.best_state = -1.0, 1, None
        train_seconds = 0.0
        bounds = [round(self.total_steps * r / c.rounds) for r in range(c.rounds + 1)]
        if c.watch_tasks:
            self.set_round_freezing(self.schedule[0])
            self.validate(0, {}, 0.0)
        for round_, k in enumerate(self.schedule, start=1):
            self.set_round_freezing(k)
            start = time.perf_counter()
            losses = self.fit_round(round_, bounds[round_] - bounds[round_ - 1])
            seconds = time.perf_counter() - start
            train_seconds += seconds
            self.validate(round_, losses, seconds)
        self.restore_best()
        test, confusion, predictions = self.test()
        self.model.eval()
        return TrainResult(self.model, c, pd.DataFrame(self.history_rows), test, confusion, predictions,
                           self.best_round, round(train_seconds, 3), pd.DataFrame(self.step_rows))


def train(config: TrainConfig, data: Mapping[str, Task], model: MultiTaskModel | None = None,
          progress_bar: bool = True) -> TrainResult:
    """Train ``config`` on ``data`` (see :class:`Trainer`) and return the best round's model with its metrics."""
    return Trainer(config, data, model, progress_bar).fit()
