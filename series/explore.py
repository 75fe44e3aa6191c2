"""Live controls where playing teaches: a control, a view that re-renders from what the notebook already
computed (no training on a slider), and a static fallback for papermill and the book.

Each explorer is a ``render(value) -> HTML`` function and the control that picks ``value``
(:func:`explorer`). In JupyterLab the view follows the control; in a headless run (``MTL_HEADLESS=1``, set by
``tools.run_notebooks``, so also in the book, which shows the committed outputs) the explorer returns the
static HTML instead: the same rendering for a few chosen values, with a line saying what the control does.
Tests drive the controls without a browser: set ``control.value``, read ``view.value``.

* :func:`freezing_explorer` (notebook 04): pick k, see what trains, the trainable parameters and what the
  sweep measured at that k;
* :func:`decay_explorer` (notebook 05): move ξ, see every group's peak rate and the schedule;
* :func:`sentence_explorer` (notebooks 01 and 04): type a sentence, see its nearest neighbours and what the
  probes (01) or both heads (04) answer (:class:`Neighbourhood`).
"""
from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from mtl_utils.core.batching import eval_mode
from mtl_utils.core.progress import headless
from mtl_utils.evaluation.similarity import cosine_matrix
from mtl_utils.modeling import anatomy
from mtl_utils.modeling.encoder import SentenceEncoder
from mtl_utils.modeling.model import MultiTaskModel
from mtl_utils.training import freezing, optim
from series import plots, protocol

LIVE_NOTE = "In JupyterLab {what}; this static copy shows {shown}."


@dataclass
class Explorer:
    """A live control and its view (an ``ipywidgets.HTML``); ``widget`` is what the notebook displays: a
    cell that ends with an explorer shows its widget, not this object's fields."""

    control: Any
    view: Any
    render: Callable[[Any], str]
    widget: Any

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        return self.widget._repr_mimebundle_(**kwargs)

    def update(self, value: Any) -> None:
        """Re-render the view for ``value``; a ``ValueError`` of ``render`` is shown, not raised (a reader
        typing is mid-way, not wrong)."""
        try:
            self.view.value = self.render(value)
        except ValueError as error:
            self.view.value = f"<p><b>{html.escape(str(error))}</b></p>"


def explorer(control: Any, render: Callable[[Any], str], static: Callable[[], str], what: str, shown: str):
    """``control`` and a view of ``render(control.value)`` that follows it (live), or, headless, the HTML of
    ``static()`` under a note ("In JupyterLab {what}; this static copy shows {shown}."). Returns what the
    notebook displays: the live :class:`Explorer`'s widget, or an ``IPython.display.HTML``."""
    from IPython.display import HTML

    if headless():
        note = LIVE_NOTE.format(what=what, shown=shown)
        return HTML(f"<p><i>{html.escape(note)}</i></p>{static()}")
    import ipywidgets as widgets

    view = widgets.HTML()
    live = Explorer(control, view, render, widgets.VBox([control, view]))
    control.observe(lambda change: live.update(change["new"]), names="value")
    live.update(control.value)
    return live


#: Cell padding for an explorer's tables: a widget's HTML gets none of JupyterLab's DataFrame styling.
TABLE_STYLE = ("<style>.mtl-explorer td, .mtl-explorer th {padding: 3px 10px; text-align: right} "
               ".mtl-explorer td:first-child, .mtl-explorer th:first-child {text-align: left} "
               ".mtl-explorer {border-collapse: collapse; margin: 4px 0}</style>")


def table_html(table: pd.DataFrame) -> str:
    """A small table as HTML without its 0..N index, its cells padded (:data:`TABLE_STYLE`)."""
    return TABLE_STYLE + table.to_html(index=False, border=0, escape=True, na_rep="–", classes="mtl-explorer")


# --- notebook 04: how many layers to freeze -------------------------------------------------------------------

@dataclass(frozen=True)
class Frozen:
    """What freezing the bottom k layers leaves: the trainable parameter count and, bottom (embeddings) to
    top (heads), whether each part is frozen (read from ``requires_grad``, not restated)."""

    trainable: int
    parts: dict[str, bool]


def _frozen(modules: Sequence[torch.nn.Module]) -> bool:
    return not any(p.requires_grad for m in modules for p in m.parameters())


