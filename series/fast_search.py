"""Notebook 06 § 5's experiments: a static model distilled from the encoder and trained on headlines (cached
in the run store), search with smaller vectors, and the timings of encoding and search in one process.

* :func:`static_runs`: :func:`~mtl_utils.serving.static_embedding.distill`, then a learning curve on the
  validation headlines that picks the training budget, then one trained table per seed at that budget;
* :func:`index_scores`: the benchmark's score matrices for each way of storing the corpus (fp32, int8,
  binary, binary rescored, fewer dimensions), with the bytes each keeps in memory;
* :func:`encode_speed`, :func:`search_speed`, :func:`matmul_rate`: timings, medians over interleaved repeats;
* :func:`flops_per_token`: what one token costs a BERT-style encoder, for the bound the CPU's rate sets.
"""
from __future__ import annotations

import copy
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mtl_utils.core import paths
from mtl_utils.core.digests import texts_sha256
from mtl_utils.data.retrieval import RetrievalSet
from mtl_utils.evaluation import retrieval
from mtl_utils.evaluation.retrieval import rank_metrics
from mtl_utils.modeling.encoder import SentenceEncoder
from mtl_utils.serving import quantized_search as qs
from mtl_utils.serving import static_embedding
from mtl_utils.serving.static_embedding import StaticEncoder, distill, train_static
from series import store
from series.runs import library_versions, training_modules

CURVE_EPOCHS, QUICK_CURVE_EPOCHS = 30, 3  # the learning curve's length; the budget is its best epoch


@dataclass
class StaticRuns:
    """The distilled table, the learning curve (``epoch``, ``loss``, ``validation MRR@10``), the budget it
    picked, one trained model per seed, and whether they came from the run cache."""

    distilled: StaticEncoder
    curve: pd.DataFrame
    epochs: int
    trained: dict[int, StaticEncoder]
    cached: bool


def reciprocal_ranks(scores: np.ndarray, data: RetrievalSet) -> np.ndarray:
    """Each query's MRR@10 term (1 / rank of its passage, 0 beyond the tenth)."""
    return rank_metrics(scores, data)["MRR@10"].to_numpy()


def static_scores(model: StaticEncoder, data: RetrievalSet) -> np.ndarray:
    return model.encode(data.queries) @ model.encode(data.passages).T


