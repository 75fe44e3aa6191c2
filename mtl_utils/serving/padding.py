"""Encoding throughput (sentences per second) and the padding each batching order wastes."""
from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from mtl_utils.core.batching import length_sorted_batches, padded_positions
from mtl_utils.modeling.encoder import SentenceEncoder


def throughput(encoder: SentenceEncoder, sentences: Sequence[str], batch_size: int = 32,
               sort_by_length: bool = True) -> float:
    """Sentences per second of one :meth:`SentenceEncoder.encode` call over ``sentences``."""
    start = time.perf_counter()
    encoder.encode(sentences, batch_size=batch_size, show_progress=False, sort_by_length=sort_by_length,
                   warn_truncation=False)
    return len(sentences) / (time.perf_counter() - start)


def padding_fraction(encoder: SentenceEncoder, sentences: Sequence[str], batch_size: int = 32,
                     sort: bool = True) -> float:
    """Share of token positions that are padding when ``sentences`` are batched length-sorted or in input order."""
    lengths = encoder.token_ids(sentences).lengths
    if sort:
        batches = length_sorted_batches(lengths, batch_size)
    else:
        batches = [np.arange(i, min(i + batch_size, len(lengths))) for i in range(0, len(lengths), batch_size)]
    return padded_positions(lengths, batches)


def batching_speed(encoder: SentenceEncoder, sentences: Sequence[str], batch_size: int = 32,
                   repeats: int = 3) -> pd.DataFrame:
    """Length-sorted vs input order: best-of-``repeats`` and median throughput, padded share; orders alternate."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    orders = {"length-sorted": True, "input order": False}
    throughput(encoder, sentences[: batch_size * 2], batch_size)  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in orders}
    for _ in range(repeats):
        for name, sort in orders.items():
            rates[name].append(throughput(encoder, sentences, batch_size, sort))
    rows = {name: {"sentences/s (best)": max(rates[name]), "sentences/s (median)": float(np.median(rates[name])),
                   "padded positions": padding_fraction(encoder, sentences, batch_size, sort=sort)}
            for name, sort in orders.items()}
    table = pd.DataFrame(rows).T
    table.index.name = f"{len(sentences)} sentences, batch {batch_size}"
    return table
