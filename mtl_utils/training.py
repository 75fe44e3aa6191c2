"""Multi-task training: one task per mini-batch, a task sampler, AdamW with warm-up and decay,
validation every epoch, the best checkpoint kept, and a cache so a finished run is never trained twice."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from torch import nn
from tqdm import tqdm  # plain text bars: they render in JupyterLab, papermill output and on the web

from . import optim, paths
from .data import Task
from .encoder import DEFAULT_MODEL
from .model import MultiTaskModel
from .seeding import set_seed

SAMPLING_STRATEGIES: tuple[str, ...] = ("proportional", "uniform", "temperature")


@dataclass
class TrainConfig:
    """Everything that defines a training run (and so its cache key).

    ``steps_per_epoch=None`` means one pass over all training examples of the chosen tasks. Two runs with
    the same ``steps_per_epoch``, ``epochs`` and ``batch_size`` have the same compute budget.

    Freezing (see :mod:`mtl_utils.freezing`): ``frozen_layers=k`` freezes the embeddings and the bottom ``k``
    encoder layers (``k`` = all layers: the whole backbone); ``frozen_heads`` freezes those tasks' heads.
    With ``frozen_cache`` the frozen bottom's output is computed once per text and training runs only the
    layers above (:mod:`mtl_utils.frozen_cache`). ``gradual_unfreezing`` (ULMFiT) trains the heads alone
    in epoch 1 and unfreezes one more layer from the top each epoch, down to ``frozen_layers``.
    ``init_from`` is the cache key (:func:`run_key`) of a finished run whose model training continues from;
    ``watch_tasks`` are tasks of that model that are not trained but evaluated every epoch (to see them drift).
    """

    tasks: tuple[str, ...] = ("topic", "sentiment")
    model: str = DEFAULT_MODEL
    pooling: str = "mean"
    max_length: int = 64
    epochs: int = 2
    batch_size: int = 16
    steps_per_epoch: int | None = None
    lr: float = 5e-5
    head_lr: float | None = None
    layer_decay: float | None = None
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    sampling: str = "proportional"
    temperature: float = 2.0
    loss_weights: dict[str, float] = field(default_factory=dict)
    dropout: float = 0.1
    hidden_dim: int | None = None
    length_bucketing: bool = False
    eval_batch_size: int = 64
    seed: int = 0
    frozen_layers: int = 0
    frozen_heads: tuple[str, ...] = ()
    frozen_cache: bool = True
    gradual_unfreezing: bool = False
    init_from: str | None = None
    watch_tasks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.tasks = tuple(self.tasks)
        if not self.tasks:
            raise ValueError("TrainConfig.tasks is empty: name at least one task")
        if self.sampling not in SAMPLING_STRATEGIES:
            raise ValueError(f"unknown sampling '{self.sampling}'; choose one of {SAMPLING_STRATEGIES}")
        unknown = set(self.loss_weights) - set(self.tasks)
        if unknown:
            raise ValueError(f"loss_weights name tasks {sorted(unknown)} that are not trained; tasks: {self.tasks}")
        for name in ("epochs", "batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be at least 1, got {getattr(self, name)}")
        self.frozen_heads, self.watch_tasks = tuple(self.frozen_heads), tuple(self.watch_tasks)
        if isinstance(self.frozen_layers, bool) or not isinstance(self.frozen_layers, int) or self.frozen_layers < 0:
            raise ValueError(f"TrainConfig.frozen_layers must be a non-negative integer, got {self.frozen_layers!r}")
        both = set(self.watch_tasks) & set(self.tasks)
        if both:
            raise ValueError(f"watch_tasks {sorted(both)} are also trained; watch only tasks that are not in tasks")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def key_dict(self) -> dict:
        """The fields that identify the run: :meth:`to_dict` less the freezing fields left at their defaults
        (so runs without freezing keep the cache keys they had before those fields existed)."""
        out = self.to_dict()
        for f in dataclasses.fields(self):
            if f.name in _LATER_FIELDS and out[f.name] == (f.default if f.default is not dataclasses.MISSING
                                                           else f.default_factory()):
                del out[f.name]
        return out


_LATER_FIELDS = ("frozen_layers", "frozen_heads", "frozen_cache", "gradual_unfreezing", "init_from", "watch_tasks")


class TaskSampler:
    """Chooses the task of the next mini-batch.

    * ``proportional``: p(task) proportional to its training-set size;
    * ``uniform``: round-robin, every task in turn;
    * ``temperature``: p proportional to n ** (1 / T); T=1 is proportional, large T approaches uniform.
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
        weights = {"proportional": n, "uniform": np.ones_like(n), "temperature": n ** (1.0 / temperature)}[strategy]
        self.probabilities = dict(zip(self.tasks, weights / weights.sum()))

    def __iter__(self) -> Iterator[str]:
        if self.strategy == "uniform":
            while True:
                yield from self.tasks
        p = np.array([self.probabilities[t] for t in self.tasks])
        while True:
            yield self.tasks[self.rng.choice(len(self.tasks), p=p)]


class BatchStream:
    """Endless shuffled mini-batches of one task's training data; reshuffles after each pass.

    With ``bucketing`` the texts are sorted by length within chunks of 50 batches before batching, so a
    batch holds texts of similar length and pads little; the batch order is still shuffled.
    """

    def __init__(self, texts: Sequence[str], labels: Sequence[int], batch_size: int, rng: np.random.Generator,
                 bucketing: bool = False) -> None:
        self.texts, self.labels = list(texts), np.asarray(labels, dtype=np.int64)
        self.batch_size, self.rng, self.bucketing = batch_size, rng, bucketing
        self.lengths = np.array([len(t) for t in self.texts])
        self._batches: list[np.ndarray] = []

    def _refill(self) -> None:
        order = self.rng.permutation(len(self.texts))
        if self.bucketing:
            chunk = self.batch_size * 50
            order = np.concatenate([c[np.argsort(self.lengths[c], kind="stable")] for c in
                                    np.array_split(order, range(chunk, len(order), chunk))])
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        self._batches = [batches[i] for i in self.rng.permutation(len(batches))]

    def next_indices(self) -> np.ndarray:
        """Row numbers of the next mini-batch."""
        if not self._batches:
            self._refill()
        return self._batches.pop()

    def __next__(self) -> tuple[list[str], torch.Tensor]:
        idx = self.next_indices()
        return [self.texts[i] for i in idx], torch.from_numpy(self.labels[idx])


def check_datasets(data: Mapping[str, Task], tasks: Sequence[str]) -> None:
    """Fail before training on a missing task, an empty split, or a label outside a task's label set."""
    for name in tasks:
        if name not in data:
            raise KeyError(f"no data for task '{name}'; data has {list(data)}")
        task = data[name]
        for split in ("train", "validation", "test"):
            df = task[split]
            if len(df) == 0:
                raise ValueError(f"task '{name}': the {split} split is empty")
            labels = df["label"].to_numpy()
            valid = np.isin(labels, np.arange(task.num_labels))
            if not valid.all():
                i = int(np.flatnonzero(~valid)[0])
                raise ValueError(
                    f"task '{name}', {split} row {df.index[i]}: label {labels[i].item()!r} is outside "
                    f"0..{task.num_labels - 1} ({', '.join(task.labels)}); {int((~valid).sum())} such rows"
                )


def evaluate(model: MultiTaskModel, task: Task, split: str = "test", batch_size: int = 64) -> dict:
    """Accuracy, macro-F1, confusion matrix (rows: true, columns: predicted) and predictions on ``split``."""
    df = task[split]
    logits = model.logits(list(df["text"]), task.name, batch_size=batch_size)[task.name]
    return scores_from_logits(task, split, logits)


def scores_from_logits(task: Task, split: str, logits: np.ndarray) -> dict:
    """:func:`evaluate`'s metrics from logits ``[n, labels]`` of ``task[split]`` in row order."""
    df = task[split]
    pred = logits.argmax(axis=1)
    true = df["label"].to_numpy()
    return {
        "accuracy": float(accuracy_score(true, pred)),
        "macro_f1": float(f1_score(true, pred, average="macro", labels=range(task.num_labels), zero_division=0)),
        "confusion": confusion_matrix(true, pred, labels=range(task.num_labels)),
        "predictions": pred,
    }


