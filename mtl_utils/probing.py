"""Frozen-encoder probes: embed texts once with every pooling, then fit a logistic regression per pooling.

:func:`embed_poolings` runs the transformer once per batch and pools the same token vectors with each
mode, so comparing ``mean``, ``cls`` and ``max`` costs one pass over the data, not three.
:func:`cached_poolings` stores the result under :func:`mtl_utils.paths.cache_dir` (train-or-load).
:func:`probe` scores one set of vectors; :func:`compare_poolings` and :func:`pooling_table` do all
modes, raw and L2-normalised, and lay the scores out as a DataFrame.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from threadpoolctl import threadpool_limits
from tqdm import tqdm  # plain text bars: they render in JupyterLab, papermill output and on the web

from . import paths
from .encoder import SentenceEncoder, check_sentences
from .pooling import POOLING_MODES, pool

VARIANTS: tuple[str, ...] = ("raw", "l2")
VARIANT_NAMES: dict[str, str] = {"raw": "raw", "l2": "L2-normalised"}


def _check_modes(modes: Sequence[str]) -> tuple[str, ...]:
    modes = tuple(modes)
    unknown = [m for m in modes if m not in POOLING_MODES]
    if unknown or not modes:
        raise ValueError(f"unknown pooling {unknown or '(none given)'}; choose from {POOLING_MODES}")
    return modes


def embed_poolings(
    encoder: SentenceEncoder,
    texts: Sequence[str],
    modes: Sequence[str] = POOLING_MODES,
    batch_size: int = 32,
    show_progress: bool | None = None,
    desc: str = "embed",
) -> dict[str, np.ndarray]:
    """Sentence vectors of ``texts`` for each pooling mode: ``{mode: [n, hidden]}``, in input order.

    One transformer pass per batch (texts sorted by length, as in :meth:`SentenceEncoder.encode`), every
    mode pooled from the same token vectors. The vectors are the raw pooled ones: the encoder's own
    pooling, projection and normalisation settings are not applied. The progress bar (from 20 batches
    on, or with ``show_progress``) updates at most every 10 s, which keeps executed notebooks small.
    """
    texts = check_sentences(texts)
    modes = _check_modes(modes)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    hidden = encoder.hidden_size
    out = {m: torch.empty((len(texts), hidden)) for m in modes}
    if not texts:
        return {m: v.numpy() for m, v in out.items()}
    encoded = encoder.tokenizer(texts, truncation=True, max_length=encoder.max_length)
    features = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded]
    lengths = np.array([len(ids) for ids in encoded["input_ids"]])
    order = np.argsort(-lengths, kind="stable")
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if show_progress is None:
        show_progress = len(batches) >= 20
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.inference_mode():
            for idx in tqdm(batches, desc=desc, unit="batch", disable=not show_progress, mininterval=10):
                batch = encoder.tokenizer.pad({k: [encoded[k][i] for i in idx] for k in features}, return_tensors="pt")
                batch = {k: v.to(encoder.device) for k, v in batch.items()}
                tokens = encoder.transformer(**batch).last_hidden_state
                rows = torch.from_numpy(idx)
                for mode in modes:
                    out[mode][rows] = pool(tokens, batch["attention_mask"], mode).float().cpu()
    finally:
        encoder.train(was_training)
    return {m: v.numpy() for m, v in out.items()}


@dataclass
class Embedded:
    """What :func:`cached_poolings` returns: the vectors per mode, where they are stored, and how they came."""

    vectors: dict[str, np.ndarray]
    path: Path
    from_cache: bool
    seconds: float

    def __getitem__(self, mode: str) -> np.ndarray:
        return self.vectors[mode]


def embedding_key(encoder: SentenceEncoder, texts: Sequence[str], modes: Sequence[str]) -> str:
    """A short hash of everything the vectors depend on: model, max length, modes and the texts themselves."""
    digest = hashlib.sha1()
    digest.update(json.dumps([encoder.model_name, encoder.max_length, sorted(modes)]).encode())
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    return digest.hexdigest()[:16]


def cached_poolings(
    encoder: SentenceEncoder,
    texts: Sequence[str],
    name: str,
    modes: Sequence[str] = POOLING_MODES,
    batch_size: int = 32,
    recompute: bool = False,
    cache: str | Path | None = None,
    show_progress: bool | None = None,
) -> Embedded:
    """:func:`embed_poolings`, stored as ``<cache>/<name>-<model>-<key>.npz`` and loaded from there next time.

    ``cache`` defaults to ``paths.cache_dir() / "embeddings"``; ``recompute`` ignores (and overwrites) a
    stored file. The key (:func:`embedding_key`) changes with the model, max length, modes or any text.
    """
    texts = check_sentences(texts)
    modes = _check_modes(modes)
    folder = Path(cache) if cache else paths.cache_dir() / "embeddings"
    model_slug = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder.model_name).strip("_")[-60:]
    path = folder / f"{name}-{model_slug}-{embedding_key(encoder, texts, modes)}.npz"
    start = time.perf_counter()
    if path.is_file() and not recompute:
        with np.load(path) as stored:
            vectors = {m: stored[m] for m in modes}
        return Embedded(vectors, path, True, time.perf_counter() - start)
    vectors = embed_poolings(encoder, texts, modes, batch_size, show_progress, desc=name)
    seconds = time.perf_counter() - start
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        np.savez(handle, **vectors)
    tmp.replace(path)
    return Embedded(vectors, path, False, seconds)


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Each row divided by its Euclidean length (rows of zeros stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Accuracy and macro-averaged F1 (every class counts the same, whatever its size)."""
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }


