"""Experiments: configurations over seeds, their tables, and paired comparisons under the series' rule.

:func:`run_grid` trains (or loads) every configuration with every seed. :func:`compare` answers "is A better
than B?" for two configurations on one task, paired: over seeds (same seed, same test set) with a t interval,
or, with a single seed, example by example on the test set (McNemar, paired bootstrap). Every comparison
carries its interval and, when nothing is detected, the smallest effect the design could have seen
(:mod:`mtl_utils.metrics`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from . import anatomy, freezing
from .data import Task
from .metrics import mcnemar, mde_paired_proportions, paired_bootstrap, seed_difference, wilson_interval
from .model import MultiTaskModel
from .progress import progress
from .runs import run_key, train_or_load
from .training import TrainConfig, TrainResult

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

    With two or more seeds: the mean of the per-seed differences with a t interval, its p-value and the
    minimum detectable effect (80 % power). With one seed: the paired bootstrap interval over the test
    examples, McNemar's exact p-value and the detectable effect from the share of discordant examples. The
    verdict follows the series' rule: a difference is detected when its 95 % interval excludes zero.
    """
    seeds = sorted({s for (name, s) in results if name == a} & {s for (name, s) in results if name == b}
                   if seeds is None else seeds)
    if not seeds:
        raise KeyError(f"no seed has runs of both '{a}' and '{b}'")
    labels = data[task]["test"]["label"].to_numpy()
    correct = {name: [results[(name, s)].predictions[task] == labels for s in seeds] for name in (a, b)}
    row = {"A": a, "B": b, "task": task, "seeds": len(seeds),
           "A accuracy": float(np.mean([c.mean() for c in correct[a]])),
           "B accuracy": float(np.mean([c.mean() for c in correct[b]]))}
    if len(seeds) >= 2:
        diff = seed_difference([c.mean() for c in correct[a]], [c.mean() for c in correct[b]])
        row.update({"difference": diff.mean, "low": diff.low, "high": diff.high, "p-value": diff.p_value,
                    "detectable effect": diff.mde, "per seed": list(diff.per_seed), "method": "paired t over seeds"})
    else:
        ca, cb = correct[a][0], correct[b][0]
        boot, test = paired_bootstrap(ca, cb), mcnemar(ca, cb)
        row.update({"difference": boot["difference"], "low": boot["low"], "high": boot["high"],
                    "p-value": test.p_value, "detectable effect": mde_paired_proportions(ca, cb),
                    "per seed": [boot["difference"]], "method": "McNemar + paired bootstrap (one seed)"})
    row["detected"] = bool(row["low"] > 0 or row["high"] < 0)
    return row


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
