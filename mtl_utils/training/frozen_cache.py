"""Frozen layers computed once: the embeddings and bottom ``k`` layers, frozen and in eval mode, are a fixed function of
the text, so training runs only what is above on their cached token vectors (:func:`cached_forward`; whole encoder
frozen: heads on cached sentence vectors); exact (:func:`check_equivalence`) when nothing below ``k`` trains or draws
random numbers. Caches are shared in memory under the encoder's fingerprint (:func:`shared_cache`)."""
from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mtl_utils.core.batching import eval_mode, length_sorted_batches, pad_ids
from mtl_utils.core.digests import texts_sha256
from mtl_utils.modeling import anatomy
from mtl_utils.modeling.encoder import Tokenized, check_sentences
from mtl_utils.modeling.model import MultiTaskModel
from mtl_utils.training.freezing import check_k, encoder_frozen, freeze_bottom, set_frozen_eval, unfreeze_all

LEVELS: tuple[str, ...] = ("tokens", "vectors")


class _Reached(Exception):
    """Raised by a pre-hook to end a forward pass at the layer whose input it carries."""

    def __init__(self, hidden: torch.Tensor) -> None:
        super().__init__()
        self.hidden = hidden


@contextmanager
def _layers_from(model: nn.Module, start: int, hidden: torch.Tensor | None, stop: int | None):
    """While open: layers ``< start`` pass their input on, layer ``start`` gets ``hidden``, ``stop``'s input ends it."""
    stack = anatomy.layer_stack(model)
    flow = anatomy.layer_flow(model)
    patched, hooks = [], []
    try:
        if hidden is not None:
            for i, layer in enumerate(stack[:start]):
                if flow.output[i] < 0:
                    raise ValueError(f"{type(layer).__name__} returns more than its token vectors: the frozen-layer "
                                     "cache cannot skip it exactly; train with frozen_cache=False")
                patched.append((layer, layer.__dict__.get("forward")))
                layer.forward = _passing_through(flow.output[i])
            hooks.append(stack[start].register_forward_pre_hook(
                lambda _m, args, kwargs: anatomy.with_hidden(args, kwargs, hidden), with_kwargs=True))
        if stop is not None:
            def reached(_m, args, kwargs):
                raise _Reached(anatomy.hidden_argument(args, kwargs))
            hooks.append(stack[stop].register_forward_pre_hook(reached, with_kwargs=True))
        yield
    finally:
        for hook in hooks:
            hook.remove()
        for layer, own in patched:  # the instance's own forward (a wrapper's, say) back, or the class's
            if own is None:
                del layer.forward
            else:
                layer.forward = own


def _passing_through(form: int):
    def forward(*args, **kwargs):
        hidden = anatomy.hidden_argument(args, kwargs)
        return hidden if form == 0 else (hidden, *([None] * (form - 1)))
    return forward


def transformer_from(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, start: int = 0,
                     hidden: torch.Tensor | None = None, stop: int | None = None) -> torch.Tensor:
    """Token vectors from the transformer's own forward on a padded batch: the input of layer ``stop`` (``None`` or
    ``L``: the output); with ``hidden`` (e.g. cached) handed to layer ``start``, the layers below are not run."""
    n = anatomy.num_layers(model)
    stop = None if stop is None or stop == n else stop
    if hidden is not None and (start == n or start == stop):
        return hidden
    transformer = anatomy.transformer_of(model)
    try:
        with _layers_from(model, start, hidden, stop) if hidden is not None or stop is not None else nullcontext():
            return transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    except _Reached as reached:
        return reached.hidden


def bottom_states(model: MultiTaskModel, inputs: dict[str, torch.Tensor], k: int) -> torch.Tensor:
    """Token vectors the model's forward hands to layer ``k + 1`` (``k = L``: the transformer's output), mode as set."""
    return transformer_from(model, inputs["input_ids"], inputs["attention_mask"], stop=k)


def level_for(model: MultiTaskModel, k: int) -> str:
    """``"vectors"`` when the whole encoder is frozen and ``k`` is all layers, else ``"tokens"``."""
    return "vectors" if k == anatomy.num_layers(model) and encoder_frozen(model) else "tokens"


