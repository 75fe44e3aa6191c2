"""Data: what the trainer and the evaluations take, checked before anything is computed from it (the series' own data
is built by :mod:`series.corpora` and :mod:`series.headline_passages`).

* :mod:`~mtl_utils.data.tasks`: a classification task (label names, a table per split);
* :mod:`~mtl_utils.data.checks`: a task checked before anything is computed from it;
* :mod:`~mtl_utils.data.retrieval`: a retrieval set (queries, passages, relevance), checked when built.
"""
from mtl_utils.data.checks import check_datasets
from mtl_utils.data.retrieval import RetrievalSet
from mtl_utils.data.tasks import SPLITS, Task
