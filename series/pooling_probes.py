"""Pooled vectors kept in the run store, and the probe tables notebook 01 shows.

* :func:`cached_poolings`: :func:`mtl_utils.evaluation.probing.embed_poolings`, stored as an entry of the
  run store keyed by the encoder's weights (its fingerprint), its settings and the texts: a fine-tuned or
  reloaded encoder never reads another encoder's vectors;
* :func:`compare_poolings`: a probe for every pooling mode, raw and L2-normalised;
* :func:`probe_table`: every pooling with Wilson intervals and a paired test against mean pooling.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mtl_utils.core import paths
from mtl_utils.core.digests import texts_sha256
from mtl_utils.evaluation.probing import ProbeResult, check_modes, embed_poolings, l2_normalize, probe
from mtl_utils.modeling.encoder import SentenceEncoder, check_sentences
from mtl_utils.modeling.pooling import POOLING_MODES
from series import store
from series.comparisons import compare_correct
from series.statistics import wilson_interval

VARIANTS: tuple[str, ...] = ("raw", "l2")
VARIANT_NAMES: dict[str, str] = {"raw": "raw", "l2": "L2-normalised"}


VECTORS = "vectors.npz"  # the file of a stored embeddings entry


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
    """A hash of everything the vectors depend on: the encoder's weights and settings (its fingerprint), the
    modes and the texts (length-prefixed, so no two lists of texts share a key)."""
    return store.key({"encoder": encoder.fingerprint(), "modes": sorted(modes), "texts": texts_sha256(texts)}, 20)


def cached_poolings(encoder: SentenceEncoder, texts: Sequence[str], name: str, modes: Sequence[str] = POOLING_MODES,
                    batch_size: int = 32, recompute: bool = False, cache: str | Path | None = None,
                    show_progress: bool | None = None) -> Embedded:
    """:func:`embed_poolings`, stored as the entry ``<cache>/<name>-<key>/`` (``vectors.npz``) and loaded from
    there next time.

    ``cache`` defaults to ``<cache_dir>/embeddings``; ``recompute`` ignores (and overwrites) a stored entry.
    The entry is kept by the run store (:func:`series.store.load_or_make`): a damaged one is reported
    and computed again, and writers publish whole entries, so concurrent writers never interleave."""
    texts = check_sentences(texts)
    modes = check_modes(modes)
    root = Path(cache) if cache else paths.cache_dir() / "embeddings"
    folder = root / f"{name}-{embedding_key(encoder, texts, modes)}"
    start = time.perf_counter()

    def load(entry: Path) -> dict[str, np.ndarray]:
        with np.load(entry / VECTORS) as stored:
            vectors = {m: stored[m] for m in modes}
        if any(v.shape != (len(texts), encoder.hidden_size) for v in vectors.values()):
            raise store.DamagedEntry(f"the vectors are not {len(texts)} x {encoder.hidden_size}")
        return vectors

    def save(vectors: dict[str, np.ndarray], tmp: Path) -> None:
        with open(tmp / VECTORS, "wb") as handle:
            np.savez(handle, **vectors)

    vectors, from_cache = store.load_or_make(
        folder, load, lambda: embed_poolings(encoder, texts, modes, batch_size, show_progress, desc=name), save,
        what="embeddings", redo="computing them again", force=recompute)
    return Embedded(vectors, folder / VECTORS, from_cache, time.perf_counter() - start)


def compare_poolings(vectors: Mapping[str, Mapping[str, np.ndarray]], labels: Mapping[str, np.ndarray],
                     variants: Sequence[str] = VARIANTS, **probe_kwargs) -> dict[str, dict[str, ProbeResult]]:
    """:func:`probe` for every pooling mode and variant (``raw``, ``l2``): ``vectors[split][mode]`` and
    ``labels[split]`` for the splits train, validation and test. Returns ``{variant: {mode: ProbeResult}}``."""
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise ValueError(f"unknown variant(s) {sorted(unknown)}; choose from {VARIANTS}")
    results: dict[str, dict[str, ProbeResult]] = {}
    for variant in variants:
        prep = l2_normalize if variant == "l2" else np.asarray
        results[variant] = {mode: probe(prep(vectors["train"][mode]), labels["train"], prep(vectors["validation"][mode]),
                                        labels["validation"], prep(vectors["test"][mode]), labels["test"], **probe_kwargs)
                            for mode in vectors["train"]}
    return results


def probe_table(results: Mapping[str, Mapping[str, Mapping[str, ProbeResult]]],
                baselines: Mapping[str, Mapping[str, float]], reference: tuple[str, str] = ("raw", "mean")) -> pd.DataFrame:
    """One row per task, vectors and pooling, plus the majority-class row per task: test accuracy with its 95 %
    Wilson interval, macro-F1, the chosen ``C``, and the paired comparison with ``reference`` (raw mean
    pooling): the accuracy difference with its exact paired interval, McNemar's p and what the interval rules out
    (``excludes beyond``).

    ``results``: ``{task: {variant: {mode: ProbeResult}}}``; ``baselines``: ``{task: majority scores}``."""
    rows = []
    for task, by_variant in results.items():
        ref = by_variant[reference[0]][reference[1]].correct
        for variant, by_mode in by_variant.items():
            for mode, r in by_mode.items():
                lo, hi = wilson_interval(int(r.correct.sum()), len(r.correct))
                row = {"task": task, "vectors": VARIANT_NAMES.get(variant, variant), "pooling": mode,
                       "accuracy": r.accuracy, "low": lo, "high": hi, "macro-F1": r.macro_f1, "C": r.C,
                       "converged": r.converged}
                if (variant, mode) != reference:
                    paired = compare_correct(f"{variant}/{mode}", r.correct, "reference", ref, task)
                    row.update({"vs mean": paired["difference"], "vs mean low": paired["low"],
                                "vs mean high": paired["high"], "McNemar p": paired["p-value"],
                                "excludes beyond": paired["excludes beyond"]})
                rows.append(row)
        base = baselines[task]
        rows.append({"task": task, "vectors": "-", "pooling": "majority class", "accuracy": base["accuracy"],
                     "macro-F1": base["macro_f1"], "converged": True})
    return pd.DataFrame(rows)
