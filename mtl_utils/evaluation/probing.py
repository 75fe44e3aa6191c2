"""Frozen-encoder probes: texts embedded once with every pooling (:func:`embed_poolings`), a logistic regression per
pooling: :func:`probe` chooses ``C`` on validation and scores the test split (:func:`probe_cv`: by cross-validation, for
label budgets); :func:`bag_of_words_probe`: no encoder; :func:`randomly_initialised`: no pretraining."""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import sparse
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits
from transformers import AutoModel

from mtl_utils.core.batching import eval_mode, length_sorted_batches
from mtl_utils.core.progress import progress
from mtl_utils.evaluation.metrics import scores
from mtl_utils.modeling.encoder import SentenceEncoder, check_batch_size, check_sentences
from mtl_utils.modeling.pooling import POOLING_MODES, pool

C_GRID: tuple[float, ...] = (0.1, 1.0, 10.0)


def check_modes(modes: Sequence[str]) -> tuple[str, ...]:
    modes = tuple(modes)
    unknown = [m for m in modes if m not in POOLING_MODES]
    if unknown or not modes:
        raise ValueError(f"unknown pooling {unknown or '(none given)'}; choose from {POOLING_MODES}")
    return modes


def embed_poolings(encoder: SentenceEncoder, texts: Sequence[str], modes: Sequence[str] = POOLING_MODES,
                   batch_size: int = 32, show_progress: bool | None = None, desc: str = "embed") -> dict[str, np.ndarray]:
    """``{mode: [n, hidden]}``: ``texts``' raw pooled vectors per mode (input order), one transformer pass per batch."""
    modes = check_modes(modes)
    tokenized = encoder.token_ids(check_sentences(texts))
    batches = length_sorted_batches(tokenized.lengths, check_batch_size(batch_size))
    out = {m: torch.empty((len(tokenized), encoder.hidden_size)) for m in modes}
    show = len(batches) >= 20 if show_progress is None else show_progress
    with eval_mode(encoder), torch.inference_mode():
        for idx in progress(batches, desc=desc, unit="batch", disable=not show):
            batch = encoder.collate([tokenized.ids[i] for i in idx])
            tokens = encoder.transformer(**batch).last_hidden_state
            for mode in modes:
                out[mode][torch.from_numpy(idx)] = pool(tokens, batch["attention_mask"], mode).float().cpu()
    return {m: v.numpy() for m, v in out.items()}


