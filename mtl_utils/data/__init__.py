"""Data: the series' tasks, read from files that PyPI packages ship.

* :mod:`~mtl_utils.data.tasks`: the tasks (topic, sentiment, genre) with deterministic, leak-free splits;
* :mod:`~mtl_utils.data.checks`: a task checked before anything is computed from it;
* :mod:`~mtl_utils.data.retrieval`: the headline → passage retrieval benchmark from the BBC articles.

The tasks' names are re-exported here (``from mtl_utils import data; data.load_tasks()``).
"""
from .checks import check_datasets
from .tasks import (
    GENRE_LABELS,
    QUICK_SIZES,
    SENTIMENT_LABELS,
    SPLIT_FRACTIONS,
    SPLITS,
    TOPIC_LABELS,
    Task,
    assign_splits,
    describe,
    load_genre,
    load_sentiment,
    load_tasks,
    load_topic,
    split_sentences,
    stable_hash,
    stratified_subsample,
    with_train_labels,
)
