"""Static embeddings: one vector per word piece, looked up and averaged (encoding costs a tokeniser and a sum).
:func:`distill` runs each vocabulary piece through the transformer alone (``[CLS] piece [SEP]``, outputs averaged), then
PCA and SIF weights ``a / (a + p)``, ``p`` from Zipf's law: model2vec's recipe, needing no data (Tulkens & van Dongen,
2024; SIF: Arora et al., 2017). :class:`StaticEncoder`: sentence-transformers' ``StaticEmbedding`` (mean pooling);
:func:`train_static`: the table trained on pairs with in-batch negatives (Aarsen, 2025). Notebook 06, § 5. Example::

    static = distill(SentenceEncoder(DEFAULT_MODEL), dims=256)
    train_static(static, headlines, passages_per_headline, epochs=10)
    vectors = static.encode(["Shares rise after the results"])    # [1, 256], unit length
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import AutoTokenizer

from mtl_utils.core.batching import eval_mode
from mtl_utils.modeling.encoder import SentenceEncoder, check_sentences
from mtl_utils.training.contrastive import in_batch_negatives_loss

TABLE = "table.npy"


class StaticEncoder(nn.Module):
    """Sentence vectors: the mean of ``table``'s rows (``[vocabulary, dims]``) for ``tokenizer``'s pieces, else 0."""

    def __init__(self, table: Tensor, tokenizer) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.bag = nn.EmbeddingBag.from_pretrained(table.float().clone(), freeze=False, mode="mean")

    @property
    def dims(self) -> int:
        return self.bag.embedding_dim

    def forward(self, sentences: Sequence[str]) -> Tensor:
        if not sentences:
            return self.bag.weight.new_zeros(0, self.dims)
        pieces = self.tokenizer(list(sentences), add_special_tokens=False)["input_ids"]
        flat = torch.tensor([i for sentence in pieces for i in sentence], dtype=torch.long)
        starts = torch.tensor([0] + [len(p) for p in pieces[:-1]], dtype=torch.long).cumsum(0)
        return self.bag(flat, starts)

    @torch.inference_mode()
    def encode(self, sentences, batch_size: int = 4096) -> np.ndarray:
        """Unit-length float32 vectors ``[n, dims]``."""
        sentences = check_sentences(sentences)
        parts = [F.normalize(self(sentences[i:i + batch_size]), dim=-1) for i in range(0, len(sentences), batch_size)]
        return torch.cat(parts).numpy() if parts else np.zeros((0, self.dims), np.float32)

    def save(self, folder: str | Path) -> Path:
        """The table (``table.npy``) and the tokenizer's files; :meth:`load` reads them back."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / TABLE, self.bag.weight.detach().numpy())
        self.tokenizer.save_pretrained(folder)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> StaticEncoder:
        folder = Path(folder)
        if not (folder / TABLE).is_file():
            raise FileNotFoundError(f"{folder} holds no static model ({TABLE} is missing)")
        table = torch.from_numpy(np.load(folder / TABLE, allow_pickle=False))
        return cls(table, AutoTokenizer.from_pretrained(folder))


def _framing(tokenizer) -> tuple[list[int], list[int]]:
    """The special pieces the tokenizer puts before and after a sentence (``[CLS]``/``[SEP]``, ``<s>``/...)."""
    def first(*ids):
        return [next(i for i in ids if i is not None)] if any(i is not None for i in ids) else []

    return first(tokenizer.cls_token_id, tokenizer.bos_token_id), first(tokenizer.sep_token_id, tokenizer.eos_token_id)


@torch.inference_mode()
def distill(encoder: SentenceEncoder, dims: int = 256, sif: float = 1e-4, pieces: Sequence[int] | None = None,
            batch_size: int = 1024) -> StaticEncoder:
    """A static model of ``encoder``: every vocabulary piece (or only ``pieces``; the rest stay zero) through the
    transformer alone (in eval mode, on its device), PCA to ``dims``, rows weighted by SIF with weight ``sif``."""
    vocabulary, hidden = len(encoder.tokenizer), encoder.hidden_size
    if not 0 < dims <= hidden:
        raise ValueError(f"dims must be between 1 and the encoder's {hidden}, not {dims}")
    ids = torch.arange(vocabulary) if pieces is None else torch.tensor(sorted(set(pieces)), dtype=torch.long)
    if len(ids) < dims or int(ids.min()) < 0 or int(ids.max()) >= vocabulary:
        raise ValueError(f"pieces must be at least {dims} ids of the vocabulary (0 to {vocabulary - 1})")
    before, after = _framing(encoder.tokenizer)
    outputs = []
    with eval_mode(encoder):
        for chunk in ids.split(batch_size):
            frame = [torch.tensor([ids_] * len(chunk), dtype=torch.long) for ids_ in (before, after)]
            x = torch.cat([frame[0], chunk[:, None], frame[1]], dim=1).to(encoder.device)
            hidden_states = encoder.transformer(input_ids=x, attention_mask=torch.ones_like(x)).last_hidden_state
            outputs.append(hidden_states.mean(1).float().cpu())
    rows = torch.cat(outputs)
    centred = rows - rows.mean(0)
    _, _, components = torch.linalg.svd(centred, full_matrices=False)
    table = torch.zeros(vocabulary, dims)
    table[ids] = centred @ components[:dims].T
    zipf = 1.0 / torch.arange(1, vocabulary + 1, dtype=torch.float32)
    table *= (sif / (sif + zipf / zipf.sum()))[:, None]
    return StaticEncoder(table, encoder.tokenizer)


def train_static(model: StaticEncoder, queries: Sequence[str], positives: Sequence[Sequence[str]], epochs: int,
                 batch_size: int = 64, lr: float = 1e-2, seed: int = 0,
                 after_epoch: Callable[[int, StaticEncoder], None] | None = None) -> list[float]:
    """Train in place (Adam), each query with a random positive per epoch; returns each epoch's mean loss."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a whole number of at least 1, not {epochs!r}")
    if len(queries) != len(positives) or any(len(p) == 0 for p in positives):
        raise ValueError("every query needs at least one positive passage (queries and positives align)")
    if not 2 <= batch_size <= len(queries):
        raise ValueError(f"batch_size must be between 2 and the {len(queries)} queries, not {batch_size}")
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for epoch in range(1, epochs + 1):
        order, total = torch.randperm(len(queries), generator=generator), []
        for batch in order[:len(order) - len(order) % batch_size].split(batch_size):
            drawn = [positives[i][int(torch.randint(len(positives[i]), (1,), generator=generator))]
                     for i in batch.tolist()]
            loss = in_batch_negatives_loss(model([queries[i] for i in batch.tolist()]), model(drawn))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total.append(loss.item())
        losses.append(float(np.mean(total)))
        if after_epoch:
            after_epoch(epoch, model)
    return losses
