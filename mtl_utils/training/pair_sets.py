"""Contrastive training over several pair sets. Every batch comes from one set, so its in-batch negatives are
that set's; a sampler picks the set of each step, as sentence-transformers' ``MultiDatasetBatchSamplers`` do:

* ``round-robin`` takes the sets in turn (``RoundRobinBatchSampler``; it ends its epoch when the smallest set
  runs out, here it goes on for the same steps as the other arm);
* ``proportional`` takes each set's batches once per epoch, in a shuffled order, so larger sets train more
  often (``ProportionalBatchSampler``, sentence-transformers' default).

Taught in notebook 02 (two pair sets).

    >>> pairs, sizes = join([headline_pairs, plot_pairs])
    >>> result = PairSetsTrainer(config, pairs, sizes, "round-robin").fit()
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from mtl_utils.modeling.encoder import SentenceEncoder
from mtl_utils.training.sentence_training import PairConfig, PairData, PairTrainer, pair_batches

SAMPLERS = ("round-robin", "proportional")


def join(sets: Sequence[PairData]) -> tuple[PairData, list[int]]:
    """The sets' pairs one after another, and each set's size (what :class:`PairSetsTrainer` splits them by)."""
    return PairData([a for s in sets for a in s.a], [b for s in sets for b in s.b]), [len(s) for s in sets]


def set_order(batches: Sequence[int], sampler: str, steps: int, rng: np.random.Generator) -> np.ndarray:
    """The set of each of ``steps`` steps, given each set's ``batches`` per epoch: in turn (``round-robin``), or
    every set's batches of an epoch shuffled together, epoch after epoch (``proportional``)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if sampler == "round-robin":
        return np.arange(steps) % len(batches)
    epoch = np.repeat(np.arange(len(batches)), batches)
    return np.concatenate([rng.permutation(epoch) for _ in range(math.ceil(steps / len(epoch)))])[:steps]


class PairSetsTrainer(PairTrainer):
    """:class:`~mtl_utils.training.sentence_training.PairTrainer` on ``pairs`` made of sets of ``sizes`` pairs
    (:func:`join`): each batch from one set, the set of each step from :func:`set_order`. Its steps: one
    proportional epoch, the sum of each set's batches (or ``config.examples`` / batch size)."""

    def __init__(self, config: PairConfig, pairs: PairData, sizes: Sequence[int], sampler: str,
                 encoder: SentenceEncoder | None = None, progress_bar: bool = True) -> None:
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        if sum(sizes) != len(pairs) or min(sizes) < config.batch_size:
            raise ValueError(f"set sizes {list(sizes)} must add up to the {len(pairs)} pairs and each fill a batch "
                             f"of {config.batch_size}")
        self.sizes, self.sampler = [int(n) for n in sizes], sampler
        super().__init__(config, pairs, encoder, progress_bar)

    def prepare_data(self) -> None:
        super().prepare_data()
        c, rng = self.config, np.random.default_rng(self.config.seed)
        per_epoch = [math.ceil(n / c.batch_size) for n in self.sizes]
        self.steps = math.ceil(c.examples / c.batch_size) if c.examples else sum(per_epoch)
        self.order = set_order(per_epoch, self.sampler, self.steps, rng)
        starts = np.cumsum([0, *self.sizes[:-1]])
        own = [iter([b + start for b in pair_batches(n, c.batch_size, int((self.order == i).sum()), rng)])
               for i, (n, start) in enumerate(zip(self.sizes, starts))]
        self.batches = [next(own[i]) for i in self.order]
