"""Experiments: configurations over seeds, their tables, and paired comparisons under the series' rule.

:func:`run_grid` trains (or loads) every configuration with every seed. :func:`compare` answers "is A better
than B?" for two configurations on one task, paired: over seeds (same seed, same test set) with a t interval,
or, with a single seed, example by example on the test set (McNemar's exact test and its exact interval). Every comparison
carries its interval and, when nothing is detected, the smallest effect the design could have seen
(:mod:`mtl_utils.metrics`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from . import anatomy, freezing
from .batching import eval_mode
from .comparisons import compare_correct, compare_seeds  # noqa: F401 (compare_correct: re-exported)
from .data import Task, with_train_labels
from .metrics import wilson_interval
from .model import MultiTaskModel
from .probing import ProbeResult, probe_cv
from .progress import progress
from .runs import run_key, train_or_load
from .training import TrainConfig, TrainResult, task_logits

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
    :func:`~mtl_utils.data.with_train_labels` draws with ``s``, so the configurations compared at one budget and
    seed saw the same labelled examples, and the seeds vary the subset as well as the run. Test sets are whole.

    Returns the results per budget (each ready for :func:`comparison_table`) and a long table: budget, labels
    (the subset's size), experiment, seed, task, accuracy, train seconds, cached. Taught in notebook 05.
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


def label_budget_probes(train_vectors: np.ndarray, test_vectors: np.ndarray, data: Mapping[str, Task], task: str,
                        budgets: Sequence[int | None], seeds: BudgetSeeds, name: str = "frozen encoder + probe"
                        ) -> tuple[dict[int | None, dict[int, ProbeResult]], pd.DataFrame]:
    """The frozen-encoder arm of a label-budget experiment: for every budget ``n`` and seed ``s`` (as
    :func:`label_budget_grid` takes them), a probe
    (:func:`~mtl_utils.probing.probe_cv`, ``C`` cross-validated on the ``n`` labels alone) on the vectors of exactly
    the subset :func:`label_budget_grid` trains on with that seed, scored on the whole test set.
    ``train_vectors``/``test_vectors``: one row per text of ``data[task]``'s train/test split, in order (e.g.
    :func:`~mtl_utils.probing.cached_poolings`). Returns the probes per budget and seed, and rows in
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
                              seed=seed)
            probes[n][seed] = result
            rows.append({"budget": budget_name(n), "labels": len(subset), "experiment": name,
                         "seed": seed, "task": task, "accuracy": result.accuracy, "C": result.C})
    return probes, pd.DataFrame(rows)


def versus_probes(per_budget: Mapping[int | None, Results], name: str,
                  probes: Mapping[int | None, Mapping[int, ProbeResult]], probe_name: str, data: Mapping[str, Task],
                  task: str) -> pd.DataFrame:
    """The runs ``name`` of :func:`label_budget_grid` minus the probes of :func:`label_budget_probes` on ``task``,
    per budget, paired by seed (the same labelled subset, the same test set): one row per budget in
    :func:`label_budget_table`'s format (:func:`~mtl_utils.comparisons.compare_seeds`)."""
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

    With two or more seeds: the mean of the per-seed differences with a t interval, its p-value and the
    minimum detectable effect (80 % power). With one seed: the exact paired interval over the test
    examples (:func:`~mtl_utils.metrics.paired_interval`), McNemar's exact p-value and the detectable effect from the share of discordant examples. The
    verdict follows the series' rule: a difference is detected when its 95 % interval excludes zero.
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
    interval (exact, agreeing with McNemar's test), McNemar's p-value and the detectable effect, one row per seed."""
    labels = data[task]["test"]["label"].to_numpy()
    rows = [{**compare_correct(name, result.predictions[task] == labels, ref_name, correct_ref, task), "seed": seed}
            for (run, seed), result in sorted(results.items(), key=lambda item: item[0][1]) if run == name]
    return pd.DataFrame(rows)


def retention(before: float, after: float, majority: float) -> float:
    """Share of a model's gain over the majority baseline that is left: ``(after − majority) / (before −
    majority)``; 1 keeps all of it, 0 is back at the baseline. Raw accuracy differences hide how much of what
    was *learned* is lost when the baseline is high."""
    if before <= majority:
        raise ValueError(f"no gain to retain: accuracy before ({before:.3f}) is not above the majority baseline "
                         f"({majority:.3f})")
    return (after - majority) / (before - majority)


def head_unchanged(result: TrainResult, start: MultiTaskModel, task: str) -> bool:
    """Whether ``task``'s head of a finished run is bit-identical to the head of its starting model."""
    after, before = result.model.heads[task].state_dict(), start.heads[task].state_dict()
    return after.keys() == before.keys() and all(torch.equal(after[k].cpu(), before[k].cpu()) for k in after)


def gradient_conflict(model: MultiTaskModel, data: Mapping[str, Task], tasks: Sequence[str], batches: int = 8,
                      batch_size: int = 16, seed: int = 0) -> pd.DataFrame:
    """Cosine between the tasks' gradients on each encoder unit (embeddings, each layer), from ``batches``
    training batches per task (summed), the model in eval mode (no dropout) and left unchanged.

    +1: the tasks pull that unit the same way; 0: unrelated directions; −1: opposite (conflict)."""
    if len(tasks) != 2:
        raise ValueError(f"gradient conflict compares two tasks, got {list(tasks)}")
    units = [u for u in anatomy.depth_units(model) if u.kind in ("layer", "embeddings")][::-1]
    grads: dict[str, list[torch.Tensor]] = {}
    rng = np.random.default_rng(seed)
    with eval_mode(model):
        for task in tasks:
            model.zero_grad(set_to_none=True)
            df = data[task]["train"]
            for _ in range(batches):
                idx = rng.choice(len(df), size=min(batch_size, len(df)), replace=False)
                inputs = model.encoder.tokenize(list(df["text"].iloc[idx]))
                labels = torch.from_numpy(df["label"].to_numpy()[idx]).to(model.encoder.device)
                torch.nn.functional.cross_entropy(model(**inputs, tasks=task)[task], labels).backward()
            grads[task] = [torch.cat([p.grad.flatten() if p.grad is not None else torch.zeros(p.numel(),
                                      device=p.device) for _, p in u.params]) for u in units]
    model.zero_grad(set_to_none=True)
    a, b = (grads[t] for t in tasks)
    return pd.DataFrame([{"unit": u.name, "depth": u.depth,
                          "cosine": float(torch.nn.functional.cosine_similarity(x, y, dim=0))}
                         for u, x, y in zip(units, a, b)])


def error_examples(result: TrainResult, data: Mapping[str, Task], task: str, n: int = 6) -> pd.DataFrame:
    """The ``n`` test sentences of ``task`` the run got wrong with the highest confidence: text, true and
    predicted label, and the probability it gave its (wrong) prediction."""
    df = data[task]["test"]
    logits = task_logits(result.model, result.model.encoder.token_ids(list(df["text"])), task)
    probs = torch.softmax(torch.from_numpy(logits), dim=-1).numpy()
    pred, labels = probs.argmax(axis=1), data[task].labels
    wrong = np.flatnonzero(pred != df["label"].to_numpy())
    top = wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")[:n]]
    return pd.DataFrame({"text": df["text"].to_numpy()[top], "true": [labels[i] for i in df["label"].to_numpy()[top]],
                         "predicted": [labels[i] for i in pred[top]], "p(predicted)": probs[top, pred[top]].round(3)})


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
