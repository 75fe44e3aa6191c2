"""Which task trains next (:class:`TaskSampler`), and which rows form its next mini-batch (:class:`TaskBatches`)."""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from mtl_utils.training.config import SAMPLING_STRATEGIES


class TaskSampler:
    """The task(s) of the next step, as a tuple: ``proportional`` (one task, drawn by training-set size), ``uniform``
    (round-robin), ``temperature`` (p proportional to ``n ** (1 / T)``; T=1: proportional, large T: uniform) or
    ``summed`` (every task every step); ``probabilities``: each task's share."""

    def __init__(self, sizes: Mapping[str, int], strategy: str = "proportional", temperature: float = 2.0,
                 rng: np.random.Generator | None = None) -> None:
        if strategy not in SAMPLING_STRATEGIES:
            raise ValueError(f"unknown sampling '{strategy}'; choose one of {SAMPLING_STRATEGIES}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.tasks = list(sizes)
        self.strategy = strategy
        self.rng = rng or np.random.default_rng(0)
        n = np.array([sizes[t] for t in self.tasks], dtype=float)
        weights = {"proportional": n, "temperature": n ** (1.0 / temperature)}.get(strategy, np.ones_like(n))
        self.probabilities = dict(zip(self.tasks, weights / weights.sum()))

    def __iter__(self) -> Iterator[tuple[str, ...]]:
        if self.strategy == "summed":
            while True:
                yield tuple(self.tasks)
        if self.strategy == "uniform":
            while True:
                yield from ((t,) for t in self.tasks)
        p = np.array([self.probabilities[t] for t in self.tasks])
        while True:
            yield (self.tasks[self.rng.choice(len(self.tasks), p=p)],)


class TaskBatches:
    """Endless shuffled mini-batches (row numbers) of a task's training set, reshuffled each pass (``seen``: rows
    drawn); ``bucketing`` sorts rows by length in chunks of 50 batches (little padding), then shuffles the batches."""

    def __init__(self, lengths: Sequence[int] | np.ndarray, batch_size: int, rng: np.random.Generator,
                 bucketing: bool = True) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size, self.rng, self.bucketing = batch_size, rng, bucketing
        self._batches: list[np.ndarray] = []
        self.seen = np.zeros(len(self.lengths), dtype=bool)  # the rows any batch has drawn so far

    def _refill(self) -> None:
        order = self.rng.permutation(len(self.lengths))
        if self.bucketing:
            chunk = self.batch_size * 50
            order = np.concatenate([c[np.argsort(self.lengths[c], kind="stable")]
                                    for c in np.array_split(order, range(chunk, len(order), chunk))])
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        self._batches = [batches[i] for i in self.rng.permutation(len(batches))]

    def next_indices(self) -> np.ndarray:
        """Row numbers of the next mini-batch."""
        if not self._batches:
            self._refill()
        batch = self._batches.pop()
        self.seen[batch] = True
        return batch
