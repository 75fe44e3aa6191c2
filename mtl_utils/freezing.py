"""Freezing by intent: the whole model, the backbone, the embeddings plus the bottom k encoder layers, or one
task's head; and a report of what is trainable.

A frozen parameter has ``requires_grad=False``: autograd records nothing for it and the training loop leaves
it out of the optimizer. A module whose parameters are all frozen should also run in eval mode (no dropout)
so that it computes a fixed function of its input; :func:`set_frozen_eval` does that after ``model.train()``.
That fixed function is what :mod:`mtl_utils.frozen_cache` computes once and caches.
"""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from torch import nn

from .model import MultiTaskModel

FREEZE_PARTS: tuple[str, ...] = ("all", "backbone", "bottom", "head")


def encoder_layers(transformer: nn.Module) -> nn.ModuleList:
    """The transformer's stack of encoder layers, found on the model (BERT-style ``encoder.layer``,
    DistilBERT-style ``transformer.layer``), never assumed to have 6 entries."""
    for path in ("encoder.layer", "transformer.layer", "layers"):
        module: nn.Module | None = transformer
        for attr in path.split("."):
            module = getattr(module, attr, None)
        if isinstance(module, nn.ModuleList) and len(module) > 0:
            return module
    raise ValueError(
        f"{type(transformer).__name__} has no encoder layer list (looked for encoder.layer, transformer.layer, "
        "layers): freezing by layer needs a BERT-like encoder"
    )


def embeddings_module(transformer: nn.Module) -> nn.Module:
    """The transformer's input embeddings block (word + position + type embeddings and their LayerNorm)."""
    module = getattr(transformer, "embeddings", None)
    if not isinstance(module, nn.Module):
        raise ValueError(f"{type(transformer).__name__} has no .embeddings module: freezing needs a BERT-like encoder")
    return module


def num_layers(model: MultiTaskModel) -> int:
    """Number of encoder layers of the model's transformer (6 for all-MiniLM-L6-v2, 12 for bert-base)."""
    return len(encoder_layers(model.encoder.transformer))


def check_k(model: MultiTaskModel, k: int) -> int:
    """Validate a count of bottom encoder layers: an integer in ``0..num_layers``."""
    n = num_layers(model)
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= n:
        raise ValueError(f"k (frozen encoder layers) must be an integer in 0..{n} for this model, got {k!r}")
    return k


def _set(module: nn.Module, trainable: bool) -> None:
    for param in module.parameters():
        param.requires_grad_(trainable)


def unfreeze_all(model: nn.Module) -> nn.Module:
    """Make every parameter trainable again."""
    _set(model, True)
    return model


def freeze_all(model: nn.Module) -> nn.Module:
    """Freeze every parameter: nothing learns (a finished model used only for inference)."""
    _set(model, False)
    return model


def freeze_bottom(model: MultiTaskModel, k: int) -> MultiTaskModel:
    """Freeze the embeddings and the bottom ``k`` encoder layers (``k=0`` freezes nothing).

    Raises ``ValueError`` when ``k`` is outside ``0..num_layers``.
    """
    check_k(model, k)
    if k > 0:
        transformer = model.encoder.transformer
        _set(embeddings_module(transformer), False)
        for layer in encoder_layers(transformer)[:k]:
            _set(layer, False)
    return model


def freeze_backbone(model: MultiTaskModel) -> MultiTaskModel:
    """Freeze the embeddings and every encoder layer; the heads (and a projection, if any) stay trainable.

    With mean pooling and no projection this is a linear probe on fixed sentence embeddings.
    """
    return freeze_bottom(model, num_layers(model))


def freeze_head(model: MultiTaskModel, task: str) -> MultiTaskModel:
    """Freeze one task's head (``KeyError`` naming the known tasks for an unknown one)."""
    model.check_tasks([task])
    _set(model.heads[task], False)
    return model


def freeze(model: MultiTaskModel, part: str, k: int | None = None, task: str | None = None) -> MultiTaskModel:
    """Freeze by intent: ``part`` is ``"all"``, ``"backbone"``, ``"bottom"`` (with ``k``) or ``"head"`` (with
    ``task``). Freezing adds to what is already frozen; :func:`unfreeze_all` resets."""
    if part == "all":
        return freeze_all(model)
    if part == "backbone":
        return freeze_backbone(model)
    if part == "bottom":
        if k is None:
            raise ValueError("freeze(model, 'bottom') needs k, the number of bottom encoder layers to freeze")
        return freeze_bottom(model, k)
    if part == "head":
        if task is None:
            raise ValueError("freeze(model, 'head') needs task, the name of the head to freeze")
        return freeze_head(model, task)
    raise ValueError(f"unknown part '{part}' to freeze; choose one of {FREEZE_PARTS}")


def _all_frozen(module: nn.Module) -> bool:
    params = list(module.parameters())
    return bool(params) and not any(p.requires_grad for p in params)