@dataclass
class TrainResult:
    """A finished run: the best-by-validation model, per-epoch history, per-step training losses, test
    metrics and confusion matrices."""

    model: MultiTaskModel
    config: TrainConfig
    history: pd.DataFrame
    test: pd.DataFrame
    confusion: dict[str, np.ndarray]
    best_epoch: int
    train_seconds: float
    steps: pd.DataFrame = field(default_factory=pd.DataFrame)
    cached: bool = False

    def save(self, folder: Path) -> None:
        self.model.save(folder / "model")
        self.history.to_csv(folder / "history.csv", index=False)
        self.steps.to_csv(folder / "steps.csv", index=False)
        self.test.to_csv(folder / "test.csv", index=False)
        summary = {"config": self.config.to_dict(), "best_epoch": self.best_epoch,
                   "train_seconds": self.train_seconds,
                   "confusion": {k: v.tolist() for k, v in self.confusion.items()}}
        (folder / "result.json").write_text(json.dumps(summary, indent=2))

    @classmethod
    def load(cls, folder: Path, config: TrainConfig) -> "TrainResult":
        summary = json.loads((folder / "result.json").read_text())
        return cls(
            model=MultiTaskModel.load(folder / "model"),
            config=config,
            history=pd.read_csv(folder / "history.csv"),
            steps=pd.read_csv(folder / "steps.csv"),
            test=pd.read_csv(folder / "test.csv"),
            confusion={k: np.array(v) for k, v in summary["confusion"].items()},
            best_epoch=summary["best_epoch"],
            train_seconds=summary["train_seconds"],
            cached=True,
        )


ParamGroupsFn = Callable[[nn.Module, TrainConfig], list[dict]]


def default_param_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    return optim.param_groups(model, config.lr, config.weight_decay, config.head_lr, config.layer_decay)


