"""Training a sentence encoder on pairs, as sentence transformers are, and the contrastive task in the multi-task model.
Finished pair runs are kept in the series' run store (:mod:`series.pair_runs`). Taught in notebook 02 (pairs,
SetFit) and notebook 04 (the contrastive task).

* :class:`PairConfig`, :class:`PairTrainer`: in-batch negatives or the cosine loss (SetFit), GradCache optional;
* :func:`setfit_pairs`: SetFit's pairs from a few labelled sentences;
* :class:`ContrastiveTaskTrainer`: the :class:`~mtl_utils.training.trainer.Trainer` with a head-free pair task added;
* :func:`step_memory`: what one contrastive step keeps for its backward pass, with and without GradCache."""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from mtl_utils.core.digests import texts_sha256
from mtl_utils.core.progress import progress
from mtl_utils.core.seeding import set_seed
from mtl_utils.data.tasks import Task
from mtl_utils.modeling.encoder import DEFAULT_MODEL, SentenceEncoder
from mtl_utils.training import contrastive, optim
from mtl_utils.training.config import TrainConfig
from mtl_utils.training.contrastive import saved_activation_bytes
from mtl_utils.training.trainer import Trainer

LOSSES = ("in-batch negatives", "cosine")
FORWARD_CHUNK = 16  # sentences per forward call (GradCache: its mini-batch): a batch of 32 in two halves