def freezing_by_k(model: MultiTaskModel) -> dict[int, Frozen]:
    """:class:`Frozen` for every k = 0 … L, each measured on ``model`` frozen by
    :func:`mtl_utils.training.freezing.freeze_bottom` (the model is left unfrozen)."""
    out = {}
    for k in range(anatomy.num_layers(model) + 1):
        freezing.unfreeze_all(model)
        freezing.freeze_bottom(model, k)
        parts = {"embeddings": _frozen([anatomy.embeddings(model)]),
                 **{f"layer {i}": _frozen([layer]) for i, layer in enumerate(anatomy.layer_stack(model), 1)},
                 "heads": _frozen(list(model.heads.values()))}
        out[k] = Frozen(anatomy.trainable_parameters(model), parts)
    freezing.unfreeze_all(model)
    return out


def trainable_by_k(model: MultiTaskModel) -> dict[int, int]:
    """Trainable parameters with the bottom k layers frozen, for every k (:func:`freezing_by_k`)."""
    return {k: frozen.trainable for k, frozen in freezing_by_k(model).items()}


def layer_strip(parts: Mapping[str, bool]) -> str:
    """One box per part, bottom (embeddings) to top (heads): grey frozen, green trained."""
    boxes = []
    for part, frozen in parts.items():
        colour, state = ("#d9d9d9", "frozen") if frozen else ("#a6dba0", "trained")
        boxes.append(f'<span style="display:inline-block;padding:4px 8px;margin:2px;background:{colour};'
                     f'border-radius:3px" title="{state}">{part}</span>')
    return "<div>" + "".join(boxes) + "</div>"


def freezing_view(k: int, by_k: Mapping[int, Frozen], sweep: pd.DataFrame) -> str:
    """What freezing the bottom ``k`` layers trains (``by_k``: :func:`freezing_by_k`) and, where the sweep
    ran that k, what it measured: training seconds per run, speed-up and each task's accuracy against k = 0
    (``sweep``: :func:`series.experiments.sweep_table`)."""
    if k not in by_k:
        raise ValueError(f"k must be one of {sorted(by_k)}, got {k!r}")
    count = by_k[k].trainable
    share = count / by_k[0].trainable
    lines = [layer_strip(by_k[k].parts),
             f"<p><b>k = {k}</b>: {count:,} trainable parameters ({share:.1%} of full fine-tuning).</p>"]
    row = sweep[sweep["k"] == k]
    if row.empty:
        ran = ", ".join(str(v) for v in sweep["k"])
        lines.append(f"<p>The sweep did not train k = {k} (it ran k = {ran}).</p>")
    else:
        measured = row.iloc[0]
        cells = {"train seconds per run": f"{measured['train seconds per run']:.1f}",
                 "speed-up": f"{measured['speed-up']:.1f}×"}
        for column in sweep.columns:
            if column.endswith(" accuracy") or " − " in column:
                cells[column] = measured[column] if isinstance(measured[column], str) else f"{measured[column]:.3f}"
        lines.append(table_html(pd.DataFrame([cells])))
    return "".join(lines)


def freezing_overview(trainable: Mapping[int, int], sweep: pd.DataFrame) -> str:
    """Every k in one table: trainable parameters, their share, and the sweep's seconds and accuracies."""
    measured = sweep.set_index("k")
    accuracy = [c for c in sweep.columns if c.endswith(" accuracy")]
    rows = []
    for k, count in trainable.items():
        row = {"k": k, "trainable parameters": f"{count:,}", "share": f"{count / trainable[0]:.1%}"}
        ran = k in measured.index
        row["train s / run"] = f"{measured.loc[k, 'train seconds per run']:.1f}" if ran else "–"
        row.update({c: f"{measured.loc[k, c]:.3f}" if ran else "–" for c in accuracy})
        rows.append(row)
    return table_html(pd.DataFrame(rows))


