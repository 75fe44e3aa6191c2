"""Grids of runs: every configuration with every seed (and every label budget), trained or loaded from the
run cache, and the frozen-probe arm on exactly the same label subsets."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from mtl_utils.core.progress import progress
from mtl_utils.data.tasks import Task
from mtl_utils.evaluation.probing import ProbeResult, probe, probe_cv
from mtl_utils.training.trainer import TrainConfig, TrainResult, evaluate
from series.corpora import with_train_labels
from series.runs import run_key, train_or_load

Results = dict[tuple[str, int], TrainResult]


def run_grid(configs: Mapping[str, TrainConfig], data: Mapping[str, Task], seeds: Sequence[int],
             force: bool = False) -> tuple[Results, pd.DataFrame]:
    """Train (or load from the cache) every configuration with every seed.

    Returns the results keyed by ``(name, seed)`` and a long table: experiment, seed, task, accuracy,
    macro-F1, majority baseline, test examples, train seconds, best round, cached, run key.
    """
    results: Results = {}
    rows = []
    runs = [(name, seed) for name in configs for seed in seeds]
    bar = progress(runs, desc="runs", unit="run")
    for name, seed in bar:
        bar.set_postfix_str(f"{name}, seed {seed}")
        config = configs[name].replace(seed=seed)
        result = train_or_load(config, data, force=force, progress_bar=False)
        results[(name, seed)] = result
        for row in result.test.to_dict("records"):
            rows.append({"experiment": name, "seed": seed, **row, "train seconds": result.train_seconds,
                         "best round": result.best_round, "cached": result.cached, "run": run_key(config, data)})
    return results, pd.DataFrame(rows)


def validation_accuracy(result: TrainResult, data: Mapping[str, Task], task: str) -> float:
    """Accuracy of a finished run's model on ``task``'s validation split (what a budget is chosen on)."""
    return float(evaluate(result.model, data[task], "validation")["accuracy"])


def learning_curve(configs: Mapping[str, TrainConfig], data: Mapping[str, Task],
                   budgets: Mapping[str, Sequence[int]], seed: int, force: bool = False) -> pd.DataFrame:
    """Each configuration trained (or loaded) once per budget of ``budgets[name]`` examples *per task*, with
    one seed: a row per configuration, budget and task with its validation accuracy (what a budget is chosen
    on), test accuracy and training seconds. A budget that equals a configuration's own is the same run,
    from the run cache."""
    rows = []
    for name, config in configs.items():
        for n in budgets[name]:
            run = config.replace(examples=n * len(config.tasks), seed=seed)
            result = train_or_load(run, data, force=force, progress_bar=False)
            for task in run.tasks:
                rows.append({"experiment": name, "task": task, "examples per task": n,
                             "validation accuracy": validation_accuracy(result, data, task),
                             "test accuracy": float(result.correct(data, task).mean()),
                             "train seconds": result.train_seconds, "cached": result.cached})
    return pd.DataFrame(rows)


def probes_on_seen(results: Results, name: str, data: Mapping[str, Task], task: str,
                   vectors: Mapping[str, np.ndarray], seeds: Sequence[int]) -> dict[int, ProbeResult]:
    """The frozen encoder's fair arm against fine-tuning run ``name``: for each seed, a logistic probe on
    the frozen ``vectors`` (by split) of exactly the training rows that seed's run drew
    (:attr:`~mtl_utils.training.trainer.TrainResult.seen`), with ``C`` fixed at 1: the same examples, and no
    model selection on either side (the run keeps its last step)."""
    out = {}
    y = {s: data[task][s]["label"].to_numpy() for s in ("train", "validation", "test")}
    for seed in seeds:
        rows = results[(name, seed)].seen[task]
        out[seed] = probe(vectors["train"][rows], y["train"][rows], vectors["validation"], y["validation"],
                          vectors["test"], y["test"], C_grid=(1.0,), seed=seed)
    return out


BudgetSeeds = Sequence[int] | Mapping[int | None, Sequence[int]]


def budget_name(n: int | None) -> int | str:
    """A label budget as tables show it: the number, or ``"all"`` for ``None``."""
    return "all" if n is None else n


def seeds_for(seeds: BudgetSeeds, n: int | None) -> list[int]:
    """The seeds of budget ``n``: ``seeds`` itself, or ``seeds[n]`` when seeds are given per budget (more seeds
    where runs vary most, e.g. the smallest budget)."""
    if isinstance(seeds, Mapping):
        if n not in seeds:
            raise KeyError(f"no seeds for budget {budget_name(n)}: the seeds are given for "
                           f"{[budget_name(b) for b in seeds]}")
        return list(seeds[n])
    return list(seeds)


def label_budget_grid(configs: Mapping[str, TrainConfig], data: Mapping[str, Task], task: str,
                      budgets: Sequence[int | None], seeds: BudgetSeeds, force: bool = False
                      ) -> tuple[dict[int | None, Results], pd.DataFrame]:
    """Every configuration trained (or loaded) with ``n`` labelled ``task`` examples for each ``n`` in ``budgets``
    (``None``: all) and every seed (``seeds``, or per budget: :func:`seeds_for`); the other tasks keep all their
    data. Seed ``s`` trains on the subset
    :func:`~series.corpora.with_train_labels` draws with ``s``, so the configurations compared at one budget and
    seed saw the same labelled examples, and the seeds vary the subset as well as the run. Test sets are whole.

    Returns the results per budget (each ready for :func:`comparison_table`) and a long table: budget, labels
    (the subset's size), experiment, seed, task, accuracy, train seconds, cached. Taught in notebook 06.
    """
    per_budget: dict[int | None, Results] = {n: {} for n in budgets}
    rows = []
    runs = [(n, seed, name) for n in budgets for seed in seeds_for(seeds, n) for name in configs]
    bar = progress(runs, desc="runs", unit="run")
    for n, seed, name in bar:
        bar.set_postfix_str(f"{name}, {budget_name(n)} labels, seed {seed}")
        subset = {**data, task: with_train_labels(data[task], n, seed)}
        result = train_or_load(configs[name].replace(seed=seed), subset, force=force, progress_bar=False)
        per_budget[n][(name, seed)] = result
        for row in result.test.to_dict("records"):
            rows.append({"budget": budget_name(n), "labels": len(subset[task]["train"]),
                         "experiment": name, "seed": seed, "task": row["task"], "accuracy": row["accuracy"],
                         "train seconds": result.train_seconds, "cached": result.cached})
    return per_budget, pd.DataFrame(rows)


def label_budget_probes(train_vectors: np.ndarray, test_vectors: np.ndarray, data: Mapping[str, Task], task: str,
                        budgets: Sequence[int | None], seeds: BudgetSeeds, name: str = "frozen encoder + probe",
                        C_grid: Sequence[float] = (1.0,)
                        ) -> tuple[dict[int | None, dict[int, ProbeResult]], pd.DataFrame]:
    """The frozen-encoder arm of a label-budget experiment: for every budget ``n`` and seed ``s`` (as
    :func:`label_budget_grid` takes them), a probe (:func:`~mtl_utils.evaluation.probing.probe_cv`) on the
    vectors of exactly the subset :func:`label_budget_grid` trains on with that seed, scored on the whole test
    set. ``C`` is fixed at 1 by default: no model selection, as the fine-tuned runs keep their last step (a
    longer ``C_grid`` cross-validates it on the ``n`` labels alone).
    ``train_vectors``/``test_vectors``: one row per text of ``data[task]``'s train/test split, in order (e.g.
    :func:`~series.pooling_probes.cached_poolings`). Returns the probes per budget and seed, and rows in
    :func:`label_budget_grid`'s format (with the chosen ``C``). Taught in notebook 01."""
    full = data[task]
    for split, vectors in (("train", train_vectors), ("test", test_vectors)):
        if len(vectors) != len(full[split]):
            raise ValueError(f"{split}_vectors has {len(vectors)} rows, but task '{task}' has {len(full[split])} "
                             f"{split} texts: pass one vector per text, in the split's order")
    position = {text: i for i, text in enumerate(full["train"]["text"])}
    if len(position) != len(full["train"]):
        raise ValueError(f"task '{task}' repeats training texts, so a subset's texts do not name its rows: drop the "
                         "duplicates first (the series' loaders do)")
    test_y = full["test"]["label"].to_numpy()
    probes: dict[int | None, dict[int, ProbeResult]] = {n: {} for n in budgets}
    rows = []
    for n in budgets:
        for seed in seeds_for(seeds, n):
            subset = with_train_labels(full, n, seed)["train"]
            rows_of_subset = np.array([position[text] for text in subset["text"]])
            result = probe_cv(train_vectors[rows_of_subset], subset["label"].to_numpy(), test_vectors, test_y,
                              C_grid=C_grid, seed=seed)
            probes[n][seed] = result
            rows.append({"budget": budget_name(n), "labels": len(subset), "experiment": name,
                         "seed": seed, "task": task, "accuracy": result.accuracy, "C": result.C})
    return probes, pd.DataFrame(rows)
