"""Evaluation: scores, frozen-encoder probes, embeddings judged (below training: a run scores itself). Paired
comparisons over seeds and sentences are the series' (:mod:`series.comparisons`, :mod:`series.intervals`).

* :mod:`~mtl_utils.evaluation.metrics`: accuracy and macro-F1 from labels or logits, the majority baseline;
* :mod:`~mtl_utils.evaluation.probing`: frozen vectors per pooling from one pass, and linear probes on them;
* :mod:`~mtl_utils.evaluation.attention_probe`: a learned attention pooling trained as a probe;
* :mod:`~mtl_utils.evaluation.similarity`: embedding geometry (cosines, neighbours, 2-D maps);
* :mod:`~mtl_utils.evaluation.retrieval`: retrieval metrics, BM25, semantic search, clustering;
* :mod:`~mtl_utils.evaluation.sts`: human-judged similarity, the STS benchmark's Spearman correlation;
* :mod:`~mtl_utils.evaluation.gradient_conflict`: whether two tasks pull the shared encoder the same way.
"""