def frozen_bottom(model: MultiTaskModel) -> int:
    """How many bottom encoder layers are frozen together with the embeddings (0 if the embeddings train)."""
    transformer = model.encoder.transformer
    if not _all_frozen(embeddings_module(transformer)):
        return 0
    k = 0
    for layer in encoder_layers(transformer):
        if not _all_frozen(layer):
            break
        k += 1
    return k


def encoder_frozen(model: MultiTaskModel) -> bool:
    """True when no parameter of the shared encoder (transformer and projection) trains."""
    return not any(p.requires_grad for p in model.encoder.parameters())


def set_frozen_eval(model: MultiTaskModel) -> MultiTaskModel:
    """Put every fully frozen block (embeddings, encoder layer, head) in eval mode: no dropout, so it computes
    a fixed function. Call it after ``model.train()``."""
    transformer = model.encoder.transformer
    blocks = [embeddings_module(transformer), *encoder_layers(transformer), *model.heads.values()]
    for block in blocks:
        if _all_frozen(block):
            block.eval()
    return model


def parts(model: MultiTaskModel) -> dict[str, nn.Module]:
    """The model's parts from the bottom up: embeddings, each encoder layer, the projection (if any), each head."""
    transformer = model.encoder.transformer
    out: dict[str, nn.Module] = {"embeddings": embeddings_module(transformer)}
    for i, layer in enumerate(encoder_layers(transformer)):
        out[f"encoder layer {i + 1}"] = layer
    if model.encoder.projection is not None:
        out["projection"] = model.encoder.projection
    for name, head in model.heads.items():
        out[f"head: {name}"] = head
    return out


