"""How far training moved each layer: relative weight change ||theta_after - theta_before|| / ||theta_before||.

The "before" weights of a run are those :func:`mtl_utils.training.train` starts from: the pretrained encoder
and heads initialised after ``set_seed(config.seed)``. :func:`initial_model` rebuilds exactly that model.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from .data import Task
from .model import MultiTaskModel
from .optim import HEAD_PREFIX, depth_units
from .seeding import set_seed
from .training import TrainConfig, TrainResult


def initial_model(config: TrainConfig, data: Mapping[str, Task]) -> MultiTaskModel:
    """The model ``train(config, data)`` starts from (same seed, same construction), before any step."""
    set_seed(config.seed)
    return MultiTaskModel({t: data[t].labels for t in config.tasks}, model=config.model, pooling=config.pooling,
                          max_length=config.max_length, dropout=config.dropout, hidden_dim=config.hidden_dim)


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of every parameter, by name."""
    return {name: p.detach().to("cpu", copy=True) for name, p in model.named_parameters()}


def relative_change(before: Mapping[str, torch.Tensor], after: nn.Module, head_prefix: str = HEAD_PREFIX) -> pd.DataFrame:
    """Relative change per depth unit (heads, layers top down, embeddings): ``sqrt(sum ||delta||^2) /
    sqrt(sum ||before||^2)`` over the unit's parameters, with the unit's absolute change and size.

    ``before`` is a :func:`snapshot` of the same architecture; a missing or differently shaped tensor is an
    error. For the embeddings, most of the word-embedding rows belong to word pieces that never occur in the
    training batches; they move only by weight decay, so the unit's relative change is small by construction.
    """
    rows = []
    for unit in depth_units(after, head_prefix):
        delta_sq, base_sq = 0.0, 0.0
        for name, param in unit.params:
            if name not in before:
                raise KeyError(f"parameter '{name}' is missing from the 'before' snapshot")
            old = before[name].float()
            new = param.detach().float().cpu()
            if old.shape != new.shape:
                raise ValueError(f"'{name}': shape {tuple(old.shape)} before, {tuple(new.shape)} after")
            delta_sq += float(((new - old) ** 2).sum())
            base_sq += float((old ** 2).sum())
        rows.append({"unit": unit.name, "kind": unit.kind, "depth": unit.depth,
                     "parameters": sum(p.numel() for _, p in unit.params),
                     "absolute change": float(np.sqrt(delta_sq)),
                     "relative change": float(np.sqrt(delta_sq) / np.sqrt(base_sq)) if base_sq else float("nan")})
    return pd.DataFrame(rows)


def run_changes(results: Mapping[tuple[str, int], TrainResult], data: Mapping[str, Task]) -> pd.DataFrame:
    """:func:`relative_change` of every run of :func:`mtl_utils.experiments.run_grid` against the model it
    started from: a long table with ``experiment`` and ``seed`` columns (one starting model built per
    distinct start, i.e. per seed and architecture)."""
    starts: dict[tuple, dict[str, torch.Tensor]] = {}
    tables = []
    for (name, seed), result in results.items():
        c = result.config
        key = (c.seed, c.tasks, c.model, c.pooling, c.max_length, c.dropout, c.hidden_dim)
        if key not in starts:
            starts[key] = snapshot(initial_model(c, data))
        table = relative_change(starts[key], result.model)
        table.insert(0, "seed", seed)
        table.insert(0, "experiment", name)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def paired_differences(runs: pd.DataFrame, baseline: str = "uniform",
                       metrics: Sequence[str] = ("accuracy", "macro-F1")) -> pd.DataFrame:
    """Per-seed differences of every experiment from ``baseline`` on the same seed (``runs``: the long table of
    :func:`mtl_utils.experiments.run_grid`).

    Runs on the same seed share the heads' initialisation and the order of the mini-batches, so the paired
    difference removes that part of the seed-to-seed noise. Columns: experiment, task, metric, per seed (the
    differences in seed order), mean, std (NaN with one seed), same sign (every seed's difference non-zero
    and of one sign; with 3 seeds that happens by chance a quarter of the time when there is no effect).
    """
    if baseline not in set(runs["experiment"]):
        raise KeyError(f"baseline '{baseline}' is not among the experiments {list(dict.fromkeys(runs['experiment']))}")
    table = runs.set_index(["experiment", "seed", "task"])
    rows = []
    for name in dict.fromkeys(runs["experiment"]):
        if name == baseline:
            continue
        for task in dict.fromkeys(runs["task"]):
            for metric in metrics:
                a = table.loc[name].xs(task, level="task")[metric]
                b = table.loc[baseline].xs(task, level="task")[metric]
                diff = (a - b).dropna().sort_index()
                rows.append({"experiment": name, "task": task, "metric": metric,
                             "per seed": [round(float(d), 4) for d in diff],
                             "mean": float(diff.mean()), "std": float(diff.std(ddof=1)) if len(diff) > 1 else float("nan"),
                             "same sign": bool(len(diff) > 1 and ((diff > 0).all() or (diff < 0).all()))})
    return pd.DataFrame(rows)


