"""Smaller vectors for search: :class:`Int8Ranges` cuts each dimension's range, calibrated on held-out vectors, into 256
steps (4× smaller than fp32); :func:`binarize` keeps each dimension's sign, 64 to a word (32× smaller), for Hamming
distance; :func:`rescore` rescores the binary index's top ``k`` with the fp32 query and int8 or fp32 vectors. As
sentence-transformers' ``quantize_embeddings`` (Shakir, Aarsen & Lee, 2024, "Binary and Scalar Embedding Quantization").
Scores: ``[queries, corpus]``, higher is better, ``-inf`` left out. Taught in notebook 06 (serving), § 5. Example::

    ranges = Int8Ranges.calibrate(held_out_vectors)
    int8_scores = ranges.scores(queries, ranges.quantize(corpus))
    rescored = rescore(queries, hamming_scores(binarize(queries), binarize(corpus)), corpus, k=40)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def _matrix(vectors, name: str) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2 or not len(array) or not np.isfinite(array).all():
        raise ValueError(f"{name} must be a non-empty 2-D array of finite numbers, not shape {array.shape}")
    return array


def _check_k(k) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a whole number of at least 1, not {k!r}")


@dataclass(frozen=True)
class Int8Ranges:
    """Each dimension's lowest value and step (``(highest - lowest) / 255``) from calibration vectors."""

    low: np.ndarray
    step: np.ndarray

    @classmethod
    def calibrate(cls, vectors) -> Int8Ranges:
        vectors = _matrix(vectors, "calibration vectors")
        low, high = vectors.min(0), vectors.max(0)
        return cls(low, np.maximum(high - low, 1e-12) / 255)

    def quantize(self, vectors) -> np.ndarray:
        """int8 codes, values beyond the calibrated range clipped to its ends."""
        codes = np.round((_matrix(vectors, "vectors") - self.low) / self.step) - 128
        return np.clip(codes, -128, 127).astype(np.int8)

    def dequantize(self, codes: np.ndarray) -> np.ndarray:
        return (codes.astype(np.float32) + 128) * self.step + self.low

    def scores(self, queries, codes: np.ndarray) -> np.ndarray:
        """``queries · dequantize(codes)`` in integers: each query, weighted by the steps, rounded to int8 on its own
        scale, times the int8 codes into int32 (``torch._int_mm``), scaled back, plus each query's constant term."""
        weighted = _matrix(queries, "queries") * self.step
        if codes.dtype != np.int8 or codes.ndim != 2 or codes.shape[1] != weighted.shape[1]:
            raise ValueError(f"codes must be 2-D int8 of width {weighted.shape[1]} (from quantize)")
        scale = np.maximum(np.abs(weighted).max(1, keepdims=True), 1e-12) / 127
        rounded = torch.from_numpy(np.round(weighted / scale).astype(np.int8))
        products = torch._int_mm(rounded, torch.from_numpy(codes).T).numpy()
        return scale * products + (queries @ (128 * self.step + self.low))[:, None]


def binarize(vectors) -> np.ndarray:
    """One bit per dimension (1 where positive), packed 64 to a word: ``[n, ceil(dims / 64)]`` uint64."""
    bits = np.packbits(_matrix(vectors, "vectors") > 0, axis=1)
    padded = np.zeros((len(bits), -(-bits.shape[1] // 8) * 8), dtype=np.uint8)
    padded[:, :bits.shape[1]] = bits
    return padded.view(np.uint64)


def hamming_scores(query_bits: np.ndarray, corpus_bits: np.ndarray) -> np.ndarray:
    """Minus the number of differing bits, ``[queries, corpus]`` (XOR and popcount, one 64-bit word at a time)."""
    if query_bits.dtype != np.uint64 or corpus_bits.dtype != np.uint64 or query_bits.ndim != 2 \
            or query_bits.shape[1:] != corpus_bits.shape[1:]:
        raise ValueError("query and corpus bits must be 2-D uint64 arrays of the same width (from binarize)")
    by_word = np.ascontiguousarray(corpus_bits.T)
    out = np.empty((len(query_bits), len(corpus_bits)), dtype=np.float32)
    for i, query in enumerate(query_bits):
        differ = np.zeros(len(corpus_bits), dtype=np.uint16)
        for column, word in zip(by_word, query):
            differ += np.bitwise_count(column ^ word)
        out[i] = -differ.astype(np.float32)
    return out


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """The column indices of each row's ``k`` highest scores, best first."""
    _check_k(k)
    return torch.topk(torch.from_numpy(scores), min(k, scores.shape[1]), dim=1).indices.numpy()


def rescore(queries, first_pass: np.ndarray, corpus, k: int = 40) -> np.ndarray:
    """``first_pass``'s top ``k`` per query scored again as ``query · passage`` with the fp32 ``queries`` and
    the ``corpus`` vectors (fp32, or int8 dequantised); every other passage scores ``-inf``."""
    queries, corpus = _matrix(queries, "queries"), _matrix(corpus, "corpus")
    _check_k(k)
    if queries.shape[1] != corpus.shape[1]:
        raise ValueError(f"queries have {queries.shape[1]} dimensions and the corpus {corpus.shape[1]}")
    if first_pass.shape != (len(queries), len(corpus)):
        raise ValueError(f"first_pass must be queries x corpus {(len(queries), len(corpus))}, not "
                         f"{first_pass.shape}")
    picked = top_k(first_pass, k)
    scores = np.full(first_pass.shape, -np.inf, dtype=np.float32)
    rows = np.arange(len(queries))[:, None]
    scores[rows, picked] = np.einsum("qd,qkd->qk", queries, corpus[picked])
    return scores
