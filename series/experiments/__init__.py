"""Experiments: configurations over seeds, their tables, and paired comparisons under the series' rule.

:func:`run_grid` trains (or loads) every configuration with every seed. :func:`compare` answers "is A better
than B?" for two configurations on one task, paired: over seeds and test sentences together (same seed,
same test set), or, with a single seed, example by example on the test set (McNemar's exact test and its
exact interval). Every comparison carries its interval and, when nothing is detected, the largest effect the
interval leaves possible (:mod:`series.comparisons`).

The functions live in :mod:`.grids`, :mod:`.tables`, :mod:`.analyses` and :mod:`.sentence` (notebook 02's
encoders judged as embeddings, SetFit, the search box); this module re-exports them, and the
one-model comparison of :mod:`series.comparisons`, so a notebook writes ``experiments.run_grid``
and ``experiments.compare_correct``.
"""
from series.comparisons import compare_correct, with_margin
from series.experiments.analyses import error_examples, head_unchanged, retention
from series.experiments.grids import (
    BudgetSeeds,
    Results,
    budget_name,
    label_budget_grid,
    label_budget_probes,
    learning_curve,
    probes_on_seen,
    run_grid,
    seeds_for,
    validation_accuracy,
)
from series.experiments.sentence import (
    all_pairs_cost,
    held_out_pairs,
    measure_runs,
    profile,
    prefix_table,
    prefix_versus,
    profile_row,
    records_of,
    reranked,
    search_box,
    series_arms,
    set_aside_examples,
    setfit_arm,
    sts_runs,
    sts_versus,
    two_sets,
    versus,
    versus_arm,
)
from series.experiments.tables import (
    accuracy_table,
    compare,
    compare_with_fixed,
    comparison_table,
    drift_table,
    fixed_versus_runs,
    intents_table,
    label_budget_table,
    round_table,
    sweep_table,
    versus_probes,
)
