"""A classification task as the trainer takes it: label names and a table (``text``, ``label``) per split; any data in
this shape trains (:mod:`mtl_utils.data.checks` checks it). The series' own tasks are built by :mod:`series.corpora`."""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

SPLITS: tuple[str, ...] = ("train", "validation", "test")


@dataclass
class Task:
    """A classification task: its label names and a DataFrame per split (``text``, ``label``: index into ``labels``)."""

    name: str
    labels: tuple[str, ...]
    splits: dict[str, pd.DataFrame] = field(repr=False)

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def __getitem__(self, split: str) -> pd.DataFrame:
        if split not in self.splits:
            raise KeyError(f"Task '{self.name}' has no split '{split}'; it has {list(self.splits)}")
        return self.splits[split]

    def majority_baseline(self, split: str = "test") -> float:
        """Accuracy of always predicting the most frequent *training* label on ``split``."""
        majority = self.splits["train"]["label"].value_counts().idxmax()
        return float((self.splits[split]["label"] == majority).mean())

    def counts(self) -> pd.DataFrame:
        """Examples per split (columns) and label (rows), with totals."""
        table = pd.DataFrame({s: df["label"].map(dict(enumerate(self.labels))).value_counts()
                              for s, df in self.splits.items()}).reindex(list(self.labels)).fillna(0).astype(int)
        table.loc["total"] = table.sum()
        return table
