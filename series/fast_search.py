"""Notebook 06 § 5's experiments: a static model distilled from the encoder and trained on headlines (cached
in the run store), search with smaller vectors, and the timings of encoding and search in one process.

* :func:`static_runs` (from :mod:`series.static_runs`, keyed on its own code): the static model distilled,
  its budget read off a validation learning curve, one trained table per seed;
* :func:`index_scores`: the benchmark's score matrices for each way of storing the corpus (fp32, int8,
  binary, binary rescored, fewer dimensions), with the bytes each keeps in memory;
* :func:`encode_speed`, :func:`search_speed`, :func:`matmul_rate`: timings, medians over interleaved repeats
  (:func:`interleaved`, :func:`rate_table`: the harness, which notebook 02's cross-encoder cost uses too);
* :func:`flops_per_token`: what one token costs a BERT-style encoder, for the bound the CPU's rate sets.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from mtl_utils.evaluation.probing import l2_normalize
from mtl_utils.serving import quantized_search as qs
from mtl_utils.serving import static_embedding
from series.runs import training_modules
from series.static_runs import (  # noqa: F401 (the notebook reaches them as fast_search.*)
    CURVE_EPOCHS,
    QUICK_CURVE_EPOCHS,
    StaticRuns,
    reciprocal_ranks,
    static_runs,
    static_scores,
)


def index_scores(queries: np.ndarray, corpus: np.ndarray, calibration: np.ndarray, k: int = 40,
                 truncations: Sequence[int] = (256, 128, 64)) -> dict[str, tuple[np.ndarray, float]]:
    """Per way of storing the corpus: its ``[queries, corpus]`` scores and the bytes per passage kept in
    memory (the rescoring vectors are read from disk, ``k`` per query)."""
    dims = corpus.shape[1]
    ranges = qs.Int8Ranges.calibrate(calibration)
    codes = ranges.quantize(corpus)
    int8 = ranges.dequantize(codes)
    hamming = qs.hamming_scores(qs.binarize(queries), qs.binarize(corpus))
    out = {"fp32": (queries @ corpus.T, 4.0 * dims), "int8": (ranges.scores(queries, codes), float(dims)),
           "binary": (hamming, dims / 8),
           f"binary, top {k} rescored with int8": (qs.rescore(queries, hamming, int8, k), dims / 8),
           f"binary, top {k} rescored with fp32": (qs.rescore(queries, hamming, corpus, k), dims / 8)}
    for d in truncations:
        out[f"fp32, first {d} dimensions"] = (l2_normalize(queries[:, :d]) @ l2_normalize(corpus[:, :d]).T, 4.0 * d)
    return out


def timed_code() -> list:
    """The modules § 5's timings depend on (replayed while their code is unchanged): this one, and the static
    model's and the indexes' with everything they import (the encoder included)."""
    return [sys.modules[__name__], *training_modules(static_embedding, qs)]


def interleaved(jobs: Mapping[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds of each job, the jobs taking turns ``repeats`` times after one untimed warm-up each."""
    for job in jobs.values():
        job()
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(repeats):
        for name, job in jobs.items():
            start = time.perf_counter()
            job()
            times[name].append(time.perf_counter() - start)
    return times


def rate_table(times: Mapping[str, list[float]], items: int, unit: str, what: str) -> pd.DataFrame:
    """``items`` per second of each job's ``times`` (median, slowest and fastest), indexed by ``what``."""
    return pd.DataFrame([{f"{unit}/s (median)": items / float(np.median(t)),
                          f"{unit}/s (slowest)": items / max(t), f"{unit}/s (fastest)": items / min(t)}
                         for t in times.values()], index=pd.Index(list(times), name=what))


def encode_speed(encoders: Mapping[str, Callable[[list[str]], object]], texts: Sequence[str],
                 repeats: int = 5) -> pd.DataFrame:
    """Sentences per second of each encoder on ``texts`` (median, slowest and fastest repeat), in one process."""
    return rate_table(interleaved({n: (lambda f=f: f(list(texts))) for n, f in encoders.items()}, repeats),
                      len(texts), "sentences", "encoder")


