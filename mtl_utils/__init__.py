"""Shared code of the sentence-transformers and multi-task learning notebook series.

The package is in layers, one subpackage each; a module imports only from its own layer or the layers before
it (``tests/test_layout.py`` enforces it):

1. :mod:`mtl_utils.core`: paths, bundled assets, device and threads, seeding, progress bars, batching, digests
   and atomic writes;
2. :mod:`mtl_utils.data`: the tasks (topic, sentiment, genre) and their checks;
3. :mod:`mtl_utils.modeling`: pooling, the sentence encoder, task heads, the multi-task model and its
   checkpoints, the model's anatomy;
4. :mod:`mtl_utils.evaluation`: metrics, paired comparisons, frozen-encoder probes, embedding geometry (below
   training, because a run scores itself);
5. :mod:`mtl_utils.training`: the configuration, task sampling, freezing and its cache, optimizer, the
   ``Trainer``, cached runs, the series' protocol;
6. :mod:`mtl_utils.serving`: inference variants, speed, the command line;
7. :mod:`mtl_utils.notebook`: what only the notebooks call: experiments, verdicts, figures, run records.

The series' own machinery (README generation, the static book, the notebook runner) is not here: it teaches
nothing and lives in ``tools/``.

Notebooks import from this module alone (``from mtl_utils import Trainer, plots``): the names below are
re-exported lazily (a module loads when a name from it is first used), so ``python -m mtl_utils.serving.predict``
does not import matplotlib.
"""
from __future__ import annotations

import importlib
from typing import Any

# Submodules a notebook uses as a namespace (``experiments.run_grid``): name -> module. The subpackages
# themselves (``from mtl_utils import data, serving``) need no entry: ``data`` re-exports the tasks, ``serving``
# the inference variants.
MODULES = {
    "paths": "core.paths", "assets": "core.assets", "runtime": "core.runtime",
    "pooling": "modeling.pooling", "anatomy": "modeling.anatomy", "metrics": "evaluation.metrics",
    "comparisons": "evaluation.comparisons", "probing": "evaluation.probing", "similarity": "evaluation.similarity",
    "retrieval": "evaluation.retrieval", "contrastive": "training.contrastive",
    "sentence_training": "training.sentence_training",
    "attention": "evaluation.attention_probe", "freezing": "training.freezing",
    "frozen_cache": "training.frozen_cache", "optim": "training.optim", "protocol": "training.protocol",
    "runs": "training.runs", "distributed": "training.distributed", "launch": "training.launch",
    "speed": "serving.speed", "scaling": "notebook.scaling",
    "experiments": "notebook.experiments", "report": "notebook.report", "plots": "notebook.plots",
    "records": "notebook.records", "explore": "notebook.explore",
}
# Names a notebook imports directly: module -> names.
NAMES = {
    "core.seeding": ["set_seed"],
    "core.progress": ["progress"],
    "data.tasks": ["SPLITS", "Task", "describe", "load_genre", "load_sentiment", "load_tasks", "load_topic",
                   "with_train_labels"],
    "modeling.pooling": ["POOLING_MODES", "mean_pool", "pool"],
    "modeling.encoder": ["DEFAULT_MODEL", "SentenceEncoder"],
    "modeling.model": ["CheckpointError", "MultiTaskModel"],
    "modeling.anatomy": ["relative_change", "snapshot"],
    "data.retrieval": ["RetrievalSet", "load_headline_passages"],
    "evaluation.metrics": ["majority_scores"],
    "evaluation.comparisons": ["compare_correct", "compare_over_seeds", "compare_seeds"],
    "evaluation.probing": ["bag_of_words_probe", "cached_poolings", "compare_poolings", "l2_normalize", "probe",
                           "probe_cv", "probe_table", "randomly_initialised"],
    "evaluation.attention_probe": ["fit_probe", "token_vectors", "top_pieces"],
    "evaluation.similarity": ["cosine_matrix", "nearest_neighbours", "project_2d"],
    "training.config": ["TrainConfig", "chance_loss_weights"],
    "training.trainer": ["StepLoss", "TrainResult", "Trainer", "build_model", "evaluate", "train"],
    "training.frozen_cache": ["build_cache", "check_equivalence"],
    "training.sampling": ["TaskSampler"],
    "training.runs": ["run_key", "train_or_load"],
    "serving.speed": ["batching_speed"],
}
_WHERE = {name: module for module, names in NAMES.items() for name in names}
__all__ = sorted([*MODULES, *_WHERE])


def __getattr__(name: str) -> Any:
    if name in MODULES:
        value = importlib.import_module(f"{__name__}.{MODULES[name]}")
    elif name in _WHERE:
        value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    else:
        raise AttributeError(f"module 'mtl_utils' has no attribute '{name}'")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
