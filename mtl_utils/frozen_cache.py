"""Frozen layers computed once.

When the embeddings and the bottom ``k`` encoder layers are frozen and run in eval mode, they are a fixed
function of the text: their output for each training sentence can be computed once and kept. Training then
runs only the layers above ``k``, the pooling and the heads, on the cached token vectors
(:func:`cached_forward`). When the whole encoder is frozen, the cache holds the pooled sentence vectors and
only the heads run.

Caches of the *pretrained* weights do not depend on the training seed, so :func:`shared_cache` keeps the
most recent ones in memory for the next run with the same model, texts and ``k``.
"""
from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm  # plain text bars: they render in JupyterLab, papermill output and on the web
from transformers.masking_utils import create_bidirectional_mask

from .encoder import check_sentences
from .freezing import check_k, embeddings_module, encoder_frozen, encoder_layers, num_layers
from .model import MultiTaskModel

LEVELS: tuple[str, ...] = ("tokens", "vectors")


def extended_mask(transformer: nn.Module, hidden: torch.Tensor, attention_mask: torch.Tensor):
    """The attention mask in the form the installed transformers' layers expect (built by the library's own
    ``create_bidirectional_mask`` for the configured attention implementation, as ``BertModel.forward`` does;
    it may be ``None`` when nothing is padded)."""
    return create_bidirectional_mask(config=transformer.config, inputs_embeds=hidden, attention_mask=attention_mask)


def run_layers(transformer: nn.Module, hidden: torch.Tensor, attention_mask: torch.Tensor, start: int,
               stop: int | None = None) -> torch.Tensor:
    """Run encoder layers ``start..stop-1`` (0-based) on token vectors ``[batch, tokens, hidden]``."""
    layers = encoder_layers(transformer)
    mask = extended_mask(transformer, hidden, attention_mask)
    for layer in layers[start:stop]:
        out = layer(hidden, mask)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


def bottom_states(model: MultiTaskModel, inputs: dict[str, torch.Tensor], k: int) -> torch.Tensor:
    """Token vectors after the embeddings and the bottom ``k`` encoder layers (as the model's mode sets)."""
    transformer = model.encoder.transformer
    hidden = embeddings_module(transformer)(input_ids=inputs["input_ids"], token_type_ids=inputs.get("token_type_ids"))
    return run_layers(transformer, hidden, inputs["attention_mask"], 0, k)


def level_for(model: MultiTaskModel, k: int) -> str:
    """``"vectors"`` when every encoder parameter is frozen and ``k`` is all layers (only the heads train),
    else ``"tokens"``."""
    return "vectors" if k == num_layers(model) and encoder_frozen(model) else "tokens"


@dataclass
class FrozenCache:
    """The output of the frozen bottom of the model for a list of texts, in input order.

    ``level="tokens"``: ``states[i]`` is ``[length_i, hidden]``, sentence ``i``'s token vectors after layer ``k``
    (padding not stored); ``level="vectors"``: ``vectors`` is ``[n, dim]``, the pooled sentence vectors.
    """

    k: int
    level: str
    states: list[torch.Tensor] | None = None
    vectors: torch.Tensor | None = None
    seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.states) if self.level == "tokens" else int(self.vectors.shape[0])

    @property
    def nbytes(self) -> int:
        if self.level == "vectors":
            return self.vectors.numel() * self.vectors.element_size()
        return sum(s.numel() * s.element_size() for s in self.states)

    def batch(self, idx: Sequence[int] | np.ndarray) -> dict[str, torch.Tensor]:
        """A mini-batch for :func:`cached_forward`: padded token vectors and their mask, or sentence vectors."""
        idx = [int(i) for i in idx]
        if self.level == "vectors":
            return {"vectors": self.vectors[idx]}
        rows = [self.states[i] for i in idx]
        lengths = torch.tensor([r.shape[0] for r in rows])
        hidden = nn.utils.rnn.pad_sequence(rows, batch_first=True)
        mask = (torch.arange(hidden.shape[1])[None, :] < lengths[:, None]).long()
        return {"hidden": hidden, "attention_mask": mask}


def build_cache(model: MultiTaskModel, texts: Sequence[str], k: int, level: str | None = None,
                batch_size: int = 64, progress: bool = False) -> FrozenCache:
    """Compute the frozen bottom's output for ``texts`` once: eval mode (no dropout), no gradients,
    length-sorted batches. ``level`` defaults to :func:`level_for` (the model's current freezing)."""
    check_k(model, k)
    level = level or level_for(model, k)
    if level not in LEVELS:
        raise ValueError(f"unknown cache level '{level}'; choose one of {LEVELS}")
    if level == "vectors" and k != num_layers(model):
        raise ValueError(f"a cache of sentence vectors needs the whole backbone frozen (k={num_layers(model)}), got k={k}")
    texts = check_sentences(texts)
    encoder = model.encoder
    start = time.perf_counter()
    encoded = encoder.tokenizer(texts, truncation=True, max_length=encoder.max_length)
    features = [f for f in ("input_ids", "attention_mask", "token_type_ids") if f in encoded]
    lengths = np.array([len(ids) for ids in encoded["input_ids"]])
    order = np.argsort(-lengths, kind="stable")
    states: list[torch.Tensor | None] = [None] * len(texts)
    vectors = torch.empty((len(texts), encoder.dim))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():  # not inference_mode: cached tensors feed training steps that need autograd
            for i in tqdm(range(0, len(order), batch_size), desc=f"cache k={k}", disable=not progress, leave=False):
                idx = order[i:i + batch_size]
                batch = encoder.tokenizer.pad({f: [encoded[f][j] for j in idx] for f in features}, return_tensors="pt")
                batch = {f: v.to(encoder.device) for f, v in batch.items()}
                if level == "vectors":
                    vectors[torch.from_numpy(idx)] = encoder(**batch).float().cpu()
                else:
                    _store_states(states, idx, bottom_states(model, batch, k), lengths)
    finally:
        model.train(was_training)
    return _finished(k, level, vectors, states, start)


