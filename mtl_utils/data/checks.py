"""Tasks checked before anything is computed from them (columns, non-empty texts, class ids in range, names); what is
allowed but suspect (one class only, a text in two splits or with two labels) is reported by :func:`data_warnings`."""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from mtl_utils.data.tasks import SPLITS, Task


def check_datasets(data: Mapping[str, Task], tasks: Sequence[str], warn: bool = True) -> None:
    """Check every split of ``tasks`` before any model loads (errors name task, split, row); ``warn``: warn too."""
    for name in tasks:
        if name not in data:
            raise KeyError(f"no data for task '{name}'; data has {list(data)}")
        task = data[name]
        if not isinstance(task, Task):
            raise TypeError(f"data['{name}'] is a {type(task).__name__}, not a Task (see mtl_utils.data.tasks.Task)")
        if task.name != name:
            raise ValueError(f"data['{name}'] is the task named '{task.name}': a task is stored under its own name "
                             f"(use {{task.name: task for task in tasks}})")
        for split in SPLITS:
            _check_split(task, split, task[split])
    if warn:
        warn_about(data, tasks, stacklevel=3)


def warn_about(data: Mapping[str, Task], tasks: Sequence[str], stacklevel: int = 2) -> None:
    """Each of :func:`data_warnings` as a ``UserWarning`` (every run warns); ``stacklevel`` from the caller."""
    for message in data_warnings(data, tasks):
        warnings.warn(message, stacklevel=stacklevel + 1)


def data_warnings(data: Mapping[str, Task], tasks: Sequence[str]) -> list[str]:
    """What is suspect, a message each: one class only, a text in train and test/validation, a text with two labels."""
    found = []
    for name in tasks:
        task = data[name]
        train_labels = set(task["train"]["label"])
        if len(train_labels) < 2:
            found.append(f"task '{name}': the training split has one class only ({sorted(train_labels)}); "
                         "a classifier cannot learn to tell classes apart from it")
        for split, harm in (("test", "test scores overstate accuracy"),
                            ("validation", "validation scores overstate accuracy and choose on trained texts")):
            overlap = set(task["train"]["text"]) & set(task[split]["text"])
            if overlap:
                found.append(f"task '{name}': {len(overlap)} texts are in both the train and the {split} split "
                             f"(e.g. {min(overlap)!r:.60}); {harm}")
        rows = pd.concat([task[split][["text", "label"]] for split in SPLITS], ignore_index=True)
        labels = rows.groupby("text", sort=True)["label"].unique()
        conflicting = labels[labels.map(len) > 1]
        if len(conflicting):
            text, ids = conflicting.index[0], sorted(int(i) for i in conflicting.iloc[0])
            names = ", ".join(task.labels[i] for i in ids)
            found.append(f"task '{name}': {len(conflicting)} texts have more than one label (e.g. {text!r:.60} is "
                         f"labelled {names}); no classifier is right about every copy: fix or drop them")
    return found


def _check_split(task: Task, split: str, df: pd.DataFrame) -> None:
    where = f"task '{task.name}', {split} split"
    for column in ("text", "label"):
        if column not in df.columns:
            raise ValueError(f"{where}: no '{column}' column; its columns are {list(df.columns)}")
    if len(df) == 0:
        raise ValueError(f"{where} is empty")
    texts = df["text"].to_numpy(dtype=object)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        i = bad[0]
        raise ValueError(f"{where}, row {df.index[i]}: text {texts[i]!r} is not a non-empty string "
                         f"({len(bad)} such rows)")
    labels = df["label"].to_numpy(dtype=object)
    for i, label in enumerate(labels):
        if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)):
            raise ValueError(f"{where}, row {df.index[i]}: label {label!r} is a {type(label).__name__}; labels are "
                             f"integer class ids 0..{task.num_labels - 1} ({', '.join(task.labels)})")
    values = df["label"].to_numpy().astype(np.int64)
    outside = np.flatnonzero((values < 0) | (values >= task.num_labels))
    if len(outside):
        i = int(outside[0])
        raise ValueError(f"{where}, row {df.index[i]}: label {values[i]} is outside 0..{task.num_labels - 1} "
                         f"({', '.join(task.labels)}); {len(outside)} such rows")