@dataclass
class FrozenCache:
    """The frozen bottom's output for texts, in input order: ``level="tokens"``, text ``i``'s token vectors after layer
    ``k`` (``states[i]``, unpadded) and token ids (``ids[i]``); ``level="vectors"``, pooled ``vectors`` ``[n, dim]``."""

    k: int
    level: str
    states: list[torch.Tensor] | None = None
    vectors: torch.Tensor | None = None
    seconds: float = 0.0
    ids: list[list[int]] | None = None
    pad_id: int = 0

    def __len__(self) -> int:
        return len(self.states) if self.level == "tokens" else int(self.vectors.shape[0])

    @property
    def lengths(self) -> np.ndarray:
        if self.level == "vectors":
            return np.ones(len(self), dtype=int)
        return np.array([s.shape[0] for s in self.states])

    @property
    def nbytes(self) -> int:
        if self.level == "vectors":
            return self.vectors.numel() * self.vectors.element_size()
        return sum(s.numel() * s.element_size() for s in self.states)

    def batch(self, idx: Sequence[int] | np.ndarray) -> dict[str, torch.Tensor]:
        """A mini-batch for :func:`cached_forward`: padded token vectors, their ids and mask, or sentence vectors."""
        idx = [int(i) for i in idx]
        if self.level == "vectors":
            return {"vectors": self.vectors[idx]}
        hidden = nn.utils.rnn.pad_sequence([self.states[i] for i in idx], batch_first=True)
        return {"hidden": hidden, **pad_ids([self.ids[i] for i in idx], self.pad_id)}


def _check_level(model: MultiTaskModel, k: int, level: str) -> None:
    if level not in LEVELS:
        raise ValueError(f"unknown cache level '{level}'; choose one of {LEVELS}")
    if level == "vectors" and k != anatomy.num_layers(model):
        raise ValueError(f"a cache of sentence vectors needs the whole backbone frozen "
                         f"(k={anatomy.num_layers(model)}), got k={k}")


def build_cache(model: MultiTaskModel, texts: Sequence[str] | Tokenized, k: int, level: str | None = None,
                batch_size: int = 64) -> FrozenCache:
    """Compute the frozen bottom's output for ``texts`` once (eval mode, no gradients); ``level``: :func:`level_for`."""
    check_k(model, k)
    level = level or level_for(model, k)
    _check_level(model, k, level)
    encoder = model.encoder
    tokenized = texts if isinstance(texts, Tokenized) else encoder.token_ids(check_sentences(texts))
    start = time.perf_counter()
    states: list[torch.Tensor | None] = [None] * len(tokenized)
    vectors = torch.empty((len(tokenized), encoder.dim))
    with eval_mode(model), torch.no_grad():  # not inference_mode: cached tensors feed steps that need autograd
        for idx in length_sorted_batches(tokenized.lengths, batch_size):
            batch = encoder.collate([tokenized.ids[j] for j in idx])
            if level == "vectors":
                vectors[torch.from_numpy(idx)] = encoder(**batch).float().cpu()
            else:
                _store(states, idx, bottom_states(model, batch, k), tokenized.lengths[idx])
    return _finished(k, level, vectors, states, start, tokenized.ids, encoder.tokenizer.pad_token_id)


def _store(states: list, idx: np.ndarray, hidden: torch.Tensor, lengths: Sequence[int]) -> None:
    """Keep each text's real (unpadded) token states of a batch (row ``r`` is text ``idx[r]``)."""
    hidden = hidden.float().cpu()
    for row, (j, length) in enumerate(zip(idx, lengths)):
        states[j] = hidden[row, :length].clone()


def _finished(k: int, level: str, vectors, states, start: float, ids, pad_id: int) -> FrozenCache:
    seconds = time.perf_counter() - start
    if level == "vectors":
        return FrozenCache(k, level, vectors=vectors, seconds=seconds)
    return FrozenCache(k, level, states=states, seconds=seconds, ids=list(ids), pad_id=int(pad_id))


def cached_vectors(model: MultiTaskModel, batch: dict[str, torch.Tensor], k: int) -> torch.Tensor:
    """Sentence vectors from a cache batch: layers ``k..`` + pooling (+ projection, norm), differentiable."""
    device = model.encoder.device
    if "vectors" in batch:
        return batch["vectors"].to(device)
    hidden, mask = batch["hidden"].to(device), batch["attention_mask"].to(device)
    hidden = transformer_from(model, batch["input_ids"].to(device), mask, start=k, hidden=hidden)
    return model.encoder.pool_tokens(hidden, mask)