def _store_states(states: list, idx, hidden: torch.Tensor, lengths, by_row: bool = False) -> None:
    """Keep each text's real (unpadded) token states of a batch; ``lengths`` by text id, or by row."""
    hidden = hidden.float().cpu()
    for row, j in enumerate(idx):
        states[j] = hidden[row, : (lengths[row] if by_row else lengths[j])].clone()


def _finished(k: int, level: str, vectors, states, start: float) -> "FrozenCache":
    seconds = time.perf_counter() - start
    if level == "vectors":
        return FrozenCache(k, level, vectors=vectors, seconds=seconds)
    return FrozenCache(k, level, states=states, seconds=seconds)  # type: ignore[arg-type]


def cached_vectors(model: MultiTaskModel, batch: dict[str, torch.Tensor], k: int) -> torch.Tensor:
    """Sentence vectors from a cache batch: layers ``k..`` + pooling (+ projection, norm), differentiable."""
    if "vectors" in batch:
        return batch["vectors"].to(model.encoder.device)
    device = model.encoder.device
    hidden, mask = batch["hidden"].to(device), batch["attention_mask"].to(device)
    hidden = run_layers(model.encoder.transformer, hidden, mask, k)
    return model.encoder.pool_tokens(hidden, mask)


def cached_forward(model: MultiTaskModel, batch: dict[str, torch.Tensor], k: int,
                   tasks: str | Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """``{task: logits}`` from a cache batch: what ``model(...)`` computes when the bottom ``k`` layers are
    frozen and in eval mode, without running them."""
    names = model.check_tasks(tasks)
    vectors = cached_vectors(model, batch, k)
    return {name: model.heads[name](vectors) for name in names}


def cached_logits(model: MultiTaskModel, cache: FrozenCache, tasks: str | Sequence[str] | None = None,
                  batch_size: int = 64) -> dict[str, np.ndarray]:
    """Inference logits per task for every cached text (eval mode), in input order."""
    names = model.check_tasks(tasks)
    n = len(cache)
    if cache.level == "tokens":
        order = np.argsort([-s.shape[0] for s in cache.states], kind="stable")
    else:
        order = np.arange(n)
    out = {name: np.empty((n, len(model.task_labels[name])), dtype=np.float32) for name in names}
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for i in range(0, n, batch_size):
                idx = order[i:i + batch_size]
                logits = cached_forward(model, cache.batch(idx), cache.k, names)
                for name in names:
                    out[name][idx] = logits[name].float().cpu().numpy()
    finally:
        model.train(was_training)
    return out


def extend_cache(model: MultiTaskModel, source: FrozenCache, k: int, level: str = "tokens",
                 batch_size: int = 64) -> FrozenCache:
    """A cache at layer ``k`` (or of sentence vectors) from a token cache at a lower layer ``source.k``: only
    layers ``source.k..k-1`` run (eval mode, no gradients), then pooling for ``level="vectors"``."""
    check_k(model, k)
    if source.level != "tokens" or source.k > k:
        raise ValueError(f"can only extend a token cache upwards: have {source.level} at k={source.k}, asked k={k}")
    if level == "vectors" and k != num_layers(model):
        raise ValueError(f"a cache of sentence vectors needs the whole backbone frozen (k={num_layers(model)}), got k={k}")
    start = time.perf_counter()
    order = np.argsort([-s.shape[0] for s in source.states], kind="stable")
    states: list[torch.Tensor | None] = [None] * len(source)
    vectors = torch.empty((len(source), model.encoder.dim))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(order), batch_size):
                idx = order[i:i + batch_size]
                batch = source.batch(idx)
                device = model.encoder.device
                hidden, mask = batch["hidden"].to(device), batch["attention_mask"].to(device)
                hidden = run_layers(model.encoder.transformer, hidden, mask, source.k, k)
                if level == "vectors":
                    vectors[torch.from_numpy(idx)] = model.encoder.pool_tokens(hidden, mask).float().cpu()
                else:
                    _store_states(states, idx, hidden, [source.states[j].shape[0] for j in idx], by_row=True)
    finally:
        model.train(was_training)
    return _finished(k, level, vectors, states, start)


_SHARED: OrderedDict[tuple[str, int, str], FrozenCache] = OrderedDict()
SHARED_BYTES = 1_500_000_000


