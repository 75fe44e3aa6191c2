"""Pair runs with another step kept in the run store: Matryoshka, mined hard negatives, two pair sets, the
cross-encoder (notebook 02).

* :func:`variant_or_load` trains :class:`~mtl_utils.training.matryoshka.MatryoshkaTrainer` or
  :class:`~mtl_utils.training.hard_negatives.HardNegativeTrainer` or
  :class:`~mtl_utils.training.pair_sets.PairSetsTrainer` once and reads the encoder back after. The key covers
  the configuration, base model, pairs, the variant's own settings (dimensions, the mined negatives, or the
  sets' sizes), this module's code and the code it trains with.
* :func:`cross_or_load` does the same for :class:`~mtl_utils.training.cross_encoder.CrossEncoderTrainer`.

The plain pair runs stay in :mod:`series.pair_runs`; every kind is written and read as one
(:func:`~series.pair_runs.write_pair_run`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mtl_utils.core import paths
from mtl_utils.training import contrastive, cross_encoder, hard_negatives, matryoshka, pair_sets, sentence_training
from mtl_utils.training.cross_encoder import CrossConfig, CrossEncoder, CrossEncoderTrainer
from mtl_utils.training.sentence_training import PairConfig, PairData, PairResult
from series import pair_runs, store
from series.pair_runs import load_pair_run, write_pair_run
from series.runs import code_fingerprint, library_versions

VARIANTS = ("matryoshka", "hard negatives", *pair_sets.SAMPLERS)


def variant_key(config: PairConfig | CrossConfig, pairs: PairData, variant: str, setting: Sequence[int]) -> str:
    """Cache key: configuration, base model files, pairs, the variant and its setting, code, library versions."""
    code = store.code_sha256([sys.modules[__name__], pair_runs, sentence_training, contrastive, matryoshka,
                              hard_negatives, cross_encoder, pair_sets])
    setting = hashlib.sha256(np.asarray(setting, dtype=np.int64).tobytes()).hexdigest()
    return store.key({"config": dataclasses.asdict(config), "base model": store.model_digest(config.model),
                      "pairs": pairs.digest(), "variant": variant, "setting": setting,
                      "code": code + code_fingerprint(), "versions": library_versions()})


def variant_or_load(config: PairConfig, pairs: PairData, variant: str, setting: Sequence[int],
                    force: bool = False, progress_bar: bool = True) -> PairResult:
    """A Matryoshka run (``setting``: its dimensions), a hard-negative run (``setting``: each pair's mined
    negative) or a run over pair sets (``round-robin`` or ``proportional``; ``setting``: the sets' sizes), trained
    or loaded from ``<cache>/pairs/<key>/``; a damaged entry is reported and retrained."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")

    def make() -> PairResult:
        if variant == "matryoshka":
            trainer = matryoshka.MatryoshkaTrainer(config, pairs, setting, progress_bar=progress_bar)
        elif variant == "hard negatives":
            trainer = hard_negatives.HardNegativeTrainer(config, pairs, setting, progress_bar=progress_bar)
        else:
            trainer = pair_sets.PairSetsTrainer(config, pairs, setting, variant, progress_bar=progress_bar)
        return trainer.fit()

    folder = paths.cache_dir() / "pairs" / variant_key(config, pairs, variant, setting)
    result, _ = store.load_or_make(folder, lambda f: load_pair_run(f, config), make, write_pair_run,
                                   what=f"{variant} run", redo="training it again", force=force)
    return result


def cross_or_load(config: CrossConfig, pairs: PairData, force: bool = False,
                  progress_bar: bool = True) -> PairResult:
    """A cross-encoder trained on labelled pairs, or loaded from ``<cache>/pairs/<key>/``; the key is
    :func:`variant_key`'s (the pairs' digest covers their labels)."""
    folder = paths.cache_dir() / "pairs" / variant_key(config, pairs, "cross-encoder", [])
    def load(f: Path) -> PairResult:
        return load_pair_run(f, config, CrossEncoder(config.model, config.max_length))

    result, _ = store.load_or_make(folder, load, lambda: CrossEncoderTrainer(config, pairs, progress_bar).fit(),
                                   write_pair_run, what="cross-encoder run", redo="training it again", force=force)
    return result
