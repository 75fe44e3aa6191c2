"""Shared code of the sentence-transformers and multi-task learning notebook series.

Notebooks import from here; each module has one job:

* :mod:`mtl_utils.paths`: every folder read or written;
* :mod:`mtl_utils.assets`: the bundled model and corpora, found without importing their packages;
* :mod:`mtl_utils.seeding`: one seeding call;
* :mod:`mtl_utils.data`: the topic and sentiment tasks, deterministic leak-free splits;
* :mod:`mtl_utils.pooling`: mean / cls / max pooling;
* :mod:`mtl_utils.encoder`: the sentence encoder;
* :mod:`mtl_utils.probing`, :mod:`mtl_utils.similarity`, :mod:`mtl_utils.speed`, :mod:`mtl_utils.plots`: notebook 01;
* :mod:`mtl_utils.model`, :mod:`mtl_utils.training`, :mod:`mtl_utils.experiments`, :mod:`mtl_utils.report`: notebook 02;
* :mod:`mtl_utils.freezing`, :mod:`mtl_utils.frozen_cache`: notebook 03;
* :mod:`mtl_utils.optim`, :mod:`mtl_utils.layerwise`: notebook 04;
* :mod:`mtl_utils.records`: metrics JSON and environment record of a notebook run;
* :mod:`mtl_utils.run_notebooks`: the papermill runner behind ``make run``.
"""
from .data import Task, load_sentiment, load_tasks, load_topic
from .encoder import DEFAULT_MODEL, SentenceEncoder
from .pooling import pool
from .seeding import set_seed

__all__ = ["DEFAULT_MODEL", "SentenceEncoder", "Task", "load_sentiment", "load_tasks", "load_topic", "pool", "set_seed"]