def randomly_initialised(encoder: SentenceEncoder, seed: int = 0) -> SentenceEncoder:
    """``encoder`` with its transformer re-initialised at random (same architecture, seeded): pretraining's worth."""
    config = encoder.transformer.config
    with torch.random.fork_rng():  # the caller's random state is left as it was
        torch.manual_seed(seed)
        transformer = AutoModel.from_config(config)
    if getattr(transformer, "pooler", None) is not None:
        transformer.pooler = None  # as for the pretrained encoder: the [CLS] pooler is not used
    transformer.eval()
    encoder.transformer = transformer.to(encoder.device)
    return encoder


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Each row divided by its Euclidean length (rows of zeros stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


@dataclass
class ProbeResult:
    """A fitted probe: test scores, the chosen ``C`` and validation accuracy per ``C``, which test examples it got
    right, whether every fit converged, and the classifier (``model``: notebook 01's sentence explorer)."""

    accuracy: float
    macro_f1: float
    C: float
    validation: dict[float, float]
    correct: np.ndarray = field(repr=False)
    converged: bool = True
    model: LogisticRegression | None = field(default=None, repr=False, compare=False)


def _fit(train_X, train_y, C: float, max_iter: int, seed: int) -> tuple[LogisticRegression, bool]:
    model = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(train_X, train_y)
    return model, not any(issubclass(w.category, ConvergenceWarning) for w in caught)


def _matrix(X):
    """Dense features as a NumPy array; sparse ones (bag of words) as they are."""
    return X if sparse.issparse(X) else np.asarray(X)


def _best_C(validation: Mapping[float, float]) -> float:
    """The ``C`` with the best validation accuracy; ties go to the ``C`` closest to 1."""
    return max(validation, key=lambda c: (validation[c], -abs(np.log10(c))))


def _scored(model: LogisticRegression, C: float, validation: dict[float, float], test_X, test_y,
            converged: bool) -> ProbeResult:
    """The chosen probe scored on the test split."""
    pred = model.predict(_matrix(test_X))
    s = scores(np.asarray(test_y), pred)
    return ProbeResult(s["accuracy"], s["macro_f1"], C, validation, pred == np.asarray(test_y), converged, model)


def probe(train_X: np.ndarray, train_y: np.ndarray, val_X: np.ndarray, val_y: np.ndarray, test_X: np.ndarray,
          test_y: np.ndarray, C_grid: Sequence[float] = C_GRID, max_iter: int = 2000, seed: int = 0,
          threads: int | None = 1) -> ProbeResult:
    """Fit a logistic regression on the train split's vectors for each ``C`` in ``C_grid`` (poolings differ in scale,
    so each gets its own), keep the best on validation, score it on test; ``threads`` caps BLAS (``None``: no cap)."""
    fits, validation, converged = {}, {}, True
    with threadpool_limits(threads):
        for C in C_grid:
            model, ok = _fit(_matrix(train_X), np.asarray(train_y), C, max_iter, seed)
            fits[C], converged = model, converged and ok
            validation[C] = float(np.mean(model.predict(_matrix(val_X)) == np.asarray(val_y)))
    best = _best_C(validation)
    return _scored(fits[best], best, validation, test_X, test_y, converged)


def probe_cv(train_X: np.ndarray, train_y: np.ndarray, test_X: np.ndarray, test_y: np.ndarray,
             C_grid: Sequence[float] = C_GRID, folds: int = 5, max_iter: int = 2000, seed: int = 0,
             threads: int | None = 1) -> ProbeResult:
    """:func:`probe` without a validation split (label budgets): ``C`` by stratified ``folds``-fold cross-validation on
    the training examples, refitted on all; ``validation`` holds the mean cross-validated accuracy per ``C``."""
    train_X, train_y = _matrix(train_X), np.asarray(train_y)
    smallest = int(min(np.unique(train_y, return_counts=True)[1])) if train_y.size else 0
    if smallest < 2:
        raise ValueError(f"cross-validation needs at least 2 training examples of every class, the rarest has "
                         f"{smallest}: give the probe more labels")
    splits = list(StratifiedKFold(min(folds, smallest), shuffle=True, random_state=seed).split(train_X, train_y))
    validation, converged = {}, True
    with threadpool_limits(threads):
        for C in C_grid:
            accuracies = []
            for fit_rows, held_out in splits:
                model, ok = _fit(train_X[fit_rows], train_y[fit_rows], C, max_iter, seed)
                converged = converged and ok
                accuracies.append(float(np.mean(model.predict(train_X[held_out]) == train_y[held_out])))
            validation[C] = float(np.mean(accuracies))
        best = _best_C(validation)
        model, ok = _fit(train_X, train_y, best, max_iter, seed)
    return _scored(model, best, validation, test_X, test_y, converged and ok)


def bag_of_words_probe(texts: Mapping[str, Sequence[str]], labels: Mapping[str, np.ndarray], seed: int = 0,
                       **probe_kwargs) -> ProbeResult:
    """The same probe on TF-IDF words and word pairs (seen at least twice in train): what vocabulary alone gets."""
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    train_X = vectorizer.fit_transform(list(texts["train"]))
    return probe(train_X, labels["train"], vectorizer.transform(list(texts["validation"])), labels["validation"],
                 vectorizer.transform(list(texts["test"])), labels["test"], seed=seed, **probe_kwargs)
