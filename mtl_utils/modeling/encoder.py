"""The sentence encoder: a Hugging Face transformer, pooling, an optional projection and L2 norm. ``encode`` (and the
model's ``logits``/``predict``) take (:func:`check_sentences`) a string, or a list, tuple, NumPy array, pandas Series
(``predict`` keeps its index) or iterable of strings; ``None``, bytes, dicts, sets, non-strings and text not UTF-8
encodable are refused, naming the problem. Texts over ``max_length`` word pieces are truncated, warning once."""
from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from mtl_utils.core import runtime
from mtl_utils.core.batching import eval_mode, length_sorted_batches, pad_ids
from mtl_utils.core.progress import progress
from mtl_utils.modeling.attention_pooling import AttentionPooling
from mtl_utils.modeling.backbone import DEFAULT_MODEL, default_max_length, load_backbone, position_limit
from mtl_utils.modeling.pooling import POOLING_MODES, pool

# The poolings an encoder can use: the parameter-free ones, and a learned attention pooling (trained with it).
ENCODER_POOLINGS: tuple[str, ...] = (*POOLING_MODES, "attention")


def check_sentences(sentences) -> list[str]:
    """``sentences`` as a list of strings (see the module docstring); ``TypeError``/``ValueError`` name any problem."""
    if isinstance(sentences, str):
        check_encodable(sentences, "sentences")
        return [sentences]
    if sentences is None:
        raise TypeError("sentences is None: pass a string or a list of strings")
    if isinstance(sentences, (bytes, bytearray)):
        raise TypeError("sentences is bytes: decode it first, e.g. sentences.decode('utf-8')")
    if isinstance(sentences, pd.Series):
        sentences = sentences.tolist()
    elif isinstance(sentences, (dict, set, frozenset)) or hasattr(sentences, "keys"):
        raise TypeError(f"sentences is a {type(sentences).__name__}, which has no fixed order of texts: pass a list "
                        "of strings (e.g. list(mapping.values()))")
    if not isinstance(sentences, Iterable):
        raise TypeError(f"sentences must be a string or a list of strings, got {type(sentences).__name__}")
    items = list(sentences)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(f"sentences[{i}] is {type(item).__name__} ({item!r:.40}), expected str")
        check_encodable(item, f"sentences[{i}]")
    return items


def check_encodable(text: str, where: str) -> None:
    """``ValueError`` naming ``where`` if ``text`` is not UTF-8 encodable (a lone surrogate; the tokenizer fails)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"{where} cannot be encoded as UTF-8 (character {err.start}: {text[err.start]!r}, "
                         f"in {text[max(0, err.start - 20):err.start + 20]!r}): the input was not valid UTF-8; "
                         "decode it correctly or remove that character") from None


def sentence_index(sentences) -> pd.Index | None:
    """The index of a pandas Series of sentences (kept by ``predict``), else ``None``."""
    return sentences.index if isinstance(sentences, pd.Series) else None


def check_batch_size(batch_size) -> int:
    """A batch size must be a positive integer."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


def check_encoder_settings(pooling: str, max_length, output_dim) -> None:
    """A known pooling, integer ``max_length`` ≥ 2 and ``output_dim`` ≥ 1 (or ``None``), else ``ValueError``."""
    if pooling not in ENCODER_POOLINGS:
        raise ValueError(f"unknown pooling '{pooling}'; choose one of {ENCODER_POOLINGS}")
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2):
        raise ValueError(f"max_length must be an integer of at least 2 word pieces (or None), got {max_length!r}")
    if output_dim is not None and (isinstance(output_dim, bool) or not isinstance(output_dim, (int, np.integer))
                                   or output_dim < 1):
        raise ValueError(f"output_dim must be a positive integer (the projection's size) or None (no projection), "
                         f"got {output_dim!r}")


@dataclass
class Tokenized:
    """Texts tokenised once, unpadded: ``ids[i]``, text ``i``'s word pieces (truncated); ``truncated``: texts cut."""

    ids: list[list[int]]
    lengths: np.ndarray
    truncated: int

    def __len__(self) -> int:
        return len(self.ids)


