"""Every figure of the series (the only module that imports matplotlib).

Each function draws one figure with a title and labelled axes and returns it; :func:`show` saves a figure,
displays it with alternative text (read by screen readers and shown when images are off) and closes it.
"""
from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from series.report import shorten

TASK_ORDER = ("topic", "sentiment", "genre")


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    """``fig`` as PNG bytes (tight bounding box); the figure is closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _img(png: bytes, alt: str) -> str:
    encoded = base64.b64encode(png).decode()
    return f'<img src="data:image/png;base64,{encoded}" alt="{html.escape(alt, quote=True)}"/>'


def figure_html(fig: Figure, alt: str, dpi: int = 110) -> str:
    """``fig`` as an HTML ``<img>`` with the PNG inline and ``alt`` as its alternative text (for views that
    are HTML, such as :mod:`series.explore`'s); the figure is closed."""
    return _img(figure_png(fig, dpi), alt)


def show(fig: Figure, alt: str, path: str | Path | None = None, dpi: int = 110) -> None:
    """Save ``fig`` as PNG (to ``path``, if given), display it with ``alt`` as its alternative text, close it.

    The display carries the image twice: an HTML ``<img alt=...>`` (JupyterLab, nbconvert and the book show
    this one) and the plain PNG (for renderers that take no HTML), plus the text itself."""
    png = figure_png(fig, dpi)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(png)
    try:
        from IPython.display import display
    except ImportError:  # plain Python: nothing to display
        return
    display({"text/html": _img(png, alt), "image/png": base64.b64encode(png).decode(),
             "text/plain": f"[figure] {alt}"}, raw=True)


def similarity_heatmap(matrix: np.ndarray, labels: Sequence[str], title: str = "Cosine similarity",
                       width: int = 55) -> Figure:
    """Heatmap of a square similarity matrix, each cell annotated, rows labelled by (shortened) text. The colour
    scale spans the off-diagonal values (the diagonal, each text with itself, is left white)."""
    matrix = np.asarray(matrix, dtype=float)
    n = len(labels)
    if matrix.shape != (n, n):
        raise ValueError(f"matrix shape {matrix.shape} does not match {n} labels")
    diagonal = np.eye(n, dtype=bool)
    off = matrix[~diagonal] if n > 1 else matrix.ravel()
    low, high = float(off.min()), float(off.max())
    fig, ax = plt.subplots(figsize=(3 + 0.75 * n, 1.5 + 0.6 * n))
    image = ax.imshow(np.ma.masked_where(diagonal, matrix), cmap="viridis", vmin=low, vmax=max(high, low + 1e-6))
    ax.set_xticks(range(n), [str(i + 1) for i in range(n)])
    ax.set_yticks(range(n), [f"{shorten(t, width)}  {i + 1}" for i, t in enumerate(labels)])
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


def in_batch_matrix(panels: Mapping[str, np.ndarray]) -> Figure:
    """What in-batch negatives are, drawn: per encoder (``panels``: name -> ``[B, B]`` cosines of B
    headlines, the rows, with their B passages, the columns), one batch's similarity matrix. The diagonal
    (outlined) holds each headline's own passage, the rest of its row its negatives; a dot marks the passage
    each headline scores highest, the one it would retrieve. One colour scale for every panel."""
    matrices = {name: np.asarray(m, dtype=float) for name, m in panels.items()}
    if not matrices or any(m.ndim != 2 or m.shape[0] != m.shape[1] for m in matrices.values()):
        raise ValueError(f"need square [B, B] matrices, got {[m.shape for m in matrices.values()]}")
    low = min(float(m.min()) for m in matrices.values())
    high = max(float(m.max()) for m in matrices.values())
    fig, axes = plt.subplots(1, len(matrices), figsize=(4.3 * len(matrices), 4.2), squeeze=False)
    for ax, (name, m) in zip(axes[0], matrices.items()):
        b = len(m)
        image = ax.imshow(m, cmap="viridis", vmin=low, vmax=high)
        for i in range(b):
            ax.add_patch(plt.Rectangle((i - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="white", lw=1.5))
        picks = m.argmax(axis=1)
        ax.plot(picks, range(b), "o", color="tab:red", markersize=4)
        ax.set_title(f"{name}\n{int((picks == np.arange(b)).sum())} of {b} rows pick their own passage",
                     fontsize=10)
        ax.set_xlabel("passage (column i: headline i's own)")
        ax.set_ylabel("headline")
        ax.set_xticks(range(b), [str(i + 1) for i in range(b)])
        ax.set_yticks(range(b), [str(i + 1) for i in range(b)])
    fig.colorbar(image, ax=axes[0].tolist(), label="cosine similarity", shrink=0.8)
    return fig


def attention_weights(snippets: Sequence[tuple[Sequence[str], np.ndarray]],
                      title: str = "Where the learned query looks") -> Figure:
    """One panel per text: the attention-pooling weight of each word piece (bars, in reading order), with
    mean pooling's ``1 / pieces`` dashed for scale; ``snippets`` holds each text's pieces and weights."""
    fig, axes = plt.subplots(len(snippets), 1, figsize=(9, 2.1 * len(snippets)), squeeze=False)
    for ax, (pieces, weights) in zip(axes[:, 0], snippets):
        weights = np.asarray(weights, dtype=float)
        x = np.arange(len(pieces))
        ax.bar(x, weights, color=np.where(weights > 1 / len(pieces), "tab:orange", "tab:blue"))
        ax.axhline(1 / len(pieces), ls="--", color="black", lw=1, label="mean pooling: 1 / pieces")
        ax.set_xticks(x, pieces, rotation=60, ha="right", fontsize=8)
        ax.set_xlim(-0.6, len(pieces) - 0.4)
        ax.set_ylabel("weight")
        ax.legend(fontsize=8, loc="upper right")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def gradient_cosine(table: pd.DataFrame, title: str = "Do the two tasks pull the same way?") -> Figure:
    """The cosine between the tasks' gradients per unit of the encoder (``table``: one row per unit, bottom
    first, one column per model), zero marked: above it the tasks agree, below it they conflict."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    x = np.arange(len(table))
    for column in table.columns:
        ax.plot(x, table[column].to_numpy(), marker="o", label=column)
    ax.axhline(0, color="black", lw=1)
    ax.set_xticks(x, list(table.index))
    ax.set_xlabel("encoder unit (bottom to top)")
    ax.set_ylabel("cosine of the tasks' gradients")
    ax.set_title(title)
    ax.legend(fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def latency_distributions(samples: pd.DataFrame, title: str = "Batch-1 latency of each variant") -> Figure:
    """One horizontal box per variant over its single-sentence requests (``samples``: ``variant``, ``ms``,
    as :func:`series.serving_measurements.latency_samples` gives them): the box spans the middle half, the
    line is the median, the whiskers reach the 5th and 95th percentiles, dots are the slower and faster
    requests beyond them; log scale, so a long tail shows."""
    order = list(dict.fromkeys(samples["variant"]))
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(order) + 1.6))
    ax.boxplot([samples.loc[samples["variant"] == v, "ms"].to_numpy() for v in order][::-1], vert=False,
               whis=(5, 95), widths=0.6, flierprops={"markersize": 2, "alpha": 0.4},
               medianprops={"color": "black"})
    ax.set_yticks(np.arange(1, len(order) + 1), order[::-1])
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1, 2, 5)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("milliseconds per request (log scale); box: middle half, whiskers: 5th to 95th percentile")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def interval_bars(table: pd.DataFrame, group: str, label: str, title: str, xlabel: str) -> Figure:
    """Horizontal bars of accuracy with 95 % intervals, one panel per task: ``table`` has columns task,
    ``label`` (the bar's name), accuracy, low, high and optionally ``majority baseline`` (dashed line);
    ``group`` colours the bars (e.g. vector variant)."""
    tasks = [t for t in TASK_ORDER if t in set(table["task"])] + [t for t in dict.fromkeys(table["task"])
                                                                   if t not in TASK_ORDER]
    fig, axes = plt.subplots(1, len(tasks), figsize=(6.2 * len(tasks), 0.45 * table.groupby("task").size().max() + 1.6),
                             squeeze=False)
    colours = {g: f"C{i}" for i, g in enumerate(dict.fromkeys(table[group]))}
    for ax, task in zip(axes[0], tasks):
        part = table[table["task"] == task].reset_index(drop=True)
        y = np.arange(len(part))[::-1]
        ax.barh(y, part["accuracy"], color=[colours[g] for g in part[group]], alpha=0.85)
        ax.errorbar(part["accuracy"], y, xerr=[part["accuracy"] - part["low"], part["high"] - part["accuracy"]],
                    fmt="none", ecolor="black", capsize=3)
        for yi, acc in zip(y, part["accuracy"]):
            ax.text(0.01, yi, f"{acc:.3f}", va="center", color="white", fontsize=8)
        if "majority baseline" in part:
            ax.axvline(part["majority baseline"].iloc[0], ls="--", color="grey", label="majority class")
        ax.set_yticks(y, part[label])
        ax.set_xlim(0, 1)
        ax.set_xlabel(xlabel)
        ax.set_title(task)
        ax.grid(axis="x", alpha=0.3)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours.values()]
    fig.legend(handles, list(colours), loc="lower center", ncol=len(colours), fontsize=8, bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
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


def difference_plot(table: pd.DataFrame, title: str = "Paired differences (95% intervals)",
                    xlabel: str = "test accuracy difference (A − B)",
                    legend: str = "blue: interval excludes 0; green: inside the shaded margin; grey: neither",
                    detected: str = "detected") -> Figure:
    """A forest plot: each comparison of a table in :mod:`series.comparisons`' format as a point with its
    95 % interval, zero marked. Where a row carries a margin declared before its runs
    (:func:`~series.comparisons.with_margin`), the band ±margin is shaded behind it. Colour by verdict:
    blue where the interval excludes zero, green where it lies inside the margin (equivalent), grey
    otherwise (inconclusive, or no margin declared and no difference detected). ``detected`` names the
    column that says a difference was found (``"detected (Holm)"`` in the README's family, whose ``legend``
    says so)."""
    rows = table.reset_index(drop=True).to_dict("records")
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(rows) + 1.5))
    y = np.arange(len(rows))[::-1]
    for yi, r in zip(y, rows):
        margin = r.get("margin")
        if margin is not None and not pd.isna(margin):
            ax.fill_betweenx([yi - 0.35, yi + 0.35], -margin, margin, color="tab:green", alpha=0.15, lw=0)
        colour = ("tab:blue" if r[detected] else
                  "tab:green" if r.get("equivalent") is True else "tab:grey")
        ax.errorbar(r["difference"], yi, xerr=[[r["difference"] - r["low"]], [r["high"] - r["difference"]]],
                    fmt="o", color=colour, capsize=3)
    ax.axvline(0, color="black", lw=1)
    ax.set_yticks(y, [r.get("label") or f"{r['task']}: {r['A']} − {r['B']}" for r in rows])
    ax.set_xlabel(f"{xlabel}\n{legend}" if legend else xlabel)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def label_curve(runs: pd.DataFrame, comparisons: pd.DataFrame, task: str, majority: float) -> Figure:
    """Left: ``task`` test accuracy against its labelled training examples (log scale), one line per
    experiment of :func:`series.experiments.label_budget_grid` (mean over seeds, bars: min to max), the
    majority baseline dashed. Right: each paired comparison of
    :func:`series.experiments.label_budget_table` (A − B) with its 95 % interval, per budget."""
    runs = runs[runs["task"] == task]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    for name, part in runs.groupby("experiment", sort=False):
        stats = part.groupby("labels")["accuracy"].agg(["mean", "min", "max"])
        spread = [(stats["mean"] - stats["min"]).clip(lower=0), (stats["max"] - stats["mean"]).clip(lower=0)]
        left.errorbar(stats.index, stats["mean"], yerr=spread, marker="o", capsize=3, label=name)  # clip: rounding
    left.axhline(majority, color="grey", ls="--", lw=1, label="majority class")
    left.set_xscale("log")
    left.set_xlabel(f"labelled {task} training examples (log scale)")
    left.set_ylabel(f"{task} test accuracy")
    left.set_title(f"{task}: accuracy by label budget (mean over seeds, min–max)")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    sizes = runs.groupby("budget", sort=False)["labels"].first()
    for i, ((a, b), part) in enumerate(comparisons.groupby(["A", "B"], sort=False)):
        x = np.array([sizes[n] for n in part["labels"]], dtype=float) * (1.06 ** i)
        right.errorbar(x, part["difference"], yerr=[part["difference"] - part["low"], part["high"] - part["difference"]],
                       marker="o", capsize=3, label=f"{a} − {b}")
    right.axhline(0, color="black", lw=1)
    right.set_xscale("log")
    for ax in (left, right):  # ticks at the budgets themselves, as plain numbers
        ax.set_xticks(sorted(sizes.astype(float)), [f"{int(n):,}" for n in sorted(sizes)])
        ax.xaxis.set_minor_formatter(NullFormatter())
    right.set_xlabel(f"labelled {task} training examples (log scale)")
    right.set_ylabel("paired accuracy difference (A − B)")
    right.set_title("Paired differences, 95% intervals over seeds")
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig


def learning_curve(table: pd.DataFrame, budget: int,
                   title: str = "Validation accuracy against examples seen (one seed)") -> Figure:
    """One panel per task: validation accuracy against examples per task (log scale), a line per experiment
    of :func:`series.experiments.learning_curve`, the protocol's ``budget`` dashed."""
    tasks = [t for t in TASK_ORDER if t in set(table["task"])] + sorted(set(table["task"]) - set(TASK_ORDER))
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        part = table[table["task"] == task]
        for name, line in part.groupby("experiment", sort=False):
            ax.plot(line["examples per task"], line["validation accuracy"], marker="o", label=name)
        ax.axvline(budget, color="grey", ls="--", lw=1, label=f"the protocol's budget ({budget:,})")
        ax.set_xscale("log")
        points = sorted(part["examples per task"].unique())
        ax.set_xticks(points, [f"{int(n):,}" for n in points])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(f"{task} examples seen (log scale)")
        ax.set_ylabel(f"{task} validation accuracy")
        ax.set_title(f"{task}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def training_curves(results: Mapping[str, object], window: int = 20) -> Figure:
    """Per-task training loss (moving average over ``window`` of that task's steps) against the task's own
    step count, one panel per task, one line per run (``results``: name -> TrainResult)."""
    tasks = [t for t in TASK_ORDER if any(t in set(r.steps["task"]) for r in results.values())]
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for name, result in results.items():
            steps = result.steps[result.steps["task"] == task]
            if not steps.empty:
                ax.plot(steps["task step"], steps["loss"].rolling(window, min_periods=1).mean(), label=name)
        ax.set_title(f"{task}: training loss ({window}-step moving average)")
        ax.set_xlabel(f"steps on {task} batches (the task's own steps)")
        ax.set_ylabel("cross-entropy loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
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


def sweep_plot(summary: pd.DataFrame, comparisons: pd.DataFrame,
               title: str = "Freezing the bottom k encoder layers") -> Figure:
    """Two panels against k, stacked to fit the book's column: what freezing costs, each task's paired
    difference from k = 0 with its 95 % interval (``comparisons``: rows of
    :func:`series.experiments.comparison_table` whose ``A`` names an experiment of ``summary``, the margin
    shaded where declared), and seconds of the training loop per run (log scale)."""
    fig, (left, right) = plt.subplots(2, 1, figsize=(7, 7), sharex=True)
    k_of = summary.drop_duplicates("experiment").set_index("experiment")["k"]
    rows = comparisons[comparisons["A"].isin(k_of.index)].assign(k=lambda t: t["A"].map(k_of))
    if "margin" in rows and rows["margin"].notna().any():
        margin = float(rows["margin"].dropna().iloc[0])
        left.axhspan(-margin, margin, color="tab:green", alpha=0.12, lw=0, label=f"margin ±{margin:g}")
    by_task = rows.groupby("task", sort=False)
    for offset, (task, part) in zip(np.linspace(-0.06, 0.06, by_task.ngroups), by_task):  # side by side
        part = part.sort_values("k")
        left.errorbar(part["k"] + offset, part["difference"], capsize=3, marker="o", label=task,
                      yerr=[part["difference"] - part["low"], part["high"] - part["difference"]])
    left.axhline(0, color="black", lw=1)
    left.set_ylabel("test accuracy, k − (k = 0)\n(95% interval over seeds and sentences)")
    left.set_title("what freezing costs, paired against k = 0")
    left.legend(fontsize=9)
    time_k = summary.drop_duplicates(["k", "seed"]).groupby("k")["train seconds"].mean()
    right.plot(time_k.index, time_k.values, marker="o", color="tab:gray")
    right.set_yscale("log")
    right.set_xlabel("frozen encoder layers k (embeddings frozen for k > 0; k = all: heads only)")
    right.set_ylabel("seconds of training per run (log scale)")
    right.set_title("training time vs k (with the frozen-layer cache)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def drift_plot(table: pd.DataFrame, watched: str, trained: str) -> Figure:
    """The watched task's test accuracy and the trained task's validation accuracy per round, one line per
    continuation run (``table``: :func:`series.experiments.drift_table`); two panels stacked to
    fit the book's column."""
    fig, (left, right) = plt.subplots(2, 1, figsize=(7, 7), sharex=True)
    for name, part in table.groupby("run", sort=False):
        left.plot(part["round"], part[f"{watched} test accuracy"], marker="o", label=name)
        right.plot(part["round"], part[f"{trained} val accuracy"], marker="o", label=name)
    left.set_title(f"{watched} (not trained here): test accuracy")
    right.set_title(f"{trained} (trained): validation accuracy")
    right.set_xlabel(f"round of {trained}-only training (0 = the starting model)")
    for ax in (left, right):
        ax.set_ylabel("accuracy")
        ax.legend(fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def relative_change_plot(changes: pd.DataFrame, by: str = "experiment", include_heads: bool = False,
                         title: str = "How far each layer moved during fine-tuning") -> Figure:
    """Relative change per depth unit, embeddings on the left to the top layer on the right, one line per
    ``by`` value (mean over seeds, min–max as a band), log-scaled y axis. Heads are left out by default: they
    start from random weights, so their relative change measures something else."""
    data = changes if include_heads else changes[changes["kind"] != "head"]
    units = list(dict.fromkeys(data.sort_values("depth", ascending=False, kind="stable")["unit"]))
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
    ax.set_ylabel("relative change ||after − before|| / ||before||")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(title=by, fontsize=8)
    fig.tight_layout()
    return fig


def lr_profile(tables: Mapping[str, pd.DataFrame], title: str = "Learning rate by depth") -> Figure:
    """Peak learning rate per unit (embeddings left, heads right) for several settings, from
    :func:`mtl_utils.training.optim.lr_table` outputs keyed by a label (e.g. ``"ξ = 0.8"``)."""
    fig, ax = plt.subplots(figsize=(8, 4))
    units: Sequence[str] = ()
    for label, table in tables.items():
        ordered = table.iloc[::-1]
        units = list(ordered["group"])
        ax.plot(range(len(units)), ordered["learning rate"], marker="o", label=label)
    ax.set_xticks(range(len(units)), units, rotation=30, ha="right")
    return _rates_on_a_log_scale(fig, ax, title, "parameter group (bottom of the encoder on the left, heads on "
                                 "the right)", "peak learning rate")


def lr_schedule_plot(schedule: pd.DataFrame, groups: Sequence[str], title: str,
                     figsize: tuple[float, float] = (7, 3.5)) -> Figure:
    """Learning rate per step of some groups (``schedule``: :func:`mtl_utils.training.optim.lr_schedule`), log scale."""
    wide = schedule.pivot(index="step", columns="group", values="learning rate")
    fig, ax = plt.subplots(figsize=figsize)
    for group in groups:
        if group in wide:
            ax.plot(wide.index, wide[group], label=group)
    return _rates_on_a_log_scale(fig, ax, title, "optimizer step", "learning rate (log scale)")


def _rates_on_a_log_scale(fig: Figure, ax, title: str, xlabel: str, ylabel: str) -> Figure:
    """The finish both learning-rate figures share: a log rate axis, labels, grid and legend."""
    ax.set_yscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def speed_accuracy(speed: pd.DataFrame, quality: pd.DataFrame, title: str = "Speed and accuracy of each variant") -> Figure:
    """One panel per task: each variant's throughput relative to the baseline (x) against its test accuracy
    minus fp32's with the exact paired 95 % interval (y); the dashed band is ±0.5 accuracy points."""
    tasks = [t for t in TASK_ORDER if t in set(quality["task"])]
    fig, axes = plt.subplots(1, len(tasks), figsize=(6.2 * len(tasks), 4.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        part = quality[quality["task"] == task].set_index("variant")
        for i, (name, row) in enumerate(part.iterrows()):
            x = speed.loc[name, "× baseline"]
            ax.errorbar(x, row["− fp32"], yerr=[[row["− fp32"] - row["low"]], [row["high"] - row["− fp32"]]],
                        fmt="o", color=f"C{i}", capsize=3, label=name)
        ax.axhspan(-0.005, 0.005, color="grey", alpha=0.15, label="±0.5 points")
        ax.axhline(0, color="black", lw=0.8)
        ax.axvline(2.0, color="grey", ls="--", lw=0.8, label="2× fp32")
        ax.set_xlabel("throughput relative to PyTorch fp32")
        ax.set_ylabel("test accuracy − fp32 (95% paired interval)")
        ax.set_title(task)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="lower left")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def architecture(parameters: pd.DataFrame, labels: Mapping[str, Sequence[str]], hidden_size: int,
                 pooling: str = "mean", title: str = "One shared encoder, one head per task") -> Figure:
    """A block diagram of the multi-task model, left to right: text, word pieces, the shared encoder
    (embeddings and the layer stack, with their parameter counts), pooling to one sentence vector, then one
    head per task with its classes. ``parameters``: :func:`mtl_utils.modeling.anatomy.parameter_table`."""
    counts = parameters.set_index("part")["parameters"]
    layers = [p for p in counts.index if p.startswith("encoder layer")]
    fig, ax = plt.subplots(figsize=(14, 1.2 + 1.3 * max(2, len(labels))))
    height = 1.3 * max(2, len(labels))
    ax.set(xlim=(0, 14), ylim=(-0.2, height + 0.6), title=title)
    ax.axis("off")
    mid = height / 2

    def box(x, y, w, h, text, colour, **kw):
        ax.add_patch(plt.Rectangle((x, y), w, h, facecolor=colour, edgecolor="black", lw=1, **kw))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=9, wrap=True)

    def arrow(x0, y0, x1, y1):
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops={"arrowstyle": "->", "lw": 1.2})

    ax.add_patch(plt.Rectangle((1.55, 0.05), 6.3, height + 0.05, facecolor="#eef3fb", edgecolor="#4c72b0", ls="--"))
    ax.text(4.7, height - 0.15, "shared: computed once per sentence, trained by every task", ha="center",
            fontsize=9, color="#4c72b0")
    box(0.0, mid - 0.45, 1.3, 0.9, "text\n→ word pieces\n(tokenizer)", "white")
    arrow(1.3, mid, 1.75, mid)
    box(1.75, mid - 0.9, 1.5, 1.8, f"embeddings\n{counts['embeddings'] / 1e6:.1f} M", "#c6dbef")
    arrow(3.25, mid, 3.55, mid)
    per_layer = counts[layers[0]] / 1e6 if layers else 0
    box(3.55, mid - 0.9, 2.0, 1.8, f"{len(layers)} transformer layers\n{per_layer:.2f} M each\n"
        f"→ one {hidden_size}-d vector\nper word piece", "#9ecae1")
    arrow(5.55, mid, 5.85, mid)
    box(5.85, mid - 0.6, 1.85, 1.2, f"{pooling} pooling\n→ sentence vector\n[{hidden_size}]", "#fdd0a2")
    ys = np.linspace(height - 0.9, 0.3, len(labels)) if len(labels) > 1 else [mid - 0.3]
    for y, (task, names) in zip(ys, labels.items()):
        arrow(7.7, mid, 8.05, y + 0.3)
        n = counts.get(f"head: {task}", 0)
        box(8.05, y, 2.1, 0.6, f"head: {task}\nlinear {hidden_size}→{len(names)} ({n:,})", "#c7e9c0")
        arrow(10.15, y + 0.3, 10.45, y + 0.3)
        ax.text(10.5, y + 0.3, shorten(", ".join(names), 64), va="center", fontsize=8)
    total = counts.get("total", counts.sum())
    shared = total - sum(counts.get(f"head: {t}", 0) for t in labels)
    ax.text(0.0, -0.15, f"{shared / total:.2%} of the {total:,} parameters are shared; a training batch holds one "
            "task, and its head's loss trains that head and the whole shared encoder.", fontsize=8.5)
    return fig


def process_curves(losses: pd.DataFrame, title: str = "Training loss per step", window: int = 10) -> Figure:
    """One panel per task: the loss of each run (column ``run``) against the step, a rolling mean over
    ``window`` of the task's steps; the first run drawn thick and the others thin and dashed on top, so that
    runs which agree draw one line."""
    tasks = [t for t in TASK_ORDER if t in set(losses["task"])]
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.4 * len(tasks), 2.9), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for i, (run, part) in enumerate(losses[losses["task"] == task].groupby("run", sort=False)):
            style = {"lw": 3.5, "alpha": 0.35} if i == 0 else {"lw": 1.2, "ls": "--"}
            ax.plot(part["step"], part["loss"].rolling(window, min_periods=1).mean(), label=run, **style)
        ax.set(title=task, xlabel="optimizer step", ylabel=f"loss (mean of {window} steps)")
    axes[0][0].legend(fontsize=7, loc="upper right")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def batch_size_plot(table: pd.DataFrame, metric: str = "MRR@10") -> Figure:
    """Notebook 02: retrieval ``metric`` and the activations kept for the backward pass against the batch
    size of contrastive training (rows: ``batch``, ``metric``, ``saved activations (MB)``)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.6, 3.2))
    left.plot(table["batch"], table[metric], marker="o")
    left.set(xscale="log", xlabel="batch size (in-batch negatives + 1)", ylabel=f"test {metric}",
             title="Retrieval after one pass")
    left.set_xticks(table["batch"], [str(b) for b in table["batch"]])
    right.bar([str(b) for b in table["batch"]], table["saved activations (MB)"], color="tab:grey")
    right.set(xlabel="batch size (GradCache: one mini-batch's graph)", ylabel="MB kept for backward",
              title="Activation memory of a step")
    fig.tight_layout()
    return fig


def tradeoff_plot(table: pd.DataFrame, metric: str = "MRR@10") -> Figure:
    """Notebook 04: each encoder's retrieval ``metric`` against its clustering V-measure, and against the
    accuracy of each task it was trained for (one point per encoder, labelled)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.4, 3.8))
    for i, row in enumerate(table.to_dict("records")):
        left.scatter(row["V-measure (topic)"], row[metric], color=f"C{i % 10}", label=row["encoder"])
        for task, marker in (("topic", "o"), ("sentiment", "s")):
            value = row.get(f"{task} accuracy")
            if value is not None and value == value:
                right.scatter(value, row[metric], color=f"C{i % 10}", marker=marker)
    left.set(xlabel="clustering V-measure (topic test sentences)", ylabel=f"retrieval {metric}",
             title="Embedding quality")
    right.set(xlabel="test accuracy (○ topic, □ sentiment)", ylabel=f"retrieval {metric}",
              title="What classification costs retrieval")
    fig.legend(loc="lower center", ncol=2, fontsize=8, bbox_to_anchor=(0.5, -0.02 - 0.045 * len(table) / 2))
    fig.tight_layout()
    return fig


def holm_plot(p_values: Sequence[float], alpha: float = 0.05,
              title: str = "Holm's step-down test over one family") -> Figure:
    """Holm's procedure as a picture: the p-values sorted (x: their rank), each against its threshold
    α / (m − rank + 1); the procedure calls every p-value below its threshold up to the first one above,
    and none after it. Called points are blue, the rest grey; the plain α line is dashed."""
    p = np.sort(np.asarray(p_values, dtype=float))
    m = len(p)
    rank = np.arange(1, m + 1)
    thresholds = alpha / (m - rank + 1)
    stop = int(np.argmax(p > thresholds)) if (p > thresholds).any() else m
    fig, ax = plt.subplots(figsize=(8, 3.8))
    ax.step(rank, thresholds, where="mid", color="black", lw=1, label="Holm threshold α / (m − rank + 1)")
    ax.axhline(alpha, color="grey", ls="--", lw=1, label=f"α = {alpha} (each test alone)")
    ax.scatter(rank[:stop], p[:stop], color="tab:blue", zorder=3, label="called (Holm)")
    ax.scatter(rank[stop:], p[stop:], color="tab:grey", zorder=3, label="not called")
    ax.set_yscale("log")
    ax.set_xticks(rank)
    ax.set_xlabel("rank of the p-value (smallest first)")
    ax.set_ylabel("p-value (log scale)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def coverage_plot(tables: Mapping[str, pd.DataFrame], confidence: float = 0.95,
                  title: str = "How often each interval calls a difference that is not there") -> Figure:
    """One group of bars per setting (``tables``: setting -> :func:`series.primer.coverage` table): the
    share of simulated comparisons with no true difference in which each interval excludes zero, against
    the 1 − confidence a 95 % interval promises (dashed)."""
    settings = list(tables)
    methods = list(next(iter(tables.values())).index)
    fig, ax = plt.subplots(figsize=(8, 3.8))
    width = 0.8 / len(methods)
    for j, method in enumerate(methods):
        values = [tables[s].loc[method, "calls a difference that is not there"] for s in settings]
        ax.bar(np.arange(len(settings)) + (j - (len(methods) - 1) / 2) * width, values, width, label=method)
    ax.axhline(1 - confidence, color="black", ls="--", lw=1, label=f"promised: {1 - confidence:.0%}")
    ax.set_xticks(np.arange(len(settings)), settings)
    ax.set_ylabel("share of comparisons called wrongly")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def static_curve(curve: pd.DataFrame, epochs: int, references: Mapping[str, float],
                 title: str = "Training the static table on headlines (one seed)") -> Figure:
    """The static model's validation MRR@10 (left axis) and training loss (right) by epoch, the chosen
    ``epochs`` dashed, ``references`` (name → validation MRR@10) as horizontal lines."""
    fig, ax = plt.subplots(figsize=(10, 3.8))
    ax.plot(curve["epoch"], curve["validation MRR@10"], marker="o", color="C0", label="static, validation MRR@10")
    for i, (name, value) in enumerate(references.items()):
        ax.axhline(value, color=f"C{i + 2}", ls=":", lw=1.2, label=name)
    ax.axvline(epochs, color="grey", ls="--", lw=1, label=f"chosen: {epochs} epochs")
    loss = ax.twinx()
    loss.plot(curve["epoch"], curve["loss"], color="C1", alpha=0.6, label="training loss (right)")
    loss.set_ylabel("in-batch training loss")
    ax.set(xlabel="epoch (each training headline at most once, with one of its sentences)",
           ylabel="validation MRR@10", title=title)
    ax.grid(alpha=0.3)
    lines = ax.get_legend_handles_labels(), loss.get_legend_handles_labels()
    ax.legend(lines[0][0] + lines[1][0], lines[0][1] + lines[1][1], fontsize=8, loc="upper left",
              bbox_to_anchor=(1.12, 1.0))
    fig.tight_layout()
    return fig


def speed_quality_map(points: pd.DataFrame, title: str = "What each shortcut buys and costs") -> Figure:
    """Each shortcut (rows: ``name``, ``family``, ``speed-up``, ``kept``) as a point: how many times faster
    than its own fp32 reference it runs (x, log scale) against the share of the reference's quality it keeps
    (y, %); the 97 % line dashed. Named: every point below it, and each family's fastest point above it (the
    table beside the figure names the rest)."""
    fig, ax = plt.subplots(figsize=(9, 5.2))
    for i, (family, part) in enumerate(points.groupby("family", sort=False)):
        ax.scatter(part["speed-up"], 100 * part["kept"], s=36, color=f"C{i}", label=family, zorder=3)
        fastest_kept = part[part["kept"] >= 0.97]["speed-up"].max()
        for _, row in part.iterrows():  # named: what falls below 97 %, and each family's fastest above it
            if row["kept"] < 0.97 or row["speed-up"] == fastest_kept:
                ax.annotate(shorten(row["name"], 40), (row["speed-up"], 100 * row["kept"]), fontsize=7,
                            xytext=(5, 3 if row["kept"] < 0.97 else 6 if i % 2 == 0 else -12),
                            textcoords="offset points")
    ax.axhline(100, color="black", lw=0.8)
    ax.axhline(97, color="grey", ls="--", lw=1, label="97 % of the reference")
    ax.set_xscale("log")
    ax.set(xlabel="times faster than its fp32 reference (medians, log scale)",
           ylabel="quality kept (% of the reference)", title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def prefix_curve(curves: pd.DataFrame, metric: str = "MRR@10",
                 title: str = "Retrieval with the first d dimensions of each vector") -> Figure:
    """``metric`` against the dimensions kept (log scale), one line per ``encoder`` (rows: ``encoder``,
    ``dims``, ``seed``, ``metric``): the mean over seeds, the band from the lowest seed to the highest."""
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for i, (name, part) in enumerate(curves.groupby("encoder", sort=False)):
        by_dims = part.groupby("dims")[metric]
        mean, low, high = by_dims.mean(), by_dims.min(), by_dims.max()
        seeds = part["seed"].nunique()
        ax.plot(mean.index, mean, marker="o", color=f"C{i}",
                label=f"{name} ({seeds} seeds)" if seeds > 1 else name)
        if seeds > 1:
            ax.fill_between(mean.index, low, high, color=f"C{i}", alpha=0.2)
    dims = sorted(curves["dims"].unique())
    ax.set_xscale("log", base=2)
    ax.set_xticks(dims, [str(d) for d in dims])
    ax.set(xlabel="dimensions kept (the first d, re-normalised)", ylabel=f"test {metric}", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