def change_summary(changes: pd.DataFrame, by: str = "experiment") -> pd.DataFrame:
    """Mean relative change per unit (rows, top down) and experiment (columns) over seeds, plus each
    experiment's ratio bottom layer / top layer (how much the first layer moved relative to the last)."""
    order = list(dict.fromkeys(changes["unit"]))
    wide = changes.groupby(["unit", by], sort=False)["relative change"].mean().unstack(by)
    wide = wide.loc[order, list(dict.fromkeys(changes[by]))]
    layers = changes[changes["kind"] == "layer"].drop_duplicates("unit").sort_values("depth")
    top, bottom = layers["unit"].iloc[0], layers["unit"].iloc[-1]
    wide.loc[f"{bottom} / {top}"] = wide.loc[bottom] / wide.loc[top]
    return wide


def plot_relative_change(changes: pd.DataFrame, by: str = "experiment", include_heads: bool = False,
                         title: str = "How far each layer moved during fine-tuning") -> Figure:
    """Relative change per unit, embeddings on the left to the top layer on the right, one line per
    ``by`` value (mean over seeds, min-max over seeds as a band), log-scaled y axis.

    ``changes``: the long table of :func:`relative_change` rows with an ``experiment`` (and ``seed``) column.
    Heads are left out by default: they start from random weights, so their relative change measures
    something else (and is orders of magnitude larger).
    """
    data = changes if include_heads else changes[changes["kind"] != "head"]
    units = list(dict.fromkeys(data.sort_values("depth", ascending=False, kind="stable")["unit"]))
    if include_heads:
        units = [u for u in units if not u.startswith("head")] + [u for u in units if u.startswith("head")]
    fig, ax = plt.subplots(figsize=(max(7.0, 0.9 * len(units) + 2), 4.2))
    x = np.arange(len(units))
    styles = [("-", "o"), ("--", "s"), ("-.", "^"), (":", "D"), ("--", "v"), ("-", "x")]
    for k, (name, part) in enumerate(data.groupby(by, sort=False)):
        stats = part.groupby("unit")["relative change"].agg(["mean", "min", "max"]).reindex(units)
        line, marker = styles[k % len(styles)]
        ax.plot(x, stats["mean"], linestyle=line, marker=marker, label=str(name))
        ax.fill_between(x, stats["min"], stats["max"], alpha=0.15)
    ax.set_xticks(x, units, rotation=30, ha="right")
    ax.set_yscale("log")
    ax.set_xlabel("parameter group (bottom of the encoder on the left)")
    ax.set_ylabel("relative change  ||after - before|| / ||before||")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(title=by, fontsize=8)
    fig.tight_layout()
    return fig


def plot_lr_profile(tables: Mapping[str, pd.DataFrame], title: str = "Learning rate by depth") -> Figure:
    """Learning rate per unit (embeddings left, heads right) for several settings, from
    :func:`mtl_utils.optim.lr_table` outputs keyed by a label (e.g. ``"xi=0.8"``)."""
    fig, ax = plt.subplots(figsize=(8, 4))
    units: Sequence[str] = ()
    for label, table in tables.items():
        ordered = table.iloc[::-1]
        units = list(ordered["group"])
        ax.plot(range(len(units)), ordered["learning rate"], marker="o", label=label)
    ax.set_xticks(range(len(units)), units, rotation=30, ha="right")
    ax.set_yscale("log")
    ax.set_xlabel("parameter group (bottom of the encoder on the left, heads on the right)")
    ax.set_ylabel("peak learning rate")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