def probe(
    train_X: np.ndarray,
    train_y: np.ndarray,
    test_X: np.ndarray,
    test_y: np.ndarray,
    C: float = 1.0,
    max_iter: int = 3000,
    seed: int = 0,
    threads: int | None = 1,
) -> dict[str, float]:
    """Fit a logistic regression on frozen vectors of the train split; accuracy and macro-F1 on the test split.

    Convergence warnings are caught rather than printed: ``converged`` is 0.0 when the solver stopped at
    ``max_iter``, else 1.0, so a table can show it. ``threads`` caps the BLAS/OpenMP threads of the fit
    (``None``: no cap): with a few hundred features one thread is as fast, and on a busy machine extra
    threads fight over the cores (measured 10x slower on a shared 2-core box). Results do not change.
    """
    model = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(threads):
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(np.asarray(train_X), np.asarray(train_y))
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return {**scores(np.asarray(test_y), model.predict(np.asarray(test_X))), "converged": float(converged)}


def majority_scores(train_y: np.ndarray, test_y: np.ndarray) -> dict[str, float]:
    """Scores of always predicting the most frequent training label (the floor any probe must beat)."""
    values, counts = np.unique(np.asarray(train_y), return_counts=True)
    return scores(np.asarray(test_y), np.full(len(test_y), values[np.argmax(counts)]))


def compare_poolings(
    train: Mapping[str, np.ndarray],
    train_y: np.ndarray,
    test: Mapping[str, np.ndarray],
    test_y: np.ndarray,
    variants: Sequence[str] = VARIANTS,
    **probe_kwargs,
) -> dict[str, dict[str, dict[str, float]]]:
    """:func:`probe` for every pooling mode in ``train``/``test`` and every variant (``raw``, ``l2``).

    Returns ``{variant: {mode: {"accuracy", "macro_f1", "converged"}}}``.
    """
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise ValueError(f"unknown variant(s) {sorted(unknown)}; choose from {VARIANTS}")
    results: dict[str, dict[str, dict[str, float]]] = {}
    for variant in variants:
        prep = l2_normalize if variant == "l2" else np.asarray
        results[variant] = {
            mode: probe(prep(train[mode]), train_y, prep(test[mode]), test_y, **probe_kwargs) for mode in train
        }
    return results


