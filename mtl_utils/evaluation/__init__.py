"""Evaluation: scores, paired comparisons and frozen-encoder probes (below training: a run scores itself).

* :mod:`~mtl_utils.evaluation.metrics`: scores, intervals, paired tests;
* :mod:`~mtl_utils.evaluation.comparisons`: paired comparisons in one row format, over test examples or seeds;
* :mod:`~mtl_utils.evaluation.seeds_and_items`: one interval over seeds and test items together; Holm's
  adjustment of a family of verdicts;
* :mod:`~mtl_utils.evaluation.probing`: frozen vectors per pooling, cached, and linear probes on them;
* :mod:`~mtl_utils.evaluation.attention_probe`: a learned attention pooling trained as a probe;
* :mod:`~mtl_utils.evaluation.similarity`: embedding geometry (cosines, neighbours, 2-D maps);
* :mod:`~mtl_utils.evaluation.retrieval`: retrieval metrics (as sentence-transformers computes them), BM25, clustering.
"""
