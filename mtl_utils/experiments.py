"""Run a set of training configurations over several seeds and summarise them as mean ± std."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import pandas as pd
from tqdm import tqdm  # plain text bars: they render in JupyterLab, papermill output and on the web

from .data import Task
from .training import TrainConfig, TrainResult, train_or_load


def run_grid(
    configs: Mapping[str, TrainConfig],
    data: Mapping[str, Task],
    seeds: Sequence[int],
    force: bool = False,
) -> tuple[dict[tuple[str, int], TrainResult], pd.DataFrame]:
    """Train (or load from the cache) every configuration with every seed.

    Returns the results keyed by ``(name, seed)`` and a long table: experiment, seed, task, accuracy,
    macro-F1, majority baseline, train seconds, best epoch, cached.
    """
    results: dict[tuple[str, int], TrainResult] = {}
    rows = []
    runs = [(name, seed) for name in configs for seed in seeds]
    bar = tqdm(runs, desc="runs", unit="run")
    for name, seed in bar:
        bar.set_postfix_str(f"{name}, seed {seed}")
        result = train_or_load(dataclasses.replace(configs[name], seed=seed), data, force=force, progress=False)
        results[(name, seed)] = result
        for row in result.test.to_dict("records"):
            rows.append({"experiment": name, "seed": seed, **row, "train seconds": result.train_seconds,
                         "best epoch": result.best_epoch, "cached": result.cached})
    return results, pd.DataFrame(rows)


def mean_std(table: pd.DataFrame, metrics: Sequence[str] = ("accuracy", "macro-F1"),
             by: Sequence[str] = ("experiment", "task"), digits: int = 3) -> pd.DataFrame:
    """``mean ± std`` over seeds of each metric, one row per experiment and task (order kept).

    With a single seed only the mean is shown (no spread can be estimated from one run).
    """
    by = list(by)
    grouped = table.groupby(by, sort=False)[list(metrics)]
    mean, std, count = grouped.mean(), grouped.std(ddof=1), grouped.count()
    out = pd.DataFrame(index=mean.index)
    for metric in metrics:
        out[metric] = [
            f"{m:.{digits}f} ± {s:.{digits}f}" if n > 1 else f"{m:.{digits}f}"
            for m, s, n in zip(mean[metric], std[metric], count[metric])
        ]
    out["seeds"] = count[metrics[0]].to_numpy()
    return out.reset_index()


def difference_vs_spread(table: pd.DataFrame, a: str, b: str, task: str, metric: str = "accuracy") -> dict:
    """Mean difference ``a - b`` on one task and metric, beside the larger of the two seed-to-seed std's.

    ``within_noise`` is True when the difference is smaller than twice that spread: a reader should not
    read a winner into it.
    """
    rows = table[table["task"] == task]
    va, vb = rows[rows["experiment"] == a][metric], rows[rows["experiment"] == b][metric]
    if va.empty or vb.empty:
        raise KeyError(f"no rows for experiment '{a}' or '{b}' on task '{task}'")
    diff = float(va.mean() - vb.mean())
    spread = float(max(va.std(ddof=1) if len(va) > 1 else 0.0, vb.std(ddof=1) if len(vb) > 1 else 0.0))
    return {"difference": diff, "spread": spread, "within_noise": abs(diff) < 2 * spread or spread == 0.0}