def accuracy_interval(accuracy: float, n: int, z: float = 1.96) -> float:
    """Half-width of the normal-approximation 95% interval of an accuracy measured on ``n`` examples.

    It says how far the same classifier's accuracy could move on another test set of the same size, so
    two accuracies closer than this are not told apart by the test set.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return float(z * np.sqrt(accuracy * (1 - accuracy) / n))


def pooling_table(
    results: Mapping[str, Mapping[str, Mapping[str, Mapping[str, float]]]],
    baselines: Mapping[str, Mapping[str, float]],
    n_test: Mapping[str, int] | None = None,
) -> pd.DataFrame:
    """One row per task, vectors (raw / L2-normalised) and pooling, plus the majority-class row per task.

    ``results``: ``{task: {variant: {mode: scores}}}`` as :func:`compare_poolings` gives per task;
    ``baselines``: ``{task: majority_scores(...)}``. Columns: accuracy, macro-F1, with ``n_test`` (test
    examples per task) also ``accuracy ±95%`` (:func:`accuracy_interval`), and ``converged`` when any
    fit stopped at its iteration limit.
    """
    rows = []
    for task, by_variant in results.items():
        for variant, by_mode in by_variant.items():
            for mode, s in by_mode.items():
                rows.append({"task": task, "vectors": VARIANT_NAMES.get(variant, variant), "pooling": mode,
                             "accuracy": s["accuracy"], "macro-F1": s["macro_f1"],
                             "converged": bool(s.get("converged", 1.0))})
        base = baselines[task]
        rows.append({"task": task, "vectors": "-", "pooling": "majority class", "accuracy": base["accuracy"],
                     "macro-F1": base["macro_f1"], "converged": True})
    table = pd.DataFrame(rows)
    if n_test is not None:
        table.insert(4, "accuracy ±95%", [accuracy_interval(a, n_test[t]) for t, a in zip(table["task"], table["accuracy"])])
    table = table.set_index(["task", "vectors", "pooling"])
    if table["converged"].all():
        table = table.drop(columns="converged")
    return table


def describe_poolings(table: pd.DataFrame) -> str:
    """Markdown sentences on a :func:`pooling_table` (with its ``accuracy ±95%`` column): per task, the best
    row, how each pooling compares with mean pooling and the two vector variants with each other, and
    whether each gap exceeds the 95% interval of one accuracy (a rough yardstick, not a paired test).
    """
    if "accuracy ±95%" not in table.columns:
        raise ValueError("describe_poolings needs the 'accuracy ±95%' column: pass n_test to pooling_table")
    lines = []
    for task in dict.fromkeys(table.index.get_level_values("task")):
        part = table.loc[task].drop(index="majority class", level="pooling")
        base = table.loc[(task, "-", "majority class"), "accuracy"]
        (best_vectors, best_mode), best = part["accuracy"].idxmax(), part["accuracy"].max()
        lines.append(f"- **{task}**: best {best_mode} pooling on {best_vectors} vectors, accuracy {best:.3f} "
                     f"(±{part.loc[(best_vectors, best_mode), 'accuracy ±95%']:.3f}) against {base:.3f} for "
                     f"the majority class.")
        for vectors in dict.fromkeys(part.index.get_level_values("vectors")):
            mean_acc = part.loc[(vectors, "mean"), "accuracy"] if (vectors, "mean") in part.index else None
            if mean_acc is None:
                continue
            half = part.loc[(vectors, "mean"), "accuracy ±95%"]
            gaps = []
            for mode in part.loc[vectors].index:
                if mode == "mean":
                    continue
                gap = mean_acc - part.loc[(vectors, mode), "accuracy"]
                verdict = "beyond" if abs(gap) > half else "within"
                gaps.append(f"{mode} {gap:+.3f} ({verdict} ±{half:.3f})")
            lines.append(f"  - {vectors} vectors, mean minus other poolings: " + ", ".join(gaps) + ".")
        variants = list(dict.fromkeys(part.index.get_level_values("vectors")))
        if len(variants) == 2:
            first, second = variants
            gaps = []
            for mode in dict.fromkeys(part.index.get_level_values("pooling")):
                if (first, mode) in part.index and (second, mode) in part.index:
                    gap = part.loc[(second, mode), "accuracy"] - part.loc[(first, mode), "accuracy"]
                    half = part.loc[(first, mode), "accuracy ±95%"]
                    gaps.append(f"{mode} {gap:+.3f} ({'beyond' if abs(gap) > half else 'within'} ±{half:.3f})")
            lines.append(f"  - {second} minus {first} vectors: " + ", ".join(gaps) + ".")
    return "\n".join(lines)
