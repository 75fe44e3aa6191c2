"""Tables and figures about a trained multi-task model: its data flow, training curves, confusion matrices."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from .model import MultiTaskModel


def data_flow(model: MultiTaskModel, sentences: Sequence[str]) -> pd.DataFrame:
    """Run ``sentences`` through the model once and list each stage with the shape it produced."""
    batch = model.encoder.tokenize(list(sentences))
    rows = [{"stage": "word-piece ids (padded)", "module": "tokenizer", "shape": list(batch["input_ids"].shape),
             "shared": "yes"}]
    model.eval()
    with torch.inference_mode():
        out = model.encoder.transformer(**batch, output_hidden_states=True)
        rows.append({"stage": "token vectors after embeddings", "module": "transformer.embeddings",
                     "shape": list(out.hidden_states[0].shape), "shared": "yes"})
        for i, hidden in enumerate(out.hidden_states[1:]):
            rows.append({"stage": f"token vectors after layer {i + 1}", "module": f"transformer.encoder.layer[{i}]",
                         "shape": list(hidden.shape), "shared": "yes"})
        vectors = model.encoder.pool_tokens(out.last_hidden_state, batch["attention_mask"])
        rows.append({"stage": f"sentence vectors ({model.encoder.pooling} pooling)", "module": "pooling",
                     "shape": list(vectors.shape), "shared": "yes"})
        for name, head in model.heads.items():
            rows.append({"stage": f"{name} logits ({', '.join(model.task_labels[name])})", "module": f"heads['{name}']",
                         "shape": list(head(vectors).shape), "shared": f"no: {name} only"})
    return pd.DataFrame(rows)


def training_curves(results: Mapping[str, "object"], window: int = 10) -> Figure:
    """Per-task training loss (moving average over ``window`` steps of that task) against the global step,
    one panel per task, one line per run (``results``: name -> TrainResult)."""
    tasks = sorted({t for r in results.values() for t in r.steps["task"].unique()},
                   key=lambda t: ["topic", "sentiment"].index(t) if t in ("topic", "sentiment") else 9)
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for name, result in results.items():
            steps = result.steps[result.steps["task"] == task]
            if steps.empty:
                continue
            ax.plot(steps["step"], steps["loss"].rolling(window, min_periods=1).mean(), label=name)
        ax.set_title(f"{task}: training loss ({window}-step moving average)")
        ax.set_xlabel("optimizer step (all tasks)")
        ax.set_ylabel("cross-entropy loss")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def confusion_matrices(confusion: Mapping[str, np.ndarray], labels: Mapping[str, Sequence[str]],
                       title: str = "") -> Figure:
    """One row-normalised confusion matrix per task (rows: true label, columns: predicted), counts annotated."""
    fig, axes = plt.subplots(1, len(confusion), figsize=(4.6 * len(confusion) + 1, 4.2), squeeze=False)
    for ax, (task, matrix) in zip(axes[0], confusion.items()):
        matrix = np.asarray(matrix)
        share = matrix / matrix.sum(axis=1, keepdims=True).clip(min=1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        names = list(labels[task])
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right")
        ax.set_yticks(range(len(names)), names)
        for i in range(len(names)):
            for j in range(len(names)):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                        color="white" if share[i, j] > 0.6 else "black", fontsize=9)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{task}{': ' + title if title else ''}")
    fig.tight_layout()
    return fig


def metric_bars(table: pd.DataFrame, metric: str = "accuracy", title: str = "") -> Figure:
    """Bars of the mean ``metric`` per experiment and task with seed-to-seed std as error bars, and the
    majority baseline as a dashed line per task (``table``: the long table of :func:`experiments.run_grid`)."""
    tasks = list(dict.fromkeys(table["task"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        rows = table[table["task"] == task]
        stats = rows.groupby("experiment", sort=False)[metric].agg(["mean", "std"]).fillna(0)
        ax.bar(range(len(stats)), stats["mean"], yerr=stats["std"], capsize=4, color="tab:blue", alpha=0.8)
        ax.set_xticks(range(len(stats)), stats.index, rotation=20, ha="right")
        baseline = rows["majority baseline"].iloc[0] if "majority baseline" in rows else None
        if baseline is not None:
            ax.axhline(baseline, ls="--", color="grey", label=f"majority baseline {baseline:.3f}")
            ax.legend(loc="lower right")
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"test {metric}")
        ax.set_title(f"{task}{': ' + title if title else ''}")
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
