"""Pair runs with another step kept in the run store: Matryoshka and mined hard negatives (notebook 02).

:func:`variant_or_load` trains :class:`~mtl_utils.training.matryoshka.MatryoshkaTrainer` or
:class:`~mtl_utils.training.hard_negatives.HardNegativeTrainer` once and reads the encoder back after. The key
covers the configuration, base model, pairs, the variant's own settings (dimensions, or the mined negatives),
this module's code and the code it trains with. The plain pair runs stay in :mod:`series.pair_runs` (their
keys, and so their cached runs, are unchanged).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from safetensors.torch import load_file, save_file

from mtl_utils.core import paths
from mtl_utils.modeling.encoder import SentenceEncoder
from mtl_utils.training import contrastive, hard_negatives, matryoshka, sentence_training
from mtl_utils.training.sentence_training import PairConfig, PairData, PairResult
from series import store
from series.runs import code_fingerprint, library_versions

VARIANTS = ("matryoshka", "hard negatives")


def variant_key(config: PairConfig, pairs: PairData, variant: str, setting: Sequence[int]) -> str:
    """Cache key: configuration, base model files, pairs, the variant and its setting, code, library versions."""
    code = store.code_sha256([sys.modules[__name__], sentence_training, contrastive, matryoshka, hard_negatives])
    setting = hashlib.sha256(np.asarray(setting, dtype=np.int64).tobytes()).hexdigest()
    return store.key({"config": dataclasses.asdict(config), "base model": store.model_digest(config.model),
                      "pairs": pairs.digest(), "variant": variant, "setting": setting,
                      "code": code + code_fingerprint(), "versions": library_versions()})


def variant_or_load(config: PairConfig, pairs: PairData, variant: str, setting: Sequence[int],
                    force: bool = False, progress_bar: bool = True) -> PairResult:
    """A Matryoshka run (``setting``: its dimensions) or a hard-negative run (``setting``: each pair's mined
    negative), trained or loaded from ``<cache>/pairs/<key>/``; a damaged entry is reported and retrained."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")

    def make() -> PairResult:
        if variant == "matryoshka":
            trainer = matryoshka.MatryoshkaTrainer(config, pairs, setting, progress_bar=progress_bar)
        else:
            trainer = hard_negatives.HardNegativeTrainer(config, pairs, setting, progress_bar=progress_bar)
        return trainer.fit()

    def load(folder: Path) -> PairResult:
        encoder = SentenceEncoder(config.model, max_length=config.max_length)
        encoder.load_state_dict(load_file(str(folder / "encoder.safetensors")))
        meta = json.loads((folder / "result.json").read_text())
        return PairResult(encoder.eval(), config, meta["losses"], meta["train_seconds"], cached=True)

    def write(result: PairResult, tmp: Path) -> None:
        save_file({k: v.detach().contiguous() for k, v in result.encoder.state_dict().items()},
                  str(tmp / "encoder.safetensors"))
        (tmp / "result.json").write_text(json.dumps({"losses": result.losses,
                                                     "train_seconds": result.train_seconds}))

    folder = paths.cache_dir() / "pairs" / variant_key(config, pairs, variant, setting)
    result, _ = store.load_or_make(folder, load, make, write, what=f"{variant} run", redo="training it again",
                                   force=force)
    return result