def texts_key(model_id: str, max_length: int, pooling: str, texts: Sequence[str], normalize: bool = False) -> str:
    """Identity of a list of texts under fixed (pretrained, or named by ``model_id``) frozen weights."""
    digest = hashlib.sha1(f"{model_id}|{max_length}|{pooling}|{normalize}|{len(texts)}".encode())
    digest.update("\x1f".join(texts).encode())
    return digest.hexdigest()


def shared_cache(model: MultiTaskModel, texts: Sequence[str], k: int, model_id: str | None,
                 level: str | None = None, batch_size: int = 64) -> FrozenCache:
    """:func:`build_cache`, reusing what was computed before when ``model_id`` names the frozen weights
    (e.g. the pretrained model): the same cache is returned from memory (``seconds=0``), or one at a lower
    layer is extended by the missing layers only (:func:`extend_cache`), so a sweep over k = 1, 2, ... runs
    each layer once per text. ``model_id=None`` always builds. The most recently used caches are kept up to
    :data:`SHARED_BYTES`."""
    level = level or level_for(model, k)
    if model_id is None:
        return build_cache(model, texts, k, level, batch_size)
    encoder = model.encoder
    if encoder.projection is not None and level == "vectors":
        model_id = None if any(p.requires_grad for p in encoder.projection.parameters()) else model_id
    if model_id is None:
        return build_cache(model, texts, k, level, batch_size)
    base = texts_key(model_id, encoder.max_length, encoder.pooling, list(texts), encoder.normalize)
    key = (base, k, level)
    if key in _SHARED:
        _SHARED.move_to_end(key)
        found = _SHARED[key]
        return FrozenCache(found.k, found.level, found.states, found.vectors, seconds=0.0)
    lower = [j for (b, j, lv) in _SHARED if b == base and lv == "tokens" and 0 < j <= k]
    if lower:
        source = _SHARED[(base, max(lower), "tokens")]
        cache = extend_cache(model, source, k, level, batch_size)
    else:
        cache = build_cache(model, texts, k, level, batch_size)
    _SHARED[key] = cache
    while len(_SHARED) > 1 and sum(c.nbytes for c in _SHARED.values()) > SHARED_BYTES:
        _SHARED.popitem(last=False)
    return cache


def clear_shared() -> None:
    """Forget every shared cache (frees the memory)."""
    _SHARED.clear()


def check_equivalence(model: MultiTaskModel, sentences: Sequence[str], k: int, seed: int = 0) -> dict:
    """Compare (a) the full model with the embeddings and bottom ``k`` layers frozen, in train mode with the
    frozen blocks in eval mode, against (b) the layers above ``k`` on the cached token vectors: the largest
    absolute difference of the logits and of every trainable parameter's gradient (same seed, so dropout
    above ``k`` draws the same masks). Leaves ``model`` unfrozen, in eval mode, without gradients."""
    from .freezing import freeze_bottom, set_frozen_eval, unfreeze_all

    unfreeze_all(model)
    freeze_bottom(model, k)
    cache = build_cache(model, sentences, k, level="tokens")
    inputs = model.encoder.tokenize(sentences)
    labels = {t: torch.arange(len(sentences)) % len(model.task_labels[t]) for t in model.task_names}

    def run(forward) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        model.train()
        set_frozen_eval(model)
        torch.manual_seed(seed)
        out = forward()
        sum(nn.functional.cross_entropy(v, labels[t]) for t, v in out.items()).backward()
        grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
        return {t: v.detach() for t, v in out.items()}, grads

    full_out, full_grads = run(lambda: model(**inputs))
    cache_out, cache_grads = run(lambda: cached_forward(model, cache.batch(range(len(sentences))), k))
    if set(full_grads) != set(cache_grads):
        raise AssertionError(f"different parameters received gradients: {set(full_grads) ^ set(cache_grads)}")
    result = {
        "k": k,
        "sentences": len(sentences),
        "tokens per sentence (max)": int(inputs["attention_mask"].sum(1).max()),
        "trainable tensors compared": len(full_grads),
        "logits max abs diff": max((full_out[t] - cache_out[t]).abs().max().item() for t in full_out),
        "gradients max abs diff": max((full_grads[n] - cache_grads[n]).abs().max().item() for n in full_grads),
        "largest gradient": max(g.abs().max().item() for g in full_grads.values()),
    }
    model.zero_grad(set_to_none=True)
    unfreeze_all(model)
    model.eval()
    return result


def evaluate_frozen(model: MultiTaskModel, task, split: str = "test", model_id: str | None = None,
                    batch_size: int = 64) -> dict:
    """:func:`mtl_utils.training.evaluate` for a model whose whole encoder is frozen, through a cache of sentence
    vectors (shared under ``model_id``, e.g. ``"pretrained:<model>"`` for untouched pretrained weights)."""
    from .training import scores_from_logits

    cache = shared_cache(model, list(task[split]["text"]), num_layers(model), model_id, "vectors", batch_size)
    logits = cached_logits(model, cache, task.name, batch_size)[task.name]
    return scores_from_logits(task, split, logits)