def freezing_explorer(model: MultiTaskModel, sweep: pd.DataFrame, k: int = 0):
    """A slider over k = 0 … L (notebook 04): the frozen and trained parts, the trainable parameters, and
    the sweep's measurements where it ran that k. Static: every k in one table."""
    import ipywidgets as widgets

    by_k = freezing_by_k(model)
    trainable = {k: frozen.trainable for k, frozen in by_k.items()}
    control = widgets.IntSlider(value=k, min=0, max=max(by_k), description="frozen k",
                                continuous_update=True)
    return explorer(control, lambda v: freezing_view(v, by_k, sweep),
                    lambda: freezing_overview(trainable, sweep),
                    "a slider picks k", "every k at once")


# --- notebook 05: layer-wise learning-rate decay --------------------------------------------------------------

def decay_groups(model: torch.nn.Module, xi: float, lr: float, head_lr: float,
                 weight_decay: float) -> list[dict]:
    """The optimizer's groups under decay ``xi`` (1: uniform rates, split per layer), the top rate matched
    so that the mean over depth stays ``lr`` (:func:`series.protocol.mean_matched_lr`)."""
    top = protocol.mean_matched_lr(xi, anatomy.num_layers(model), lr)
    return optim.param_groups(model, top, weight_decay, head_lr, layer_decay=xi)


def decay_view(model: torch.nn.Module, xi: float, lr: float, head_lr: float, weight_decay: float,
               steps: int) -> str:
    """The rate table and the schedule of three groups (a head, the top layer, the embeddings) for one ξ."""
    groups = decay_groups(model, xi, lr, head_lr, weight_decay)
    table = optim.lr_table(model, groups)
    shown = pd.DataFrame({"group": table["group"], "peak rate": table["learning rate"].map("{:.2e}".format),
                          "× top layer": table["relative to top layer"].map("{:.2f}".format)})
    schedule = optim.lr_schedule(groups, int(0.1 * steps), steps)
    watched = [table["group"].iloc[0], f"layer {anatomy.num_layers(model)}", "embeddings"]
    figure = plots.lr_schedule_plot(schedule, watched, f"Learning rate per step, ξ = {xi:g}", figsize=(6, 3))
    image = plots.figure_html(figure, f"Learning-rate schedule of {', '.join(watched)} for ξ = {xi:g}.")
    return ('<div style="display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start">'
            f"<div>{table_html(shown)}</div><div>{image}</div></div>")


def decay_overview(model: torch.nn.Module, values: Sequence[float], lr: float, head_lr: float,
                   weight_decay: float) -> str:
    """Peak rates of every group for several ξ side by side (ξ = 1: uniform)."""
    wide = pd.DataFrame()
    for xi in values:
        table = optim.lr_table(model, decay_groups(model, xi, lr, head_lr, weight_decay))
        wide["group"] = table["group"]
        wide[f"ξ = {xi:g}"] = table["learning rate"].map("{:.1e}".format)
    return table_html(wide)


def decay_explorer(model: torch.nn.Module, lr: float, head_lr: float, weight_decay: float, steps: int,
                   xi: float = 0.65, static_values: Sequence[float] = (1.0, 0.9, 0.8, 0.65, 0.5)):
    """A slider over ξ from 0.3 to 1 (notebook 05): each group's peak rate (mean over depth matched to
    ``lr``) and the warm-up/decay schedule of three groups over ``steps``. Static: the rates for
    ``static_values``."""
    import ipywidgets as widgets

    control = widgets.FloatSlider(value=xi, min=0.3, max=1.0, step=0.05, description="ξ",
                                  continuous_update=False, readout_format=".2f")
    return explorer(control, lambda v: decay_view(model, v, lr, head_lr, weight_decay, steps),
                    lambda: decay_overview(model, static_values, lr, head_lr, weight_decay),
                    "a slider moves ξ and redraws the table and the schedule",
                    "the rates for ξ = " + ", ".join(f"{v:g}" for v in static_values))


# --- notebooks 01 and 04: a sentence, its neighbours and the classifiers' answers -------------------------

def _answer(task: str, labels: Sequence[str], probabilities: np.ndarray) -> dict[str, str]:
    best = int(np.argmax(probabilities))
    return {"task": task, "answer": labels[best], "probability": f"{probabilities[best]:.2f}"}


