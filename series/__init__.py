"""The series' machinery: what runs the notebooks' experiments and presents them, and teaches nothing itself.

What the notebooks teach is :mod:`mtl_utils`, which never imports this package (``tests/test_layout.py``).

* :mod:`~series.corpora`: the three tasks (topic, sentiment, genre) built from the corpora PyPI packages ship,
  with deterministic, leak-free splits; :mod:`~series.headline_passages`: the retrieval benchmark;
  :mod:`~series.film_plots`: a second pair set (film synopses), for training over two sets;
* :mod:`~series.store`: the run store: every cached result (trained runs, pair runs, pooled vectors, replayed
  timings) keyed, published, verified and, when damaged, made again, in one place;
* :mod:`~series.runs`: trained runs kept in the store (train-or-load), keyed by everything they depend on;
  :mod:`~series.pair_runs`: pair runs and the contrastive task, the same way; :mod:`~series.pair_variants`:
  Matryoshka, hard-negative and two-set pair runs, the cross-encoder;
  :mod:`~series.pooling_probes`: pooled vectors kept in the store, and the probe tables;
* :mod:`~series.protocol`: the one protocol of the series (splits, budget, rates, seeds);
* :mod:`~series.experiments`: grids of runs, their tables, and analyses of finished runs;
* :mod:`~series.statistics`: Wilson intervals, McNemar's exact test and its paired interval, minimum
  detectable effects; :mod:`~series.intervals`: the interval over seeds and test sentences, Holm's
  adjustment; :mod:`~series.comparisons`: paired comparisons in one row format, judged against a declared
  margin; :mod:`~series.primer`: simulated test sets with a known truth (notebook 08);
* :mod:`~series.report`: Markdown verdicts and small tables; :mod:`~series.plots`: every figure (the only
  module that imports matplotlib); :mod:`~series.explore`: live controls, static under papermill;
* :mod:`~series.records`: what a notebook run leaves behind (its numbers, its environment, replayed timings);
* :mod:`~series.serving_measurements` and :mod:`~series.older_cpus`: notebook 06's timing harnesses;
  :mod:`~series.fast_search`: its § 5, index scores, encode and search timings; :mod:`~series.static_runs`:
  the static model kept in the store;
* :mod:`~series.launch` (``python -m series.launch``, on one process or under ``torchrun``) and
  :mod:`~series.scaling`: notebook 07's experiment glue.

A notebook imports from both packages::

    from mtl_utils import SentenceEncoder, Trainer, anatomy, ...
    from series import experiments, plots, report, ...
"""
from series import (
    comparisons,
    corpora,
    experiments,
    explore,
    fast_search,
    film_plots,
    headline_passages,
    intervals,
    pair_runs,
    pair_variants,
    plots,
    pooling_probes,
    protocol,
    records,
    report,
    runs,
    scaling,
    statistics,
    store,
)
from series.comparisons import (
    compare_correct,
    compare_correlations,
    compare_over_seeds,
    compare_seeds,
)
from series.corpora import (
    describe,
    load_genre,
    load_headlines,
    load_sentences,
    load_sentiment,
    load_sts,
    load_tasks,
    load_topic,
    with_train_labels,
)
from series.film_plots import load_film_plots
from series.headline_passages import load_headline_passages
from series.pooling_probes import cached_poolings, compare_poolings, probe_table
from series.runs import run_key, train_or_load
