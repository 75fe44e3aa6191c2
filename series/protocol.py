"""The one protocol of the series: every score a notebook reports follows it, unless the notebook says what it
changes and why.

* **Data**: :func:`series.corpora.load_tasks`, the fixed, leak-free splits; every reported score is on the
  **full test set** of its task (topic 1,232 sentences, sentiment 2,551); validation only chooses.
* **Budget**: a run sees :data:`EXAMPLES_PER_TASK` training examples of each task it trains, in batches of
  :data:`BATCH_SIZE` (single-task: that many; multi-task: that many of each, tasks in turn). It is measured in
  examples seen, not epochs, so runs of different tasks and sizes compare.
* **Rates**: AdamW, encoder :data:`LR`, heads :data:`HEAD_LR` (they start from random weights), 10 % linear
  warm-up then linear decay to zero, weight decay 0.01, gradient norm clipped at 1, dropout 0.1; texts cut at
  :data:`MAX_LENGTH` word pieces (0.1 % of texts are longer).
* **Seeds**: :data:`SEEDS`; comparisons pair runs with the same seed (same heads' initialisation, same batch
  order) on the same test set (:mod:`series.comparisons`).

Why these numbers: notebook 03 draws the learning curves (one seed, validation accuracy at
:func:`curve_budgets` examples per task) and shows where the budget sits on them; the whole series, three
seeds of every configuration, aims at 150 minutes on two CPU cores from an empty run cache (the README's
table gives the measured total).

A run that several notebooks need (the single-task models, the multi-task model) is the same configuration
everywhere, so it trains once for the whole series and later notebooks load it from the run cache.
"""
from __future__ import annotations

from collections.abc import Sequence

from mtl_utils.modeling.encoder import DEFAULT_MODEL
from mtl_utils.training.optim import check_layer_decay
from mtl_utils.training.sentence_training import PairConfig
from mtl_utils.training.trainer import TrainConfig

EXAMPLES_PER_TASK = 4000
BATCH_SIZE = 8
LR = 5e-5
HEAD_LR = 1e-3
MAX_LENGTH = 64
SEEDS: tuple[int, ...] = (0, 1, 2)
# Quick mode (the tests): the same recipe on small data.
QUICK_EXAMPLES_PER_TASK = 400
QUICK_SEEDS: tuple[int, ...] = (0,)
# The learning curves' points, in examples per task (the budget among them), as multiples of it.
CURVE_POINTS: tuple[float, ...] = (0.5, 1.0, 2.0)


def examples_per_task(quick: bool = False) -> int:
    """Training examples per task of one run."""
    return QUICK_EXAMPLES_PER_TASK if quick else EXAMPLES_PER_TASK


def curve_budgets(quick: bool = False) -> list[int]:
    """Examples per task at which notebook 03's learning curves are drawn: :data:`CURVE_POINTS` × the budget
    (quick mode stops at the budget: the tests check the machinery, not the plateau)."""
    points = [p for p in CURVE_POINTS if p <= 1] if quick else CURVE_POINTS
    return [round(point * examples_per_task(quick)) for point in points]


def seeds(quick: bool = False, first: int = 0) -> list[int]:
    """The seeds of every comparison (one in quick mode), starting at ``first``."""
    return [first + s for s in (QUICK_SEEDS if quick else SEEDS)]


def config(tasks: Sequence[str], quick: bool = False, model: str | None = None, per_task: float = 1.0,
           **changes) -> TrainConfig:
    """The protocol's run for ``tasks``: ``per_task`` × the per-task budget of examples for each task, tasks
    taken in turn (round-robin), the protocol's rates and lengths; ``changes`` override any field."""
    tasks = tuple(tasks)
    examples = round(per_task * examples_per_task(quick) * len(tasks))
    base = TrainConfig(tasks=tasks, model=model or DEFAULT_MODEL, max_length=MAX_LENGTH, batch_size=BATCH_SIZE,
                       examples=examples, lr=LR, head_lr=HEAD_LR, sampling="uniform")
    return base.replace(**changes) if changes else base


def pair_config(model: str | None = None) -> PairConfig:
    """Notebook 02 § 2's contrastive run: one pass over the pairs in batches of 32 at the protocol's rate and
    length. Notebook 04 loads the same runs back from the run store."""
    return PairConfig(model=model or DEFAULT_MODEL, batch_size=32, lr=LR, max_length=MAX_LENGTH)


def mean_matched_lr(layer_decay: float | None, n_layers: int, lr: float = LR) -> float:
    """The top layer's rate under layer-wise decay ξ that keeps the **mean** peak rate over depth (embeddings and
    ``n_layers`` layers, :mod:`mtl_utils.training.optim`'s groups) equal to uniform rates at ``lr``: ``lr · (L + 1) /
    Σ ξ^d``, d = 0 … L. Decay then moves rate from the lower layers to the upper ones instead of lowering
    every rate below the top. Taught in notebook 05."""
    check_layer_decay(layer_decay)
    if layer_decay is None:
        return lr
    if n_layers < 1:
        raise ValueError(f"n_layers must be at least 1, got {n_layers!r}")
    return lr * (n_layers + 1) / sum(layer_decay ** d for d in range(n_layers + 1))


def describe(quick: bool = False) -> dict[str, str | int | float]:
    """The protocol as a small table (what notebook 03 shows once)."""
    return {"data": "full fixed splits; every score on the full test set",
            "examples per task per run": examples_per_task(quick), "batch size": BATCH_SIZE,
            "optimizer": "AdamW (fused), weight decay 0.01, clip 1.0",
            "encoder learning rate": LR, "head learning rate": HEAD_LR,
            "schedule": "10% linear warm-up, linear decay to 0", "max length (word pieces)": MAX_LENGTH,
            "multi-task sampling": "round-robin (equal steps per task)", "seeds": ", ".join(map(str, seeds(quick)))}
