"""Notebook 06 § 5's static model kept in the run store: :func:`~mtl_utils.serving.static_embedding.distill`,
then a learning curve on the validation headlines that picks the training budget, then one trained table per
seed at that budget (:func:`static_runs`), keyed on this module's code and what it imports, no more.
"""
from __future__ import annotations

import copy
import json
import sys
from collections.abc import Sequence
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