class SentenceEncoder(nn.Module):
    """Transformer + pooling (+ optional linear projection) (+ optional L2 normalisation). ``forward`` takes
    :meth:`tokenize`'s batches, :meth:`encode` raw strings. A new encoder is in eval mode.

    Args:
        model: Hugging Face model id or folder; ``None`` means the bundled all-MiniLM-L6-v2.
        pooling: ``"mean"`` (masked, default), ``"cls"``, ``"max"`` or ``"attention"`` (a learned query, trained too).
        normalize: L2-normalise the sentence vectors (cosine similarity becomes a dot product).
        max_length: word pieces per text (longer texts truncated); default the model's own (:func:`position_limit`).
        output_dim: size of an added linear projection from the hidden size (e.g. 256); ``None``: no projection.
        device: where to compute (default: :func:`mtl_utils.core.runtime.device`).
        backbone: a loaded ``(tokenizer, transformer)``, as checkpoints rebuild an encoder; ``model`` then names it."""

    def __init__(self, model: str | None = None, pooling: str = "mean", normalize: bool = False,
                 max_length: int | None = None, output_dim: int | None = None,
                 device: str | torch.device | None = None, backbone: tuple | None = None) -> None:
        super().__init__()
        check_encoder_settings(pooling, max_length, output_dim)
        if backbone is None:
            self.tokenizer, self.transformer, path = load_backbone(model)
        else:
            (self.tokenizer, self.transformer), path = backbone, ""
        self.model_name = model or DEFAULT_MODEL
        self.pooling = pooling
        self.normalize = normalize
        positions = position_limit(self.transformer)
        self.max_length = int(max_length or default_max_length(path, self.tokenizer, self.transformer.config,
                                                               positions))
        if positions and self.max_length > positions:
            raise ValueError(f"max_length={self.max_length} word pieces, but '{self.model_name}' has position "
                             f"embeddings for {positions}: choose max_length <= {positions}")
        self.attention = AttentionPooling(self.hidden_size) if pooling == "attention" else None
        self.output_dim = None if output_dim is None else int(output_dim)
        self.projection = nn.Linear(self.hidden_size, self.output_dim) if self.output_dim else None
        self.to(runtime.device(device))
        self.eval()

    @property
    def hidden_size(self) -> int:
        return int(self.transformer.config.hidden_size)

    @property
    def dim(self) -> int:
        """Length of the sentence vectors this encoder returns."""
        return int(self.output_dim or self.hidden_size)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def config(self) -> dict:
        """What it takes to rebuild this encoder (JSON-serialisable)."""
        return {"model": self.model_name, "pooling": self.pooling, "normalize": self.normalize,
                "max_length": self.max_length, "output_dim": self.output_dim}

    def fingerprint(self) -> str:
        """SHA-256 of the configuration and every weight: embedding caches' key (same fingerprint, same vectors)."""
        digest = hashlib.sha256(json.dumps(self.config(), sort_keys=True).encode())
        for name, tensor in self.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    def token_ids(self, sentences) -> Tokenized:
        """Tokenise once (special tokens added, truncated to ``max_length``, no padding)."""
        texts = check_sentences(sentences)
        if not texts:
            return Tokenized([], np.zeros(0, dtype=int), 0)
        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        ids = encoded["input_ids"]
        truncated = sum(1 for e in (encoded.encodings or []) if e.overflowing)
        return Tokenized(ids, np.array([len(x) for x in ids]), truncated)

    def collate(self, ids: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
        """A padded batch of token-id lists on this encoder's device."""
        return {k: v.to(self.device) for k, v in pad_ids(ids, self.tokenizer.pad_token_id).items()}

    def tokenize(self, sentences) -> dict[str, torch.Tensor]:
        """Tokenise, truncate to ``max_length`` and pad to the longest text of this batch (dynamic padding)."""
        return self.collate(self.token_ids(sentences).ids)

    def pool_tokens(self, token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooling, projection and normalisation of token vectors ``[batch, tokens, hidden]``."""
        if self.attention is not None:
            vectors = self.attention(token_embeddings, attention_mask)
        else:
            vectors = pool(token_embeddings, attention_mask, self.pooling)
        if self.projection is not None:
            vectors = self.projection(vectors)
        if self.normalize:
            vectors = nn.functional.normalize(vectors, p=2, dim=1)
        return vectors

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        """Sentence vectors ``[batch, dim]`` of a tokenised batch (differentiable)."""
        hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        return self.pool_tokens(hidden, attention_mask)

    def warn_truncated(self, tokenized: Tokenized, stacklevel: int = 3) -> None:
        """One warning saying how many texts were longer than ``max_length`` and were cut."""
        if tokenized.truncated:
            warnings.warn(f"{tokenized.truncated} of {len(tokenized)} texts are longer than max_length="
                          f"{self.max_length} word pieces and were truncated", stacklevel=stacklevel)

    def encode_tokenized(self, tokenized: Tokenized, batch_size: int = 32, show_progress: bool | None = None,
                         sort_by_length: bool = True) -> torch.Tensor:
        """Sentence vectors ``[n, dim]`` (CPU, float32, input order) of tokenised texts, as :meth:`encode`."""
        batch_size = check_batch_size(batch_size)
        out = torch.empty((len(tokenized), self.dim))
        if sort_by_length:
            batches = length_sorted_batches(tokenized.lengths, batch_size)
        else:
            batches = [np.arange(i, min(i + batch_size, len(tokenized))) for i in range(0, len(tokenized), batch_size)]
        show = len(batches) >= 20 if show_progress is None else show_progress
        with eval_mode(self), torch.inference_mode():
            for idx in progress(batches, desc="encode", unit="batch", disable=not show):
                vectors = self(**self.collate([tokenized.ids[i] for i in idx]))
                out[torch.from_numpy(idx)] = vectors.float().cpu()
        return out

    def encode(self, sentences, batch_size: int = 32, show_progress: bool | None = None,
               convert_to_tensor: bool = False, sort_by_length: bool = True,
               warn_truncation: bool = True) -> np.ndarray | torch.Tensor:
        """Embed sentences for inference: ``[n, dim]`` (``[1, dim]`` for one string), in input order. Truncation warns
        once per call unless ``warn_truncation`` is off; ``show_progress=None`` shows a bar from 20 batches on."""
        batch_size = check_batch_size(batch_size)
        tokenized = self.token_ids(sentences)
        if warn_truncation:
            self.warn_truncated(tokenized)
        out = self.encode_tokenized(tokenized, batch_size, show_progress, sort_by_length)
        return out if convert_to_tensor else out.numpy()