def search_speed(dims: int = 384, corpus: int = 100_000, queries: int = 64, k: int = 40, repeats: int = 5,
                 truncations: Sequence[int] = (256, 128, 64), seed: int = 0) -> pd.DataFrame:
    """Queries per second of exact search over ``corpus`` random unit vectors (search time does not depend on
    what the vectors mean), top 10 returned: fp32, int8, binary, binary with its top ``k`` rescored, and fp32
    with only the first ``truncations`` dimensions."""
    rng = np.random.default_rng(seed)
    c = l2_normalize(rng.standard_normal((corpus, dims), dtype=np.float32))
    q = c[rng.choice(corpus, queries, replace=False)] + 0.1 * rng.standard_normal((queries, dims), np.float32)
    ranges = qs.Int8Ranges.calibrate(c[:1000])
    codes, bits, query_bits = ranges.quantize(c), qs.binarize(c), qs.binarize(q)
    fp32 = torch.from_numpy(c)

    def rescored() -> np.ndarray:
        picked = qs.top_k(qs.hamming_scores(query_bits, bits), k)
        exact = np.einsum("qd,qkd->qk", q, ranges.dequantize(codes[picked]))
        return np.take_along_axis(picked, np.argsort(-exact, axis=1)[:, :10], 1)

    jobs = {"fp32": lambda: torch.topk(torch.from_numpy(q) @ fp32.T, 10, dim=1),
            "int8": lambda: qs.top_k(ranges.scores(q, codes), 10),
            "binary": lambda: qs.top_k(qs.hamming_scores(query_bits, bits), 10),
            f"binary, top {k} rescored with int8": rescored}
    for d in truncations:
        short = (torch.from_numpy(np.ascontiguousarray(c[:, :d])), torch.from_numpy(np.ascontiguousarray(q[:, :d])))
        jobs[f"fp32, first {d} dimensions"] = lambda s=short: torch.topk(s[1] @ s[0].T, 10, dim=1)
    table = rate_table(interleaved(jobs, repeats), queries, "queries", "index")
    table["bytes per passage in memory"] = [4.0 * dims, float(dims), dims / 8, dims / 8, *(4.0 * d for d in truncations)]
    return table


def matmul_rate(size: int = 2048, repeats: int = 5) -> float:
    """The CPU's fp32 matrix-product rate in GFLOP/s (median of ``repeats`` ``size``² products)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    times = interleaved({"mm": lambda: a @ b}, repeats)["mm"]
    return 2 * size ** 3 / float(np.median(times)) / 1e9


def flops_per_token(config, tokens: float) -> float:
    """Multiply-adds × 2 per token of a BERT-style encoder's layers at ``tokens`` per sentence: the four
    attention projections, the feed-forward pair, and the attention scores and mix (embeddings and pooling
    are lookups and sums)."""
    h, i = config.hidden_size, config.intermediate_size
    return 2.0 * config.num_hidden_layers * (4 * h * h + 2 * h * i + 2 * tokens * h)


def shortcuts(speed: pd.DataFrame, quality: pd.DataFrame, encode: pd.DataFrame, search: pd.DataFrame,
              indexes: pd.DataFrame, static_kept: float, reference: str = "PyTorch fp32") -> pd.DataFrame:
    """One row per shortcut (``name``, ``family``, ``speed-up``, ``kept``), each against its own fp32
    reference: the inference variants (§ 3's median throughput; accuracy kept on the worse task), the static
    model against MiniLM (encoding; MRR@10 kept), the indexes against fp32 search (MRR@10 kept)."""
    median = speed["sentences/s (median)"]
    accuracy = quality.pivot(index="variant", columns="task", values="accuracy")
    kept = accuracy.div(accuracy.loc[reference]).min(axis=1)
    rows = [{"name": v, "family": "transformer, inference variant", "speed-up": median[v] / median[reference],
             "kept": float(kept[v])} for v in median.index if v != reference and v in kept.index]
    rate = encode["sentences/s (median)"]
    rows.append({"name": "static model (encoding)", "family": "static model vs MiniLM",
                 "speed-up": rate["static"] / rate["MiniLM fp32"], "kept": static_kept})
    found = search["queries/s (median)"]
    rows += [{"name": f"{n} (search)", "family": "index vs fp32 search", "speed-up": found[n] / found["fp32"],
              "kept": indexes.loc[n, "MRR@10"] / indexes.loc["fp32", "MRR@10"]}
             for n in found.index if n != "fp32"]
    return pd.DataFrame(rows)