@dataclass
class Neighbourhood:
    """Sentences with labels and their vectors (embedded once), how a new sentence is embedded (``encode``)
    and what the classifiers on those vectors answer for one vector (``answer``: a row per task)."""

    encode: Callable[[list[str]], np.ndarray]
    answer: Callable[[np.ndarray], list[dict[str, str]]]
    texts: list[str]
    labels: list[str]
    vectors: np.ndarray

    @staticmethod
    def _checked(texts: Sequence[str], labels: Sequence[str], vectors: np.ndarray | None) -> None:
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
        if vectors is not None and len(vectors) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(vectors)} vectors")

    @classmethod
    def of(cls, model: MultiTaskModel, texts: Sequence[str], labels: Sequence[str]) -> "Neighbourhood":
        """Notebook 04: a multi-task model's encoder and heads. One encoder pass per sentence gives both the
        neighbours and every head's answer."""
        cls._checked(texts, labels, None)
        encoder = model.encoder

        def encode(sentences: list[str]) -> np.ndarray:
            return encoder.encode(sentences, batch_size=64, show_progress=False, warn_truncation=False)

        def answer(vector: np.ndarray) -> list[dict[str, str]]:
            with eval_mode(model), torch.inference_mode():
                logits = model.heads_forward(torch.from_numpy(vector).to(encoder.device))
            return [_answer(task, model.task_labels[task], torch.softmax(out, dim=-1)[0].cpu().numpy())
                    for task, out in logits.items()]

        return cls(encode, answer, list(texts), list(labels), encode(list(texts)))

    @classmethod
    def of_probes(cls, encoder: SentenceEncoder, probes: Mapping[str, tuple[Any, Sequence[str]]],
                  texts: Sequence[str], labels: Sequence[str], vectors: np.ndarray) -> "Neighbourhood":
        """Notebook 01: a frozen encoder and a fitted scikit-learn probe per task (``{task: (probe, label
        names)}``, the probe fitted on this encoder's vectors); ``vectors`` are ``texts`` already embedded by
        ``encoder`` (nothing is re-embedded)."""
        cls._checked(texts, labels, vectors)
        for task, (probe, _) in probes.items():
            if probe is None or not hasattr(probe, "predict_proba"):
                raise ValueError(f"the probe of task {task!r} is not a fitted classifier with predict_proba")

        def encode(sentences: list[str]) -> np.ndarray:
            return encoder.encode(sentences, show_progress=False, warn_truncation=False)

        def answer(vector: np.ndarray) -> list[dict[str, str]]:
            rows = []
            for task, (probe, names) in probes.items():
                p = np.zeros(len(names))
                p[probe.classes_] = probe.predict_proba(vector)[0]  # classes_ are label ids
                rows.append(_answer(task, names, p))
            return rows

        return cls(encode, answer, list(texts), list(labels), np.asarray(vectors))


def sentence_view(space: Neighbourhood, sentence: str, k: int = 5) -> str:
    """The classifiers' answers for ``sentence`` (label and probability) and its ``k`` nearest sentences."""
    if not sentence.strip():
        raise ValueError("type a sentence: the text is empty")
    query = space.encode([sentence])
    scores = cosine_matrix(query, space.vectors)[0]
    near = [{"cosine": f"{scores[i]:.3f}", "label": space.labels[i],
             "sentence": space.texts[i][:100] + ("…" if len(space.texts[i]) > 100 else "")}
            for i in np.argsort(-scores, kind="stable")[:k]]
    return (f"<p><b>{html.escape(sentence)}</b></p>{table_html(pd.DataFrame(space.answer(query)))}"
            f"<p>Nearest sentences:</p>{table_html(pd.DataFrame(near))}")


def sentence_explorer(space: Neighbourhood, sentence: str, examples: Sequence[str] = (), k: int = 5):
    """A text box (notebooks 01 and 04): type a sentence, see every task's answer and its nearest neighbours
    under the encoder. Static: ``sentence`` and ``examples``."""
    import ipywidgets as widgets

    control = widgets.Text(value=sentence, description="sentence", continuous_update=False,
                           layout=widgets.Layout(width="90%"))
    shown = [sentence, *examples]
    return explorer(control, lambda v: sentence_view(space, v, k),
                    lambda: "".join(sentence_view(space, s, k) for s in shown),
                    "a text box takes any sentence", f"{len(shown)} sentence(s)")
