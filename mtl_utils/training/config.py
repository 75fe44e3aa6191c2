"""What defines a training run: :class:`TrainConfig`, validated when made (a bad field's ``ValueError`` names it and
what it accepts; every field is in the run's cache key), and notebook 05's loss weights."""
from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from mtl_utils.core import runtime
from mtl_utils.data.tasks import Task
from mtl_utils.modeling.encoder import DEFAULT_MODEL, ENCODER_POOLINGS

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


def _python(value):
    """``value`` with NumPy scalars (also inside a dict, list or tuple) turned into Python numbers."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {k: _python(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_python(v) for v in value)
    return value


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
    """Everything that defines a training run, validated when made. Budget: ``examples`` training examples in all
    (``None``: the trained tasks' training sets), in ``ceil(examples / batch_size)`` steps (``sampling="summed"``:
    ``batch_size × tasks`` per step), in ``rounds`` validated parts; the best mean validation macro-F1 is kept
    (``keep_best_round=False``: the last). Rates: encoder ``lr``, heads ``head_lr`` (a number, ``{task: rate}``,
    ``None``: ``lr``), times ``layer_decay`` (ξ) per layer down. Freezing: ``frozen_layers=k`` (embeddings and bottom
    ``k`` layers), ``frozen_heads``; ``frozen_cache`` computes the frozen bottom once per text. ``gradual_unfreezing``
    (ULMFiT): heads alone in round 1, then one more layer per round down to ``frozen_layers``. ``init_from``: the run to
    continue; ``watch_tasks``: its tasks evaluated every round, not trained."""

    tasks: tuple[str, ...] = ("topic", "sentiment")
    model: str = DEFAULT_MODEL
    pooling: str = "mean"
    max_length: int = 64
    batch_size: int = 16
    examples: int | None = None
    rounds: int = 1
    keep_best_round: bool = True
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
        for f in dataclasses.fields(self):  # NumPy scalars become Python numbers: a config always serialises
            setattr(self, f.name, _python(getattr(self, f.name)))
        self.tasks = _names("tasks", self.tasks)
        if not self.tasks:
            raise _bad("tasks", self.tasks, "at least one task name")
        self.frozen_heads, self.watch_tasks = _names("frozen_heads", self.frozen_heads), _names("watch_tasks",
                                                                                                 self.watch_tasks)
        if not isinstance(self.model, str) or not self.model:
            raise _bad("model", self.model, "a model id or folder (a non-empty string)")
        if self.pooling not in ENCODER_POOLINGS:
            raise _bad("pooling", self.pooling, f"one of {ENCODER_POOLINGS}")
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
        for name in ("length_bucketing", "frozen_cache", "gradual_unfreezing", "keep_best_round"):
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
    """Loss weights ``1 / ln(classes)``: each task's cross-entropy over its value at chance, so every weighted loss
    starts near 1 (an untrained 5-class head at ln 5 ≈ 1.61). Taught in notebook 05."""
    return {t: 1.0 / math.log(data[t].num_labels) for t in tasks}
