"""Attention pooling as a probe: a learned query ``q`` weights token ``t`` by ``softmax_t(q · h_t / sqrt(d))`` over the
sentence's real word pieces; at ``q = 0`` that is **exactly mean pooling**, so a probe learning ``q`` from 0, paired
with one keeping ``q`` at 0, isolates what learning *where to look* adds (notebook 01; :func:`token_vectors`)."""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from mtl_utils.core.batching import eval_mode, length_sorted_batches
from mtl_utils.core.progress import progress
from mtl_utils.evaluation.metrics import scores
from mtl_utils.modeling.attention_pooling import AttentionPooling
from mtl_utils.modeling.encoder import SentenceEncoder, check_batch_size, check_sentences


@dataclass
class TokenVectors:
    """Frozen token vectors: ``values [n, longest, hidden]`` (float16, zero-padded), ``lengths [n]``, word-piece ids."""

    values: torch.Tensor = field(repr=False)
    lengths: torch.Tensor
    ids: list[list[int]] = field(repr=False)

    def __len__(self) -> int:
        return len(self.lengths)

    def select(self, rows: Sequence[int]) -> "TokenVectors":
        """The rows ``rows`` (in that order) as their own, narrower :class:`TokenVectors`."""
        idx = torch.as_tensor(list(rows), dtype=torch.long)
        if len(idx) == 0:
            raise ValueError("select needs at least one row")
        lengths = self.lengths[idx]
        return TokenVectors(self.values[idx, :int(lengths.max())], lengths, [self.ids[i] for i in idx.tolist()])

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows ``idx`` as float32 ``[b, longest in batch, hidden]`` and their mask ``[b, longest in batch]``."""
        lengths = self.lengths[idx]
        width = int(lengths.max())
        mask = torch.arange(width)[None, :] < lengths[:, None]
        return self.values[idx, :width].float(), mask


def token_vectors(encoder: SentenceEncoder, texts: Sequence[str], batch_size: int = 32,
                  show_progress: bool | None = None, desc: str = "token vectors") -> TokenVectors:
    """The encoder's last-layer token vectors of ``texts`` (one pass, length-sorted batches, eval mode)."""
    tokenized = encoder.token_ids(check_sentences(texts))
    lengths = torch.as_tensor(tokenized.lengths, dtype=torch.long)
    values = torch.zeros((len(tokenized), int(lengths.max()), encoder.hidden_size), dtype=torch.float16)
    batches = length_sorted_batches(tokenized.lengths, check_batch_size(batch_size))
    show = len(batches) >= 20 if show_progress is None else show_progress
    with eval_mode(encoder), torch.inference_mode():
        for idx in progress(batches, desc=desc, unit="batch", disable=not show):
            tokens = encoder.transformer(**encoder.collate([tokenized.ids[i] for i in idx])).last_hidden_state
            values[torch.from_numpy(idx), :tokens.shape[1]] = tokens.to(torch.float16).cpu()
    return TokenVectors(values, lengths, tokenized.ids)


class AttentionPoolingProbe(nn.Module):
    """Attention pooling (query from 0) and a linear classifier; ``learn_query=False``: the masked-mean control."""

    def __init__(self, hidden_size: int, num_labels: int, learn_query: bool = True) -> None:
        super().__init__()
        self.pooling = AttentionPooling(hidden_size, learn_query)
        self.classifier = nn.Linear(hidden_size, num_labels)

    @property
    def query(self) -> nn.Parameter:
        return self.pooling.query

    def weights(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attention weights ``[batch, tokens]`` (see :meth:`AttentionPooling.weights`)."""
        return self.pooling.weights(tokens, mask)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pooling(tokens, mask))


@dataclass
class AttentionProbeResult:
    """A fitted probe: test scores, kept epoch, validation accuracy per epoch, test examples right, the module."""

    accuracy: float
    macro_f1: float
    epoch: int
    validation: list[float]
    correct: np.ndarray = field(repr=False)
    model: AttentionPoolingProbe = field(repr=False)


def predict(model: AttentionPoolingProbe, data: TokenVectors, batch_size: int = 256) -> np.ndarray:
    """Predicted class ids of every row of ``data``."""
    out = []
    with eval_mode(model), torch.inference_mode():
        for start in range(0, len(data), batch_size):
            out.append(model(*data.batch(torch.arange(start, min(start + batch_size, len(data))))).argmax(-1))
    return torch.cat(out).numpy()


def fit_probe(train: TokenVectors, train_y: np.ndarray, val: TokenVectors, val_y: np.ndarray, test: TokenVectors,
              test_y: np.ndarray, learn_query: bool = True, seed: int = 0, epochs: int = 15, lr: float = 2e-3,
              weight_decay: float = 1e-4, batch_size: int = 64) -> AttentionProbeResult:
    """Train :class:`AttentionPoolingProbe` (AdamW, shuffled mini-batches; ``seed``: initial classifier, batch order),
    keep the best epoch on validation (the earliest on ties), score it on test; the control shares the seed (paired)."""
    for name, data, y in (("train", train, train_y), ("validation", val, val_y), ("test", test, test_y)):
        if len(data) != len(y):
            raise ValueError(f"{name}: {len(data)} token-vector rows but {len(y)} labels")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    num_labels = int(max(train_y.max(), val_y.max(), test_y.max())) + 1
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = AttentionPoolingProbe(train.values.shape[-1], num_labels, learn_query)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)
    labels = torch.tensor(np.asarray(train_y), dtype=torch.long)
    best, best_state, curve = -1.0, None, []
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(train), generator=generator).split(batch_size):
            loss = nn.functional.cross_entropy(model(*train.batch(idx)), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        curve.append(float(np.mean(predict(model, val) == val_y)))
        if curve[-1] > best:
            best, best_state = curve[-1], copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    pred = predict(model, test)
    s = scores(test_y, pred)
    return AttentionProbeResult(s["accuracy"], s["macro_f1"], int(np.argmax(curve)) + 1, curve, pred == test_y, model)


def top_pieces(model: AttentionPoolingProbe, data: TokenVectors, rows: Sequence[int], tokenizer,
               k: int = 5) -> pd.DataFrame:
    """For each row, the ``k`` word pieces the learned query weighs most, with weights (mean: ``1 / length``)."""
    idx = torch.as_tensor(list(rows))
    with torch.inference_mode():
        weights = model.weights(*data.batch(idx))
    out = []
    for i, row in enumerate(rows):
        n = int(data.lengths[row])
        pieces = tokenizer.convert_ids_to_tokens(data.ids[row][:n])
        order = torch.argsort(weights[i, :n], descending=True)[:k].tolist()
        out.append({"pieces": n, "mean weight": round(1 / n, 3),
                    "most weighted (weight)": ", ".join(f"{pieces[j]} ({weights[i, j]:.2f})" for j in order)})
    return pd.DataFrame(out, index=list(rows))