def parameter_report(model: MultiTaskModel) -> pd.DataFrame:
    """Trainable vs total parameters per part (embeddings, each encoder layer, projection, each head) and in
    total, with the trainable share."""
    rows = []
    for part, module in parts(model).items():
        total = sum(p.numel() for p in module.parameters())
        trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
        rows.append({"part": part, "parameters": total, "trainable": trainable,
                     "state": "trainable" if trainable == total else "frozen" if trainable == 0 else "partly frozen"})
    table = pd.DataFrame(rows)
    counted = int(table["parameters"].sum())
    everything = sum(p.numel() for p in model.parameters())
    if counted != everything:  # parameters outside the listed parts would be hidden otherwise
        rest = [p for p in model.parameters() if all(p is not q for m in parts(model).values() for q in m.parameters())]
        table.loc[len(table)] = {"part": "other", "parameters": sum(p.numel() for p in rest),
                                 "trainable": sum(p.numel() for p in rest if p.requires_grad), "state": ""}
    table.loc[len(table)] = {"part": "total", "parameters": everything,
                             "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad), "state": ""}
    table["trainable share"] = (table["trainable"] / table["parameters"]).map("{:.2%}".format)
    return table


def trainable_parameters(model: nn.Module) -> int:
    """Number of parameters with ``requires_grad=True``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def unfreezing_schedule(n_layers: int, epochs: int, final_frozen: int = 0) -> list[int]:
    """Frozen bottom layers per epoch for gradual unfreezing (ULMFiT): epoch 1 trains the heads only (all
    ``n_layers`` frozen), each later epoch unfreezes one more layer from the top, never below ``final_frozen``."""
    if not 0 <= final_frozen <= n_layers:
        raise ValueError(f"final_frozen must be in 0..{n_layers}, got {final_frozen}")
    return [max(final_frozen, n_layers - e) for e in range(epochs)]


def check_heads(model: MultiTaskModel, tasks: Sequence[str]) -> list[str]:
    """Validate head names to freeze (``KeyError`` naming the known tasks)."""
    return model.check_tasks(list(tasks))


# ---------------------------------------------------------------------------------------------------------
# Tables and figures of notebook 03
# ---------------------------------------------------------------------------------------------------------

def intents_table(model: MultiTaskModel, task: str) -> pd.DataFrame:
    """Trainable parameters per part under each intent: nothing frozen, bottom k (k = 1, half, all but one),
    backbone, one head (``task``), everything. Leaves ``model`` unfrozen."""
    n = num_layers(model)
    intents = {"nothing frozen": lambda m: m, f"embeddings + bottom {n // 2}": lambda m: freeze_bottom(m, n // 2),
               f"embeddings + bottom {n - 1}": lambda m: freeze_bottom(m, n - 1), "backbone": freeze_backbone,
               f"head: {task}": lambda m: freeze_head(m, task), "whole model": freeze_all}
    columns = {}
    for name, apply in intents.items():
        unfreeze_all(model)
        apply(model)
        columns[name] = parameter_report(model).set_index("part")["trainable"]
    unfreeze_all(model)
    table = pd.DataFrame(columns)
    table.insert(0, "parameters", parameter_report(model).set_index("part")["parameters"])
    return table


def run_summary(results: dict, name_to_k: dict[str, int] | None = None) -> pd.DataFrame:
    """One row per (experiment, seed, task) from ``run_grid`` results: test accuracy and macro-F1, the mean
    validation macro-F1 of the best epoch over tasks (for choosing a setting without the test set), seconds
    per training epoch (training loop only) and one-off cache seconds."""
    rows = []
    for (name, seed), result in results.items():
        history = result.history[result.history["steps"] > 0] if "steps" in result.history else result.history
        best = history[history["epoch"] == result.best_epoch]
        epochs = history.drop_duplicates("epoch")
        cache = float(epochs["cache seconds"].sum()) if "cache seconds" in epochs else 0.0
        for row in result.test.to_dict("records"):
            rows.append({"experiment": name, "k": (name_to_k or {}).get(name), "seed": seed, "task": row["task"],
                         "accuracy": row["accuracy"], "macro-F1": row["macro-F1"],
                         "majority baseline": row["majority baseline"],
                         "val macro-F1 (mean of tasks)": float(best["val macro-F1"].mean()),
                         "seconds per epoch": float(epochs["train seconds"].mean()),
                         "cache seconds": cache})
    return pd.DataFrame(rows)


def sweep_table(summary: pd.DataFrame, trainable: dict[str, int]) -> pd.DataFrame:
    """The sweep in one table: per experiment, test accuracy and macro-F1 per task as mean ± std over seeds,
    trainable parameters and seconds per epoch (mean over seeds)."""
    def fmt(values: pd.Series) -> str:
        return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}" if len(values) > 1 else f"{values.mean():.3f}"

    out = {}
    for name, part in summary.groupby("experiment", sort=False):
        row = {}
        for task, rows in part.groupby("task", sort=False):
            row[f"{task} accuracy"] = fmt(rows["accuracy"])
            row[f"{task} macro-F1"] = fmt(rows["macro-F1"])
        row["trainable parameters"] = f"{trainable[name]:,}"
        row["seconds per epoch"] = round(part.drop_duplicates("seed")["seconds per epoch"].mean(), 2)
        row["seeds"] = part["seed"].nunique()
        out[name] = row
    return pd.DataFrame(out).T


def plot_sweep(summary: pd.DataFrame, title: str = "Freezing the bottom k encoder layers"):
    """Two panels against k: test accuracy per task (mean ± std over seeds, majority class dashed) and
    seconds per training epoch (log scale)."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    for task, rows in summary.groupby("task", sort=False):
        stats = rows.groupby("k")["accuracy"].agg(["mean", "std"]).fillna(0.0)
        line = left.errorbar(stats.index, stats["mean"], yerr=stats["std"], marker="o", capsize=3, label=task)
        left.axhline(rows["majority baseline"].iloc[0], ls="--", color=line[0].get_color(), alpha=0.6,
                     label=f"{task}: majority class")
    left.set_xlabel("frozen encoder layers k (embeddings frozen for k > 0)")
    left.set_ylabel("test accuracy")
    left.set_title("accuracy vs k")
    left.legend(fontsize=8)
    time_k = summary.drop_duplicates(["k", "seed"]).groupby("k")["seconds per epoch"].agg(["mean", "std"]).fillna(0.0)
    right.errorbar(time_k.index, time_k["mean"], yerr=time_k["std"], marker="o", capsize=3, color="tab:gray")
    right.set_yscale("log")
    right.set_xlabel("frozen encoder layers k (k = all: heads only)")
    right.set_ylabel("seconds per training epoch (log scale)")
    right.set_title("training time vs k (with the frozen-layer cache)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def drift_table(results: dict, watched: str) -> pd.DataFrame:
    """Per continuation run (name -> TrainResult with ``watch_tasks``) and epoch: the watched task's
    validation and test accuracy, and the trained tasks' validation accuracy."""
    rows = []
    for name, result in results.items():
        h = result.history
        for epoch, part in h.groupby("epoch"):
            row = {"run": name, "epoch": int(epoch)}
            w = part[part["task"] == watched].iloc[0]
            row[f"{watched} val accuracy"] = w["val accuracy"]
            row[f"{watched} test accuracy"] = w["test accuracy"]
            for r in part[part["task"] != watched].to_dict("records"):
                row[f"{r['task']} val accuracy"] = r["val accuracy"]
            rows.append(row)
    return pd.DataFrame(rows)


def plot_drift(table: pd.DataFrame, watched: str, trained: str):
    """The watched (frozen-head) task's test accuracy and the trained task's validation accuracy per epoch,
    one line per continuation run."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    for name, part in table.groupby("run", sort=False):
        left.plot(part["epoch"], part[f"{watched} test accuracy"], marker="o", label=name)
        right.plot(part["epoch"], part[f"{trained} val accuracy"], marker="o", label=name)
    left.set_title(f"{watched} (head frozen, not trained): test accuracy")
    right.set_title(f"{trained} (trained): validation accuracy")
    for ax in (left, right):
        ax.set_xlabel(f"epoch of {trained}-only training (0 = the multi-task model)")
        ax.set_ylabel("accuracy")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