def static_runs(encoder: SentenceEncoder, headlines: Sequence[str], sentences: Sequence[Sequence[str]],
                validation: RetrievalSet, seeds: Sequence[int], quick: bool = False, dims: int = 256,
                pieces: Sequence[int] | None = None, batch_size: int = 128, force: bool = False) -> StaticRuns:
    """Distil ``encoder``, trace the learning curve with the first seed on ``validation``, train every seed
    for the best epoch's budget in batches of ``batch_size``; cached under ``<cache>/static/<key>/``
    (``force``: again)."""
    epochs = QUICK_CURVE_EPOCHS if quick else CURVE_EPOCHS
    code = store.code_sha256([*training_modules(static_embedding, retrieval), sys.modules[__name__]])
    key = store.key({"encoder": encoder.fingerprint(), "dims": dims, "seeds": list(seeds), "curve": epochs,
                     "headlines": texts_sha256(headlines), "groups": [len(group) for group in sentences],
                     "sentences": texts_sha256([s for group in sentences for s in group]),
                     "validation": [texts_sha256(validation.query_ids), texts_sha256(validation.queries),
                                    texts_sha256(validation.corpus_ids), texts_sha256(validation.passages),
                                    {q: sorted(r) for q, r in validation.relevant.items()}],
                     "pieces": None if pieces is None else sorted(set(pieces)), "batch": batch_size, "code": code,
                     "versions": library_versions()})

    def make() -> StaticRuns:
        base = distill(encoder, dims, pieces=pieces)
        best, rows = {}, []

        def score(epoch: int, model: StaticEncoder) -> None:
            rows.append({"epoch": epoch, "validation MRR@10": reciprocal_ranks(
                static_scores(model, validation), validation).mean()})
            if rows[-1]["validation MRR@10"] > best.get("mrr", -1):
                best.update(mrr=rows[-1]["validation MRR@10"], epoch=epoch, model=copy.deepcopy(model))

        first = copy.deepcopy(base)
        losses = train_static(first, headlines, sentences, epochs, batch_size, seed=seeds[0], after_epoch=score)
        curve = pd.DataFrame(rows).assign(loss=losses)
        trained = {seeds[0]: best["model"]}
        for seed in seeds[1:]:
            trained[seed] = copy.deepcopy(base)
            train_static(trained[seed], headlines, sentences, best["epoch"], batch_size, seed=seed)
        return StaticRuns(base, curve, best["epoch"], trained, False)

    def write(runs: StaticRuns, tmp: Path) -> None:
        runs.distilled.save(tmp / "distilled")
        for seed, model in runs.trained.items():
            np.save(tmp / f"seed-{seed}.npy", model.bag.weight.detach().numpy())
        (tmp / "runs.json").write_text(json.dumps({"epochs": runs.epochs, "curve": runs.curve.to_dict("list")}))

    def load(folder: Path) -> StaticRuns:
        base = StaticEncoder.load(folder / "distilled")
        meta = json.loads((folder / "runs.json").read_text())
        trained = {s: StaticEncoder(torch.from_numpy(np.load(folder / f"seed-{s}.npy", allow_pickle=False)),
                                    base.tokenizer) for s in seeds}
        return StaticRuns(base, pd.DataFrame(meta["curve"]), meta["epochs"], trained, True)

    runs, _ = store.load_or_make(paths.cache_dir() / "static" / key, load, make, write, what="static model",
                                 redo="training it again", force=force)
    return runs


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
        q, c = (v[:, :d] / np.linalg.norm(v[:, :d], axis=1, keepdims=True) for v in (queries, corpus))
        out[f"fp32, first {d} dimensions"] = (q @ c.T, 4.0 * d)
    return out


def timed_code() -> list:
    """The modules § 5's timings depend on (replayed while their code is unchanged): this one, and the static
    model's and the indexes' with everything they import (the encoder included)."""
    return [sys.modules[__name__], *training_modules(static_embedding, qs)]


def _interleaved(jobs: Mapping[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
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


def _rates(times: Mapping[str, list[float]], items: int, unit: str, what: str) -> pd.DataFrame:
    return pd.DataFrame([{f"{unit}/s (median)": items / float(np.median(t)),
                          f"{unit}/s (slowest)": items / max(t), f"{unit}/s (fastest)": items / min(t)}
                         for t in times.values()], index=pd.Index(list(times), name=what))


def encode_speed(encoders: Mapping[str, Callable[[list[str]], object]], texts: Sequence[str],
                 repeats: int = 5) -> pd.DataFrame:
    """Sentences per second of each encoder on ``texts`` (median, slowest and fastest repeat), in one process."""
    return _rates(_interleaved({n: (lambda f=f: f(list(texts))) for n, f in encoders.items()}, repeats),
                  len(texts), "sentences", "encoder")


def search_speed(dims: int = 384, corpus: int = 100_000, queries: int = 64, k: int = 40, repeats: int = 5,
                 truncations: Sequence[int] = (256, 128, 64), seed: int = 0) -> pd.DataFrame:
    """Queries per second of exact search over ``corpus`` random unit vectors (search time does not depend on
    what the vectors mean), top 10 returned: fp32, int8, binary, binary with its top ``k`` rescored, and fp32
    with only the first ``truncations`` dimensions."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((corpus, dims), dtype=np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
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
    table = _rates(_interleaved(jobs, repeats), queries, "queries", "index")
    table["bytes per passage in memory"] = [4.0 * dims, float(dims), dims / 8, dims / 8, *(4.0 * d for d in truncations)]
    return table


def matmul_rate(size: int = 2048, repeats: int = 5) -> float:
    """The CPU's fp32 matrix-product rate in GFLOP/s (median of ``repeats`` ``size``² products)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    times = _interleaved({"mm": lambda: a @ b}, repeats)["mm"]
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

