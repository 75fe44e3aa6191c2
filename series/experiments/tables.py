"""Tables of finished runs: accuracies over seeds, paired comparisons under the series' rule (over seeds and
test items together, or with one seed example by example: McNemar), rounds, drift, sweeps."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from mtl_utils.data.tasks import Task
from mtl_utils.evaluation.probing import ProbeResult
from mtl_utils.modeling import anatomy
from mtl_utils.modeling.model import MultiTaskModel
from mtl_utils.training import freezing
from mtl_utils.training.trainer import TrainResult
from series.comparisons import compare_correct, compare_seeds
from series.experiments.grids import Results, budget_name
from series.statistics import wilson_interval


def label_budget_table(per_budget: Mapping[int | None, Results], data: Mapping[str, Task],
                       pairs: Sequence[tuple[str, str]], task: str) -> pd.DataFrame:
    """:func:`comparison_table` on ``task`` at every budget of :func:`label_budget_grid`, one row per budget and
    pair, with the budget (labelled examples of ``task``) in front."""
    parts = []
    for n, results in per_budget.items():
        table = comparison_table(results, data, pairs, tasks=[task])
        table.insert(0, "labels", budget_name(n))
        parts.append(table)
    return pd.concat(parts, ignore_index=True)


def versus_probes(per_budget: Mapping[int | None, Results], name: str,
                  probes: Mapping[int | None, Mapping[int, ProbeResult]], probe_name: str, data: Mapping[str, Task],
                  task: str) -> pd.DataFrame:
    """The runs ``name`` of :func:`label_budget_grid` minus the probes of :func:`label_budget_probes` on ``task``,
    per budget, paired by seed (the same labelled subset, the same test set): one row per budget in
    :func:`label_budget_table`'s format (:func:`~series.comparisons.compare_seeds`)."""
    labels = data[task]["test"]["label"].to_numpy()
    rows = []
    for n, results in per_budget.items():
        seeds = sorted(s for (run, s) in results if run == name)
        if not seeds:
            raise KeyError(f"budget {budget_name(n)}: no runs of '{name}'; the runs are "
                           f"{sorted({run for run, _ in results})}")
        missing = [s for s in seeds if s not in probes.get(n, {})]
        if missing:
            raise KeyError(f"budget {budget_name(n)}: runs of '{name}' for seeds {seeds}, probes missing "
                           f"for {missing}: give both arms the same budgets and seeds")
        row = compare_seeds(name, [results[(name, s)].predictions[task] == labels for s in seeds], probe_name,
                            [probes[n][s].correct for s in seeds], task)
        rows.append({"labels": budget_name(n), **row})
    return pd.DataFrame(rows)


