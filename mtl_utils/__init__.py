"""Shared code of the sentence-transformers and multi-task learning notebook series.

Notebooks import from here. Modules are organised by idea, and imports run one way, from the figures down to
the core (a module imports only modules listed above it in its own group or in a lower group):

Core
* :mod:`~mtl_utils.paths`: every folder read or written;
* :mod:`~mtl_utils.assets`: the bundled model and corpora, found without importing their packages;
* :mod:`~mtl_utils.runtime`: the device (a GPU if there is one) and the thread setting;
* :mod:`~mtl_utils.seeding`: one seeding call;
* :mod:`~mtl_utils.progress`: progress bars, one policy;
* :mod:`~mtl_utils.batching`: length-sorted batches, padding, an eval-mode context;
* :mod:`~mtl_utils.data`: the tasks (topic, sentiment, genre) with deterministic, leak-free splits;
* :mod:`~mtl_utils.metrics`: scores, intervals, paired tests, detectable effects;
* :mod:`~mtl_utils.pooling`: mean / cls / max pooling (no parameters);
* :mod:`~mtl_utils.encoder`: the sentence encoder (transformer + pooling), what inputs it accepts;
* :mod:`~mtl_utils.model`: the multi-task model (shared encoder, one head per task) and its checkpoints;
* :mod:`~mtl_utils.anatomy`: the parts of a model found once: embeddings, layers, heads, depth.

Training
* :mod:`~mtl_utils.freezing`: freezing by intent;
* :mod:`~mtl_utils.frozen_cache`: frozen bottom layers computed once (exact);
* :mod:`~mtl_utils.optim`: parameter groups, layer-wise rates, the optimizer and its schedule;
* :mod:`~mtl_utils.training`: ``TrainConfig``, the task sampler, the ``Trainer`` and its step (one task, or all summed);
* :mod:`~mtl_utils.runs`: finished runs cached by everything they depend on (train-or-load);
* :mod:`~mtl_utils.protocol`: the one protocol of the series (splits, budget, rates).

Experiments and reading
* :mod:`~mtl_utils.comparisons`: paired comparisons in one row format, over test examples or over seeds;
* :mod:`~mtl_utils.experiments`: configurations over seeds and label budgets, their tables;
* :mod:`~mtl_utils.probing`, :mod:`~mtl_utils.attention_pooling`, :mod:`~mtl_utils.similarity`,
  :mod:`~mtl_utils.speed`: frozen-encoder probes (and a learned attention pooling trained as one), embedding
  geometry, encoding speed;
* :mod:`~mtl_utils.serving`, :mod:`~mtl_utils.predict`: one model answering every task, faster inference, the
  command line;
* :mod:`~mtl_utils.report`: Markdown verdicts and small tables;
* :mod:`~mtl_utils.plots`: every figure (the only module that imports matplotlib);
* :mod:`~mtl_utils.records`, :mod:`~mtl_utils.readme`, :mod:`~mtl_utils.book`, :mod:`~mtl_utils.run_notebooks`:
  what a run leaves behind, the README's generated sections, the static site, the papermill runner behind
  ``make run``.
"""
from .data import Task, load_sentiment, load_tasks, load_topic
from .encoder import DEFAULT_MODEL, SentenceEncoder
from .pooling import pool
from .seeding import set_seed

__all__ = ["DEFAULT_MODEL", "SentenceEncoder", "Task", "load_sentiment", "load_tasks", "load_topic", "pool", "set_seed"]