def cached_forward(model: MultiTaskModel, batch: dict[str, torch.Tensor], k: int,
                   tasks: str | Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """``{task: logits}`` from a cache batch: ``model(...)`` with the bottom ``k`` frozen, without running it."""
    return model.heads_forward(cached_vectors(model, batch, k), tasks)


def cached_logits(model: MultiTaskModel, cache: FrozenCache, tasks: str | Sequence[str] | None = None,
                  batch_size: int = 64) -> dict[str, np.ndarray]:
    """Inference logits per task for every cached text (eval mode), in input order."""
    names = model.check_tasks(tasks)
    out = {name: np.empty((len(cache), len(model.task_labels[name])), dtype=np.float32) for name in names}
    with eval_mode(model), torch.inference_mode():
        for idx in length_sorted_batches(cache.lengths, batch_size):
            for name, logits in cached_forward(model, cache.batch(idx), cache.k, names).items():
                out[name][idx] = logits.float().cpu().numpy()
    return out


def extend_cache(model: MultiTaskModel, source: FrozenCache, k: int, level: str = "tokens",
                 batch_size: int = 64) -> FrozenCache:
    """A cache at layer ``k`` (or of vectors) from a lower token cache: only layers ``source.k..k-1`` run (no grad)."""
    check_k(model, k)
    _check_level(model, k, level)
    if source.level != "tokens" or source.k > k:
        raise ValueError(f"can only extend a token cache upwards: have {source.level} at k={source.k}, asked k={k}")
    start = time.perf_counter()
    states: list[torch.Tensor | None] = [None] * len(source)
    vectors = torch.empty((len(source), model.encoder.dim))
    device = model.encoder.device
    with eval_mode(model), torch.no_grad():
        for idx in length_sorted_batches(source.lengths, batch_size):
            batch = source.batch(idx)
            hidden, mask = batch["hidden"].to(device), batch["attention_mask"].to(device)
            hidden = transformer_from(model, batch["input_ids"].to(device), mask, source.k, hidden, k)
            if level == "vectors":
                vectors[torch.from_numpy(idx)] = model.encoder.pool_tokens(hidden, mask).float().cpu()
            else:
                _store(states, idx, hidden, source.lengths[idx])
    return _finished(k, level, vectors, states, start, source.ids, source.pad_id)


_SHARED: OrderedDict[tuple[str, int, str], FrozenCache] = OrderedDict()
SHARED_BYTES = 1_500_000_000


def texts_key(weights_id: str, encoder_config: dict, texts: Sequence[str]) -> str:
    """Identity of texts under fixed frozen weights and encoder settings (length-prefixed: no two lists share one)."""
    return texts_sha256(texts, f"{weights_id}|{sorted(encoder_config.items())}|{len(texts)}")


def shared_cache(model: MultiTaskModel, texts: Sequence[str], k: int, weights_id: str | None,
                 level: str | None = None, batch_size: int = 64) -> FrozenCache:
    """:func:`build_cache`, reusing (``seconds=0``) or extending a cache of the same frozen weights (``weights_id``,
    e.g. the encoder's fingerprint; ``None``: always build); recent caches are kept up to :data:`SHARED_BYTES`."""
    level = level or level_for(model, k)
    if weights_id is None:
        return build_cache(model, texts, k, level, batch_size)
    base = texts_key(weights_id, model.encoder.config(), list(texts))
    key = (base, k, level)
    if key in _SHARED:
        _SHARED.move_to_end(key)
        found = _SHARED[key]
        return FrozenCache(found.k, found.level, found.states, found.vectors, 0.0, found.ids, found.pad_id)
    lower = [j for (b, j, lv) in _SHARED if b == base and lv == "tokens" and 0 < j <= k]
    if lower:
        cache = extend_cache(model, _SHARED[(base, max(lower), "tokens")], k, level, batch_size)
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
    """Largest absolute differences of logits and trainable gradients between (a) the model in train mode, bottom ``k``
    frozen in eval mode, and (b) the layers above ``k`` on cached vectors; leaves ``model`` unfrozen, eval, no grads."""
    unfreeze_all(model)
    freeze_bottom(model, k)
    cache = build_cache(model, sentences, k, level="tokens")
    inputs = model.encoder.tokenize(sentences)
    labels = {t: (torch.arange(len(sentences)) % len(model.task_labels[t])).to(model.encoder.device)
              for t in model.task_names}

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
    result = {"k": k, "sentences": len(sentences),
              "tokens per sentence (max)": int(inputs["attention_mask"].sum(1).max()),
              "trainable tensors compared": len(full_grads),
              "logits max abs diff": max((full_out[t] - cache_out[t]).abs().max().item() for t in full_out),
              "gradients max abs diff": max((full_grads[n] - cache_grads[n]).abs().max().item() for n in full_grads),
              "largest gradient": max(g.abs().max().item() for g in full_grads.values())}
    model.zero_grad(set_to_none=True)
    unfreeze_all(model)
    model.eval()
    return result