def train(
    config: TrainConfig,
    data: Mapping[str, Task],
    model: MultiTaskModel | None = None,
    param_groups: ParamGroupsFn = default_param_groups,
    progress: bool = True,
    cache_id: str | None = None,
) -> TrainResult:
    """Train ``config.tasks`` on ``data`` and return the best epoch's model with its metrics.

    Each step draws a task from the sampler and a mini-batch of that task only (as MT-DNN does), pads it
    to its own longest text, and takes one AdamW step on that task's weighted loss. A non-finite loss
    stops training with ``FloatingPointError``. Pass ``model`` to continue training an existing model
    (e.g. with some parts frozen); parameters with ``requires_grad=False`` are left out of the optimizer.

    The config's freezing is applied on top of ``model``'s own; frozen blocks run in eval mode (no dropout).
    With ``config.frozen_cache`` and ``k = config.frozen_layers > 0`` the frozen bottom's outputs for every
    text are computed once (:mod:`mtl_utils.frozen_cache`) and training, validation and test run only the
    layers above. ``cache_id`` names the frozen weights so that such caches are shared between runs (it is
    set automatically for a model built fresh from the pretrained checkpoint).
    """
    from . import freezing
    from .frozen_cache import cached_forward, cached_logits, level_for, shared_cache

    check_datasets(data, config.tasks + config.watch_tasks)
    set_seed(config.seed)
    if model is None:
        model = MultiTaskModel({t: data[t].labels for t in config.tasks}, model=config.model,
                               pooling=config.pooling, max_length=config.max_length,
                               dropout=config.dropout, hidden_dim=config.hidden_dim)
        cache_id = cache_id or f"pretrained:{config.model}"
    model.check_tasks(config.tasks + config.watch_tasks + config.frozen_heads)
    n_layers = freezing.num_layers(model)
    if config.frozen_layers > n_layers:
        raise ValueError(f"TrainConfig.frozen_layers={config.frozen_layers}, but this model has {n_layers} encoder "
                         f"layers: choose 0..{n_layers}")
    freezing.freeze_bottom(model, config.frozen_layers)
    for name in config.frozen_heads:
        freezing.freeze_head(model, name)
    schedule = (freezing.unfreezing_schedule(n_layers, config.epochs, config.frozen_layers)
                if config.gradual_unfreezing else [config.frozen_layers] * config.epochs)
    rng = np.random.default_rng(config.seed)
    streams = {t: BatchStream(data[t]["train"]["text"], data[t]["train"]["label"], config.batch_size, rng,
                              config.length_bucketing) for t in config.tasks}
    sampler = iter(TaskSampler({t: len(data[t]["train"]) for t in config.tasks}, config.sampling,
                               config.temperature, rng))
    steps = config.steps_per_epoch or sum(math.ceil(len(data[t]["train"]) / config.batch_size) for t in config.tasks)
    total = steps * config.epochs
    groups = param_groups(model, config)
    if not any(g["params"] for g in groups):
        raise ValueError("nothing to train: every parameter is frozen")
    optimizer = torch.optim.AdamW(groups, lr=config.lr)
    scheduler = optim.linear_warmup_decay(optimizer, int(config.warmup_ratio * total), total)
    trainable = [p for g in groups for p in g["params"]]
    weights = {t: config.loss_weights.get(t, 1.0) for t in config.tasks}
    transformer = model.encoder.transformer
    bottom = [freezing.embeddings_module(transformer), *freezing.encoder_layers(transformer)]
    can_train = {id(p): p.requires_grad for block in bottom for p in block.parameters()}

    def set_frozen(k: int) -> None:  # the epoch's freezing: bottom k frozen, the rest as after config freezing
        for i, block in enumerate(bottom):
            for p in block.parameters():
                p.requires_grad_(can_train[id(p)] and (k == 0 or i > k))

    cache_seconds = 0.0

    def cache_for(task: str, split: str, k: int):
        nonlocal cache_seconds
        if not (config.frozen_cache and k > 0):
            return None
        cache = shared_cache(model, list(data[task][split]["text"]), k, cache_id, level_for(model, k),
                             config.eval_batch_size)
        cache_seconds += cache.seconds
        return cache

    def scores(task: str, split: str, k: int) -> dict:
        cache = cache_for(task, split, k)
        if cache is None:
            return evaluate(model, data[task], split, config.eval_batch_size)
        logits = cached_logits(model, cache, task, config.eval_batch_size)[task]
        return scores_from_logits(data[task], split, logits)

    def watch_rows(epoch: int, k: int) -> list[dict]:
        rows = []
        for t in config.watch_tasks:
            val, test = scores(t, "validation", k), scores(t, "test", k)
            rows.append({"epoch": epoch, "task": t, "steps": 0, "train loss": float("nan"),
                         "val accuracy": val["accuracy"], "val macro-F1": val["macro_f1"],
                         "test accuracy": test["accuracy"], "test macro-F1": test["macro_f1"],
                         "frozen layers": k, "train seconds": 0.0, "cache seconds": 0.0})
        return rows

    rows, step_rows, best_score, best_state, best_epoch, train_seconds = [], [], -1.0, None, 0, 0.0
    if config.watch_tasks:
        set_frozen(schedule[0])
        rows += watch_rows(0, schedule[0])
    for epoch, k in enumerate(schedule, start=1):
        set_frozen(k)
        cache_seconds = 0.0
        train_caches = {t: cache_for(t, "train", k) for t in config.tasks}
        model.train()
        freezing.set_frozen_eval(model)
        losses: dict[str, list[float]] = defaultdict(list)
        start = time.perf_counter()
        bar = tqdm(range(steps), desc=f"epoch {epoch}/{config.epochs}", disable=not progress, leave=False)
        for step in bar:
            task = next(sampler)
            if train_caches[task] is not None:
                idx = streams[task].next_indices()
                labels = torch.from_numpy(streams[task].labels[idx])
                logits = cached_forward(model, train_caches[task].batch(idx), k, task)[task]
            else:
                texts, labels = next(streams[task])
                inputs = model.encoder.tokenize(texts)
                logits = model(**inputs, tasks=task)[task]
            loss = nn.functional.cross_entropy(logits, labels.to(logits.device))
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"the loss of task '{task}' is {loss.item()} at epoch {epoch}, step {step}: "
                    f"lower the learning rate (lr={config.lr}) or check the inputs"
                )
            (weights[task] * loss).backward()
            if config.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses[task].append(loss.item())
            step_rows.append({"epoch": epoch, "step": (epoch - 1) * steps + step + 1, "task": task,
                              "loss": losses[task][-1]})
            bar.set_postfix({t: f"{np.mean(v[-20:]):.3f}" for t, v in losses.items()})
        seconds = time.perf_counter() - start
        train_seconds += seconds
        epoch_scores, epoch_rows = [], []
        for t in config.tasks:
            val = scores(t, "validation", k)
            epoch_scores.append(val["macro_f1"])
            epoch_rows.append({"epoch": epoch, "task": t, "steps": len(losses[t]),
                               "train loss": float(np.mean(losses[t])) if losses[t] else float("nan"),
                               "val accuracy": val["accuracy"], "val macro-F1": val["macro_f1"],
                               "train seconds": round(seconds, 3)})
        if progress:
            print(f"epoch {epoch}: " + ", ".join(f"{r['task']} loss {r['train loss']:.3f} val acc "
                                                 f"{r['val accuracy']:.3f}" for r in epoch_rows))
        extra = watch_rows(epoch, k)
        if config.frozen_layers or config.gradual_unfreezing or config.frozen_heads or config.watch_tasks:
            for r in epoch_rows:
                r.update({"frozen layers": k, "cache seconds": round(cache_seconds, 3)})
        rows += epoch_rows + extra
        if np.mean(epoch_scores) > best_score:
            best_score, best_epoch = float(np.mean(epoch_scores)), epoch
            best_state = {name: v.detach().clone() for name, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    test_rows, confusion = [], {}
    for t in config.tasks + config.watch_tasks:
        res = scores(t, "test", schedule[-1])
        confusion[t] = res["confusion"]
        test_rows.append({"task": t, "accuracy": res["accuracy"], "macro-F1": res["macro_f1"],
                          "majority baseline": data[t].majority_baseline("test")})
    return TrainResult(model, config, pd.DataFrame(rows), pd.DataFrame(test_rows), confusion, best_epoch,
                       round(train_seconds, 3), pd.DataFrame(step_rows))


def data_fingerprint(data: Mapping[str, Task], tasks: Sequence[str]) -> str:
    """SHA-1 over the texts and labels of every split of ``tasks``: a change of data changes the cache key."""
    digest = hashlib.sha1()
    for name in tasks:
        for split in ("train", "validation", "test"):
            df = data[name][split]
            digest.update(f"{name}/{split}/{len(df)}".encode())
            digest.update("\x1f".join(df["text"]).encode())
            digest.update(df["label"].to_numpy().astype(np.int64).tobytes())
    return digest.hexdigest()


def run_key(config: TrainConfig, data: Mapping[str, Task]) -> str:
    """Cache key of a run: its configuration and its data."""
    tasks = config.tasks + config.watch_tasks
    blob = json.dumps({"config": config.key_dict(), "data": data_fingerprint(data, tasks)}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def train_or_load(config: TrainConfig, data: Mapping[str, Task], force: bool = False, progress: bool = True,
                  cache: Path | None = None) -> TrainResult:
    """Load the cached result of this exact run, or train it and cache it (``force=True`` retrains).

    The cache lives in ``<cache_dir>/runs/<key>``; a run is written to a temporary folder and renamed when
    complete, so an interrupted run never leaves a half-written result that would later be loaded.
    """
    root = Path(cache or paths.cache_dir()) / "runs"
    folder = root / run_key(config, data)
    if folder.is_dir() and not force:
        return TrainResult.load(folder, config)
    model, cache_id = None, None
    if config.init_from:
        start = root / config.init_from / "model"
        if not start.is_dir():
            raise FileNotFoundError(f"init_from='{config.init_from}': no finished run {start.parent} in the cache; "
                                    "train that run first (train_or_load of its config)")
        model, cache_id = MultiTaskModel.load(start), f"run:{config.init_from}"
    result = train(config, data, model=model, progress=progress, cache_id=cache_id)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-"))
    try:
        result.save(tmp)
        (tmp / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return result