@dataclass(frozen=True)
class PairConfig:
    """One pair run. ``examples``: pairs seen (``None``: one pass); ``mini_batch``: GradCache chunk size."""

    model: str = DEFAULT_MODEL
    loss: str = "in-batch negatives"
    batch_size: int = 32
    mini_batch: int | None = None
    examples: int | None = None
    lr: float = 2e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float | None = 1.0
    max_length: int = 64
    scale: float = contrastive.SCALE
    seed: int = 0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"PairConfig.loss must be one of {LOSSES}, got {self.loss!r}")
        for name in ("batch_size", "max_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ValueError(f"PairConfig.{name} must be an integer of at least 2, got {value!r}")
        if self.mini_batch is not None and not (1 <= self.mini_batch <= self.batch_size):
            raise ValueError(f"PairConfig.mini_batch must be None or between 1 and batch_size="
                             f"{self.batch_size}, got {self.mini_batch!r}")
        if self.mini_batch is not None and self.loss != "in-batch negatives":
            raise ValueError("PairConfig.mini_batch (GradCache) applies to the in-batch negatives loss only")
        if self.examples is not None and self.examples < 1:
            raise ValueError(f"PairConfig.examples must be None or positive, got {self.examples!r}")
        if not self.lr > 0:
            raise ValueError(f"PairConfig.lr must be positive, got {self.lr!r}")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ValueError(f"PairConfig.max_grad_norm must be None (no clipping) or positive, got "
                             f"{self.max_grad_norm!r}")

    def replace(self, **changes) -> "PairConfig":
        return dataclasses.replace(self, **changes)


@dataclass
class PairData:
    """Pairs ``a[i]``, ``b[i]`` (and, for the cosine loss, ``labels[i]``: 1 similar, 0 not)."""

    a: list[str]
    b: list[str]
    labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.a, self.b = list(self.a), list(self.b)
        if len(self.a) != len(self.b) or not self.a:
            raise ValueError(f"pairs need as many first as second texts, at least one (got {len(self.a)} and "
                             f"{len(self.b)})")
        if self.labels is not None:
            self.labels = np.asarray(self.labels, dtype=np.float32)
            if self.labels.shape != (len(self.a),):
                raise ValueError(f"one label per pair: {len(self.a)} pairs, labels of shape {self.labels.shape}")

    def __len__(self) -> int:
        return len(self.a)

    def digest(self) -> str:
        labels = "" if self.labels is None else self.labels.tobytes().hex()
        return texts_sha256([*self.a, "\x00", *self.b], prefix=labels)


@dataclass
class PairResult:
    """A finished pair run: the trained encoder (a cross-encoder's too), each step's loss, training seconds,
    whether it was cached."""

    encoder: torch.nn.Module  # a SentenceEncoder, or a cross_encoder.CrossEncoder
    config: PairConfig  # or a cross_encoder.CrossConfig
    losses: list[float] = field(repr=False)
    train_seconds: float
    cached: bool = False


def pair_batches(n: int, batch_size: int, steps: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``steps`` batches of row numbers: passes over ``n`` rows in a new random order each, every batch full (a
    pass's last rows start the next batch, which may then hold a row twice: its own positive as a negative)."""
    order = np.concatenate([rng.permutation(n) for _ in range(math.ceil(steps * batch_size / n) + 1)])
    return [order[i * batch_size:(i + 1) * batch_size] for i in range(steps)]


class PairTrainer:
    """Trains an encoder on pairs: ``PairTrainer(config, pairs).fit()`` returns a :class:`PairResult`."""

    def __init__(self, config: PairConfig, pairs: PairData, encoder: SentenceEncoder | None = None,
                 progress_bar: bool = True) -> None:
        if config.loss == "cosine" and pairs.labels is None:
            raise ValueError("the cosine loss needs a label (1 or 0) per pair")
        if config.loss == "in-batch negatives" and len(pairs) < config.batch_size:
            raise ValueError(f"{len(pairs)} pairs cannot fill one batch of {config.batch_size}")
        self.config, self.pairs, self.progress_bar = config, pairs, progress_bar
        self.prepare_model(encoder)
        self.prepare_data()
        self.prepare_optimizer()

    def prepare_model(self, encoder: SentenceEncoder | None) -> None:
        set_seed(self.config.seed)
        self.encoder = encoder or SentenceEncoder(self.config.model, max_length=self.config.max_length)

    def prepare_data(self) -> None:
        c = self.config
        self.a = self.encoder.token_ids(self.pairs.a).ids
        self.b = self.encoder.token_ids(self.pairs.b).ids
        self.steps = math.ceil((c.examples or len(self.pairs)) / c.batch_size)
        self.batches = pair_batches(len(self.pairs), c.batch_size, self.steps, np.random.default_rng(c.seed))

    def prepare_optimizer(self) -> None:
        c = self.config
        decay = [p for n, p in self.encoder.named_parameters() if not optim.no_weight_decay(n)]
        rest = [p for n, p in self.encoder.named_parameters() if optim.no_weight_decay(n)]
        groups = [{"params": decay, "weight_decay": c.weight_decay}, {"params": rest, "weight_decay": 0.0}]
        self.optimizer = optim.make_optimizer(groups, c.lr)
        self.scheduler = optim.linear_warmup_decay(self.optimizer, int(c.warmup_ratio * self.steps), self.steps)

    def by_length(self, idx: np.ndarray) -> np.ndarray:
        """The batch's pairs by length (both sides' tokens) so each chunk pads little; the losses ignore their
        order. Length-grouped batches would pick in-batch negatives by length; this keeps the batch's pairs."""
        return idx[np.argsort([len(self.a[i]) + len(self.b[i]) for i in idx], kind="stable")]

    def chunks(self, ids: list, idx: np.ndarray) -> list[dict[str, torch.Tensor]]:
        size = self.config.mini_batch or FORWARD_CHUNK
        return [self.encoder.collate([ids[i] for i in idx[j:j + size]]) for j in range(0, len(idx), size)]

    def embed(self, ids: list, idx: np.ndarray) -> torch.Tensor:  # vectors of ids[idx], chunk by chunk
        return torch.cat([self.encoder(**chunk) for chunk in self.chunks(ids, idx)])

    def train_step(self, idx: np.ndarray) -> float:
        """One optimizer step on the pairs ``idx``; returns the loss."""
        c, enc = self.config, self.encoder
        if c.mini_batch is not None:                       # GradCache: one mini-batch's graph at a time
            loss = contrastive.grad_cache_backward(enc, self.chunks(self.a, idx), self.chunks(self.b, idx), c.scale)
        else:
            a, b = self.embed(self.a, idx), self.embed(self.b, idx)
            if c.loss == "cosine":
                labels = torch.from_numpy(self.pairs.labels[idx]).to(a.device)
                value = contrastive.cosine_similarity_loss(a, b, labels)
            else:
                value = contrastive.in_batch_negatives_loss(a, b, c.scale)
            value.backward()
            loss = float(value.detach())
        optim.optimizer_step(self.optimizer, self.scheduler, enc.parameters(), c.max_grad_norm)
        return loss

    def fit(self) -> PairResult:
        self.encoder.train()
        start, losses = time.perf_counter(), []
        for idx in progress(self.batches, desc="pair steps", unit="step", disable=not self.progress_bar, leave=False):
            losses.append(self.train_step(self.by_length(idx)))
        self.encoder.eval()
        return PairResult(self.encoder, self.config, losses, round(time.perf_counter() - start, 3))


def setfit_pairs(texts: Sequence[str], labels: Sequence[int], iterations: int, seed: int = 0) -> PairData:
    """SetFit's pairs: for each of ``iterations`` passes and each sentence, one pair with a sentence of its class (label
    1) and one of another class (0). Every class needs at least two sentences."""
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2 or counts.min() < 2:
        raise ValueError(f"SetFit pairs need two classes with at least two sentences each; counts per class: "
                         f"{dict(zip(classes.tolist(), counts.tolist()))}")
    rng = np.random.default_rng(seed)
    a, b, similar = [], [], []
    for _ in range(iterations):
        for i, label in enumerate(labels):
            same = np.flatnonzero((labels == label) & (np.arange(len(labels)) != i))
            other = np.flatnonzero(labels != label)
            for j, y in ((rng.choice(same), 1.0), (rng.choice(other), 0.0)):
                a.append(texts[i]), b.append(texts[j]), similar.append(y)
    return PairData(a, b, np.array(similar, dtype=np.float32))


def _interleaved(total: int, n: int) -> frozenset[int]:
    """``n`` step numbers spread evenly over ``total`` steps."""
    return frozenset(int((i + 0.5) * total / n) for i in range(n))


class ContrastiveTaskTrainer(Trainer):
    """:class:`~mtl_utils.training.trainer.Trainer` plus the contrastive task: ``pair_examples`` pairs, the in-batch
    loss on the shared encoder's vectors (no head), its steps spread among the unchanged classification steps."""

    def __init__(self, config: TrainConfig, data: Mapping[str, Task], pairs: PairData, pair_batch_size: int,
                 pair_examples: int, progress_bar: bool = True) -> None:
        self.pairs, self.pair_batch_size, self.pair_examples = pairs, pair_batch_size, pair_examples
        super().__init__(config, data, progress_bar=progress_bar)

    def prepare_data(self) -> None:
        super().prepare_data()
        tokenize = self.model.encoder.token_ids
        self.pair_ids = tokenize(self.pairs.a).ids, tokenize(self.pairs.b).ids
        n_pair = math.ceil(self.pair_examples / self.pair_batch_size)
        self.pair_batches = pair_batches(len(self.pairs), self.pair_batch_size, n_pair,
                                         np.random.default_rng(self.config.seed + 1))
        self.total_steps += n_pair
        self.pair_steps = _interleaved(self.total_steps, n_pair)

    def train_step(self) -> dict[str, float]:
        if self.step not in self.pair_steps:
            return super().train_step()
        enc, (a, b) = self.model.encoder, self.pair_ids
        idx = self.pair_batches.pop()
        loss = contrastive.in_batch_negatives_loss(enc(**enc.collate([a[i] for i in idx])),
                                                   enc(**enc.collate([b[i] for i in idx])))
        loss.backward()
        optim.optimizer_step(self.optimizer, self.scheduler, self.trainable, self.config.max_grad_norm)
        return {"retrieval": float(loss.detach())}


def step_memory(encoder: SentenceEncoder, pairs: PairData, batch: int, mini_batch: int | None = None) -> float:
    """MB of activations one contrastive step keeps for backward (training mode, the first ``batch`` pairs): the whole
    batch's graph, or with GradCache (``mini_batch``) one mini-batch's at a time."""
    size = mini_batch or batch
    queries, passages = encoder.tokenize(pairs.a[:size]), encoder.tokenize(pairs.b[:size])
    was_training = encoder.training
    encoder.train()
    try:
        with torch.enable_grad():
            kept = saved_activation_bytes(lambda: (encoder(**queries), encoder(**passages)))
    finally:
        encoder.train(was_training)
    return kept / 2**20