def accuracy_table(runs: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """Per experiment and task: mean test accuracy and macro-F1 over seeds, the seed-to-seed std, and the 95 %
    Wilson interval of the mean accuracy on its test set (the test set's own noise; the seeds add theirs)."""
    rows = []
    for (name, task), part in runs.groupby(["experiment", "task"], sort=False):
        n = int(part["test examples"].iloc[0])
        mean = float(part["accuracy"].mean())
        lo, hi = wilson_interval(int(round(mean * n)), n)
        std = float(part["accuracy"].std(ddof=1)) if len(part) > 1 else float("nan")
        rows.append({"experiment": name, "task": task, "accuracy": round(mean, digits),
                     "95% interval (test set)": f"{lo:.{digits}f}–{hi:.{digits}f}",
                     "std over seeds": round(std, digits), "macro-F1": round(float(part["macro-F1"].mean()), digits),
                     "majority baseline": round(float(part["majority baseline"].iloc[0]), digits),
                     "seeds": len(part), "test examples": n})
    return pd.DataFrame(rows)


def compare(results: Results, data: Mapping[str, Task], a: str, b: str, task: str,
            seeds: Sequence[int] | None = None) -> dict:
    """Test accuracy of configuration ``a`` minus ``b`` on ``task``, paired.

    With two or more seeds: the mean difference with an interval over seeds and test items together
    (:func:`~series.comparisons.compare_over_seeds`) and its p-value. With one seed: the
    exact paired interval over the test examples (:func:`~series.statistics.paired_interval`) and
    McNemar's exact p-value. The verdict follows the series' rule: a difference is detected when its 95 %
    interval excludes zero; ``excludes beyond`` says what a "no difference detected" rules out.
    """
    seeds = sorted({s for (name, s) in results if name == a} & {s for (name, s) in results if name == b}
                   if seeds is None else seeds)
    if not seeds:
        raise KeyError(f"no seed has runs of both '{a}' and '{b}'")
    labels = data[task]["test"]["label"].to_numpy()
    correct = {name: [results[(name, s)].predictions[task] == labels for s in seeds] for name in (a, b)}
    return compare_seeds(a, correct[a], b, correct[b], task)


def comparison_table(results: Results, data: Mapping[str, Task], pairs: Sequence[tuple[str, str]],
                     tasks: Sequence[str] | None = None) -> pd.DataFrame:
    """:func:`compare` for every pair ``(a, b)`` and task (default: the tasks both configurations trained)."""
    rows = []
    for a, b in pairs:
        shared = [t for t in next(r for (n, _), r in results.items() if n == a).config.tasks
                  if t in next(r for (n, _), r in results.items() if n == b).config.tasks]
        for task in tasks or shared:
            rows.append(compare(results, data, a, b, task))
    return pd.DataFrame(rows)


def intents_table(model: MultiTaskModel, task: str) -> pd.DataFrame:
    """Trainable parameters per part under each freezing intent: nothing frozen, bottom k (half, all but one),
    backbone, one head (``task``), everything. Leaves ``model`` unfrozen."""
    n = anatomy.num_layers(model)
    intents = {"nothing frozen": lambda m: m, f"embeddings + bottom {n // 2}": lambda m: freezing.freeze_bottom(m, n // 2),
               f"embeddings + bottom {n - 1}": lambda m: freezing.freeze_bottom(m, n - 1),
               "backbone": freezing.freeze_backbone, f"head: {task}": lambda m: freezing.freeze_head(m, task),
               "whole model": freezing.freeze_all}
    columns = {}
    for name, apply in intents.items():
        freezing.unfreeze_all(model)
        apply(model)
        columns[name] = anatomy.parameter_table(model).set_index("part")["trainable"]
    freezing.unfreeze_all(model)
    table = pd.DataFrame(columns)
    table.insert(0, "parameters", anatomy.parameter_table(model).set_index("part")["parameters"])
    return table


def round_table(results: Results, name_to_k: Mapping[str, int] | None = None) -> pd.DataFrame:
    """One row per (experiment, seed, task): test accuracy and macro-F1, the mean validation macro-F1 of the
    kept round over the trained tasks, seconds of the training loop and one-off cache seconds."""
    rows = []
    for (name, seed), result in results.items():
        history = result.history[result.history["trained"]]
        kept = history[history["round"] == result.best_round]
        rounds = history.drop_duplicates("round")
        for row in result.test.to_dict("records"):
            if row["task"] not in result.config.tasks:
                continue
            rows.append({"experiment": name, "k": (name_to_k or {}).get(name), "seed": seed, "task": row["task"],
                         "accuracy": row["accuracy"], "macro-F1": row["macro-F1"],
                         "majority baseline": row["majority baseline"],
                         "val macro-F1 (mean of tasks)": float(kept["val macro-F1"].mean()),
                         "train seconds": float(rounds["train seconds"].sum()),
                         "cache seconds": float(rounds["cache seconds"].sum())})
    return pd.DataFrame(rows)


def drift_table(results: Mapping[str, TrainResult], watched: str) -> pd.DataFrame:
    """Per continuation run (``name -> TrainResult`` with ``watch_tasks``) and round: the watched task's
    validation and test accuracy, and each trained task's validation accuracy."""
    rows = []
    for name, result in results.items():
        for round_, part in result.history.groupby("round"):
            row = {"run": name, "round": int(round_)}
            w = part[part["task"] == watched].iloc[0]
            row[f"{watched} val accuracy"], row[f"{watched} test accuracy"] = w["val accuracy"], w["test accuracy"]
            for r in part[part["task"] != watched].to_dict("records"):
                row[f"{r['task']} val accuracy"] = r["val accuracy"]
            rows.append(row)
    return pd.DataFrame(rows)


def compare_with_fixed(results: Results, data: Mapping[str, Task], name: str, task: str,
                       correct_ref: np.ndarray, ref_name: str) -> pd.DataFrame:
    """Each seed's run of ``name`` against one fixed model (``correct_ref``: which test examples of ``task`` it
    got right, e.g. a frozen-encoder probe), paired on the test set: the accuracy difference with its paired
    interval (exact, agreeing with McNemar's test), McNemar's p-value and what the interval rules out, one row per seed."""
    labels = data[task]["test"]["label"].to_numpy()
    rows = [{**compare_correct(name, result.predictions[task] == labels, ref_name, correct_ref, task), "seed": seed}
            for (run, seed), result in sorted(results.items(), key=lambda item: item[0][1]) if run == name]
    return pd.DataFrame(rows)


def fixed_versus_runs(fixed_name: str, correct_fixed: np.ndarray, results: Results, data: Mapping[str, Task],
                      name: str, task: str) -> dict:
    """One fixed model (``correct_fixed``: which test examples of ``task`` it got right, e.g. the frozen
    encoder's probe, which has no training seed) minus the runs of ``name`` over all their seeds, in
    :func:`compare`'s row format: the fixed side repeats on every seed, so the interval carries the runs'
    noise and the test set's (:func:`~series.comparisons.compare_seeds`). Taught in notebook 04."""
    seeds = sorted(s for (run, s) in results if run == name)
    if not seeds:
        raise KeyError(f"no runs of '{name}'; the runs are {sorted({run for run, _ in results})}")
    labels = data[task]["test"]["label"].to_numpy()
    return compare_seeds(fixed_name, [np.asarray(correct_fixed, dtype=bool)] * len(seeds), name,
                         [results[(name, s)].predictions[task] == labels for s in seeds], task)


def sweep_table(results: Results, data: Mapping[str, Task], name_to_k: Mapping[str, int], baseline: str,
                trainable: Mapping[str, int]) -> pd.DataFrame:
    """One row per configuration of a freezing sweep: k, trainable parameters, mean training seconds per run
    (loop only) and the speed-up over ``baseline``, and per task the mean test accuracy with the paired
    difference from ``baseline`` (95 % interval) and its verdict under the series' rule."""
    rounds = round_table(results)
    seconds = rounds.drop_duplicates(["experiment", "seed"]).groupby("experiment")["train seconds"].mean()
    rows = []
    for name, k in name_to_k.items():
        row = {"experiment": name, "k": k, "trainable parameters": int(trainable[name]),
               "train seconds per run": round(float(seconds[name]), 1),
               "speed-up": round(float(seconds[baseline] / seconds[name]), 1)}
        for task in dict.fromkeys(rounds["task"]):
            part = rounds[(rounds["experiment"] == name) & (rounds["task"] == task)]
            row[f"{task} accuracy"] = round(float(part["accuracy"].mean()), 3)
            if name != baseline:
                c = compare(results, data, name, baseline, task)
                row[f"{task} − {baseline}"] = (f"{c['difference']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]"
                                                + ("" if c["detected"] else " n.d."))
        rows.append(row)
    return pd.DataFrame(rows).fillna("")
