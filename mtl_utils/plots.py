"""The series' figures: each function draws one figure with titles and labelled axes and returns it."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def similarity_heatmap(matrix: np.ndarray, labels: Sequence[str], title: str = "Cosine similarity",
                       width: int = 55) -> Figure:
    """Heatmap of a square similarity matrix, each cell annotated, rows/columns labelled by (shortened) text.

    The colour scale spans the off-diagonal values (the diagonal, each text with itself, is left white),
    so that differences between pairs stay visible.
    """
    matrix = np.asarray(matrix, dtype=float)
    n = len(labels)
    if matrix.shape != (n, n):
        raise ValueError(f"matrix shape {matrix.shape} does not match {n} labels")
    diagonal = np.eye(n, dtype=bool)
    off = matrix[~diagonal] if n > 1 else matrix.ravel()
    low, high = float(off.min()), float(off.max())
    fig, ax = plt.subplots(figsize=(3 + 0.75 * n, 1.5 + 0.6 * n))
    image = ax.imshow(np.ma.masked_where(diagonal, matrix), cmap="viridis", vmin=low, vmax=max(high, low + 1e-6))
    short = [_short(t, width) for t in labels]
    ax.set_xticks(range(n), [str(i + 1) for i in range(n)])
    ax.set_yticks(range(n), [f"{s}  {i + 1}" for i, s in enumerate(short)])
    ax.set_xlabel("sentence (numbered as the rows)")
    ax.set_ylabel("sentence")
    for i in range(n):
        for j in range(n):
            light = diagonal[i, j] or matrix[i, j] > low + 0.6 * (high - low)
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if light else "white")
    fig.colorbar(image, ax=ax, label="cosine similarity (off-diagonal pairs)")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def pooling_bars(table: pd.DataFrame, metric: str = "accuracy", title: str | None = None) -> Figure:
    """Grouped bars per task: pooling modes on the x axis, one bar per vector variant, majority class dashed.

    ``table`` is :func:`mtl_utils.probing.pooling_table`'s output (index task / vectors / pooling); with its
    ``accuracy ±95%`` column the bars carry those intervals as error bars.
    """
    tasks = list(dict.fromkeys(table.index.get_level_values("task")))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        part = table.loc[task]
        base = part.xs("majority class", level="pooling")[metric].iloc[0]
        probes = part.drop(index="majority class", level="pooling")
        wide = probes[metric].unstack("vectors").reindex(list(dict.fromkeys(probes.index.get_level_values("pooling"))))
        interval = f"{metric} ±95%"
        errors = probes[interval].unstack("vectors").reindex(wide.index) if interval in probes.columns else None
        modes, variants = list(wide.index), list(wide.columns)
        width = 0.8 / len(variants)
        for k, variant in enumerate(variants):
            xs = np.arange(len(modes)) + (k - (len(variants) - 1) / 2) * width
            yerr = None if errors is None else errors[variant].values
            bars = ax.bar(xs, wide[variant].values, width, yerr=yerr, capsize=3, label=f"{variant} vectors")
            ax.bar_label(bars, fmt="%.3f", fontsize=8, padding=2, label_type="center", color="white")
        ax.axhline(base, color="black", linestyle="--", linewidth=1, label=f"majority class ({base:.3f})")
        ax.set_xticks(range(len(modes)), modes)
        ax.set_xlabel("pooling")
        ax.set_ylabel(f"test {metric}")
        ax.set_ylim(0, 1.2)
        ax.set_yticks(np.arange(0, 1.01, 0.2))
        ax.set_title(f"{task}: frozen encoder + logistic regression")
        ax.legend(loc="upper center", fontsize=8, ncol=3 if errors is None else 2)
        if errors is not None:
            ax.set_ylabel(f"test {metric} (bars: 95% interval)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


@dataclass
class MapPanel:
    """One scatter panel of :func:`embedding_maps`: 2-D coordinates coloured by class."""

    coords: np.ndarray
    labels: np.ndarray
    label_names: Sequence[str]
    title: str
    axis_prefix: str = "component"


def embedding_maps(panels: Sequence[MapPanel], ncols: int = 2, point_size: float = 6.0) -> Figure:
    """A grid of 2-D maps (e.g. PCA and t-SNE, by topic and by sentiment), one legend per panel."""
    nrows = int(np.ceil(len(panels) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(6 * ncols, 5 * nrows), squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        labels = np.asarray(panel.labels)
        for k, name in enumerate(panel.label_names):
            pts = panel.coords[labels == k]
            ax.scatter(pts[:, 0], pts[:, 1], s=point_size, alpha=0.7, label=f"{name} ({len(pts)})")
        ax.set_xlabel(f"{panel.axis_prefix} 1")
        ax.set_ylabel(f"{panel.axis_prefix} 2")
        ax.set_title(panel.title)
        ax.legend(fontsize=8, markerscale=2, loc="best")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig
