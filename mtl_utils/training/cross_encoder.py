"""Cross-encoders: the query and the passage read together, one relevance score out.

A bi-encoder embeds each text alone: a corpus is embedded once, a query costs one pass. A cross-encoder reads
``[CLS] query [SEP] passage [SEP]`` in one transformer, each word of one attending to each of the other; it
scores pairs, so n sentences all against all take n(n-1)/2 passes. SBERT's motivation (Reimers & Gurevych, 2019,
https://arxiv.org/abs/1908.10084): about 65 hours for the most similar pair of 10,000 sentences with BERT as a
cross-encoder, 5 seconds with SBERT. Hence retrieve with BM25 or a bi-encoder, then re-rank its top k with a
cross-encoder (Nogueira & Cho, 2019, https://arxiv.org/abs/1901.04085). :class:`CrossEncoder` is the series'
encoder (mean pooling) and a linear head (sentence-transformers' ``CrossEncoder(num_labels=1)`` reads [CLS]);
:class:`CrossEncoderTrainer` trains it with binary cross-entropy (``BinaryCrossEntropyLoss``) on
:func:`labelled_pairs`; :func:`rerank` puts a first stage's top k first, in the cross-encoder's order.

    >>> model = CrossEncoderTrainer(CrossConfig(), labelled_pairs(queries, passages, negatives)).fit().encoder
    >>> model.score(["Rates rise again"], ["The Bank of England raised interest rates."])

Taught in notebook 02 (how a sentence transformer is trained)."""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mtl_utils.core.batching import eval_mode, length_sorted_batches
from mtl_utils.core.progress import progress
from mtl_utils.core.seeding import set_seed
from mtl_utils.modeling.encoder import DEFAULT_MODEL, SentenceEncoder, check_sentences
from mtl_utils.training import optim
from mtl_utils.training.sentence_training import PairData, PairResult


@dataclass(frozen=True)
class CrossConfig:
    """One cross-encoder run: ``epochs`` passes over the labelled pairs; the head (new) at ``head_lr``."""

    model: str = DEFAULT_MODEL
    epochs: int = 2
    batch_size: int = 32
    lr: float = 5e-5
    head_lr: float = 1e-3
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float | None = 1.0
    max_length: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "max_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"CrossConfig.{name} must be a positive integer, got {value!r}")
        for name in ("lr", "head_lr", "max_grad_norm"):                 # max_grad_norm None: no clipping
            value = getattr(self, name)
            if not (value is None and name == "max_grad_norm") and not (isinstance(value, float | int) and value > 0):
                raise ValueError(f"CrossConfig.{name} must be positive, got {value!r}")
        if not (0 <= self.warmup_ratio < 1 and self.weight_decay >= 0):
            raise ValueError(f"CrossConfig: warmup_ratio must be in [0, 1) and weight_decay at least 0, got "
                             f"{self.warmup_ratio!r} and {self.weight_decay!r}")

    def replace(self, **changes) -> "CrossConfig":
        return dataclasses.replace(self, **changes)


class CrossEncoder(nn.Module):
    """:class:`~mtl_utils.modeling.encoder.SentenceEncoder` over the joint text, then ``Linear(hidden, 1)``."""

    def __init__(self, model: str | None = None, max_length: int = 128) -> None:
        super().__init__()
        self.encoder = SentenceEncoder(model, max_length=max_length)
        self.head = nn.Linear(self.encoder.hidden_size, 1).to(self.encoder.device)
        self.eval()

    def tokenize(self, queries: Sequence[str], passages: Sequence[str]) -> dict[str, torch.Tensor]:
        """Each query and its passage as one input (segments 0 and 1), the longer cut first to ``max_length``."""
        batch = self.encoder.tokenizer(list(queries), list(passages), truncation=True, padding=True,
                                       max_length=self.encoder.max_length, return_tensors="pt")
        return {k: v.to(self.encoder.device) for k, v in batch.items()}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        """One relevance logit per pair ``[batch]``."""
        return self.head(self.encoder(input_ids, attention_mask, **extra)).squeeze(-1)

    def score(self, queries, passages, batch_size: int = 64) -> np.ndarray:
        """The logit of each (``queries[i]``, ``passages[i]``); higher is more relevant."""
        queries, passages = check_sentences(queries), check_sentences(passages)
        if len(queries) != len(passages):
            raise ValueError(f"score needs one passage per query: {len(queries)} queries, {len(passages)} passages")
        lengths = [len(q) + len(p) for q, p in zip(queries, passages)]    # characters: a cheap proxy
        out = np.empty(len(queries), dtype=np.float32)
        with eval_mode(self), torch.inference_mode():
            for idx in length_sorted_batches(lengths, batch_size):       # little padding per batch
                batch = self.tokenize([queries[i] for i in idx], [passages[i] for i in idx])
                out[idx] = self(**batch).float().cpu().numpy()
        return out


def labelled_pairs(queries: Sequence[str], passages: Sequence[str], negatives: Sequence[int],
                   seed: int = 0) -> PairData:
    """Per query ``i``: (query, passage ``i``) labelled 1; (query, passage ``negatives[i]``) labelled 0 unless -1
    (none mined); (query, a random other passage) labelled 0. Random negatives teach what is on topic, mined ones
    what is only close (mined alone, 1,489 headlines left a cross-encoder near chance for a pass: one seed)."""
    negatives, n = np.asarray(negatives), len(queries)
    if len(passages) != n or n < 3 or negatives.shape != (n,) or not np.issubdtype(negatives.dtype, np.integer):
        raise ValueError(f"one passage and one negative (an integer) per query, at least three queries: {n} "
                         f"queries, {len(passages)} passages, negatives {negatives.dtype} of shape {negatives.shape}")
    bad = np.flatnonzero((negatives < -1) | (negatives >= n) | (negatives == np.arange(n)))
    if len(bad):
        raise ValueError(f"negatives[{bad[0]}]={negatives[bad[0]]}: a mined negative is another passage's index, "
                         "or -1 for none")
    rng, a, b, labels = np.random.default_rng(seed), [], [], []
    for i, j in enumerate(negatives):
        drawn = int(rng.choice(np.setdiff1d(np.arange(n), [i, j])))
        for passage, label in ((i, 1.0), (j, 0.0), (drawn, 0.0)):
            if passage >= 0:
                a.append(queries[i]), b.append(passages[passage]), labels.append(label)
    return PairData(a, b, np.array(labels, dtype=np.float32))


class CrossEncoderTrainer:
    """``CrossEncoderTrainer(config, pairs).fit()``: binary cross-entropy of each pair's logit against its label;
    the :class:`~mtl_utils.training.sentence_training.PairResult` holds the cross-encoder as its ``encoder``."""

    def __init__(self, config: CrossConfig, pairs: PairData, progress_bar: bool = True) -> None:
        if pairs.labels is None or not np.isin(pairs.labels, (0.0, 1.0)).all():
            raise ValueError("a cross-encoder learns from labelled pairs: 1 relevant, 0 not (see labelled_pairs)")
        self.config, self.pairs, self.progress_bar = config, pairs, progress_bar
        set_seed(config.seed)
        self.model = CrossEncoder(config.model, config.max_length)
        lengths = [len(ids) for ids in self.model.encoder.tokenizer(pairs.a, pairs.b, truncation=True,
                                                                        max_length=config.max_length)["input_ids"]]
        rng = np.random.default_rng(config.seed)
        self.batches = [idx for _ in range(config.epochs)                 # a new order every pass
                        for idx in length_grouped_batches(lengths, config.batch_size, rng)]
        groups = optim.param_groups(self.model, config.lr, config.weight_decay, config.head_lr, head_prefix="head.")
        self.optimizer, steps = optim.make_optimizer(groups, config.lr), len(self.batches)
        self.scheduler = optim.linear_warmup_decay(self.optimizer, int(config.warmup_ratio * steps), steps)

    def train_step(self, idx: np.ndarray) -> float:
        """One optimizer step on the pairs ``idx``; returns the loss."""
        pairs, model = self.pairs, self.model
        logits = model(**model.tokenize([pairs.a[i] for i in idx], [pairs.b[i] for i in idx]))
        loss = F.binary_cross_entropy_with_logits(logits, torch.from_numpy(pairs.labels[idx]).to(logits.device))
        loss.backward()
        optim.optimizer_step(self.optimizer, self.scheduler, model.parameters(), self.config.max_grad_norm)
        return float(loss.detach())

    def fit(self) -> PairResult:
        self.model.train()
        start = time.perf_counter()
        losses = [self.train_step(idx) for idx in progress(self.batches, desc="cross-encoder steps", unit="step",
                                                           disable=not self.progress_bar, leave=False)]
        self.model.eval()
        return PairResult(self.model, self.config, losses, round(time.perf_counter() - start, 3))


def length_grouped_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator,
                           group: int = 8) -> list[np.ndarray]:
    """One pass in random batches of similar lengths, little of them padding: shuffle, sort each run of ``group``
    batches by length, cut it into batches, shuffle those (Hugging Face's ``group_by_length``)."""
    order, size, lengths = rng.permutation(len(lengths)), batch_size * group, np.asarray(lengths)
    runs = [order[i:i + size] for i in range(0, len(order), size)]
    batches = [run[np.argsort(-lengths[run], kind="stable")][j:j + batch_size]
               for run in runs for j in range(0, len(run), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def top_k(first: np.ndarray, k: int = 10, ids: Sequence[str] | None = None) -> np.ndarray:
    """``[queries, k]``: each query's ``k`` highest-scoring passages under a first stage (queries × passages),
    ties broken by ascending passage id ``ids`` (as the retrieval metrics rank), else by position."""
    first = np.asarray(first)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= first.shape[-1] or first.ndim != 2:
        raise ValueError(f"top_k needs scores (queries × passages) and 1 <= k <= passages: {first.shape}, k={k!r}")
    order = np.arange(first.shape[1]) if ids is None else np.argsort(np.asarray(ids), kind="stable")
    return order[np.argsort(-first[:, order], axis=1, kind="stable")[:, :k]]


def rerank(first: np.ndarray, top: np.ndarray, cross: np.ndarray) -> np.ndarray:
    """Scores (queries × passages) that put each query's ``top`` passages first, in the order of their
    cross-encoder scores ``cross`` (same shape as ``top``), and keep the first stage's order below them."""
    first, top, cross = np.asarray(first, dtype=np.float64), np.asarray(top), np.asarray(cross, dtype=np.float64)
    if top.shape != cross.shape or top.ndim != 2 or first.ndim != 2 or len(top) != len(first):
        raise ValueError(f"one cross-encoder score per candidate: top {top.shape}, cross {cross.shape}, "
                         f"{len(first)} queries")
    out = first.copy()
    out[np.arange(len(top))[:, None], top] = first.max() + 1 + cross - cross.min()
    return out
