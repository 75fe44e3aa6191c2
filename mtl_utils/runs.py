"""Finished runs, cached by everything they depend on, so a run is never trained twice and never reused wrongly.

A run's key (:func:`run_key`) covers its configuration, its data (texts, labels *and* label names of every
split), the code of the training path (the source of the modules a result depends on, without comments and
docstrings, so only a change of what runs retrains) and the versions of the libraries that compute it.

An entry ``<cache>/runs/<key>/`` is written to a unique temporary folder and published by one rename, under a
file lock per key (two processes training one configuration: the second waits and loads the first's
result). It carries a manifest of its files' SHA-256, verified on load: a damaged entry is reported, naming it,
and retrained, never loaded. Temporary folders of crashed runs are removed.
"""
from __future__ import annotations

import ast
import hashlib
import inspect
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
import tokenizers
import torch
import transformers
from filelock import FileLock

from . import anatomy, batching, encoder, freezing, frozen_cache, metrics, model, optim, paths, pooling, runtime, training
from .data import SPLITS, Task
from .model import CheckpointError, MultiTaskModel
from .training import TrainConfig, TrainResult, train

MANIFEST = "manifest.json"
ENTRY_FILES = ("result.json", "history.csv", "steps.csv", "test.csv", "predictions.npz")
# The modules whose code decides what a run computes: a change to them changes every run key.
TRAINING_PATH = (batching, pooling, encoder, model, anatomy, freezing, frozen_cache, optim, metrics, training)


class DamagedRunError(RuntimeError):
    """A cached run entry is incomplete or does not match its manifest."""


def code_without_docs(source: str) -> str:
    """Python source as an AST dump without docstrings: comment and docstring edits do not count."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False)


def code_fingerprint() -> str:
    """SHA-256 over the training path's code (:data:`TRAINING_PATH`), docstrings and comments excluded."""
    digest = hashlib.sha256()
    for module in TRAINING_PATH:
        digest.update(module.__name__.encode())
        digest.update(code_without_docs(inspect.getsource(module)).encode())
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of the libraries that compute a run."""
    return {"torch": torch.__version__, "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
            "numpy": np.__version__, "scikit-learn": sklearn.__version__}


def data_fingerprint(tasks: Mapping[str, Task], names: Sequence[str]) -> str:
    """SHA-256 over the label names, texts and labels of every split of the tasks ``names``. Every text is
    length-prefixed, so no text (whatever characters it holds) can make two data sets share a fingerprint."""
    digest = hashlib.sha256()
    for name in names:
        task = tasks[name]
        digest.update(json.dumps([name, list(task.labels)]).encode())
        for split in SPLITS:
            df = task[split]
            digest.update(f"{split}:{len(df)}".encode())
            for text in df["text"]:
                raw = str(text).encode("utf-8")
                digest.update(len(raw).to_bytes(8, "big") + raw)
            digest.update(df["label"].to_numpy().astype(np.int64).tobytes())
    return digest.hexdigest()


def run_key(config: TrainConfig, tasks: Mapping[str, Task]) -> str:
    """Cache key of a run: configuration, data, training code and library versions (16 hex characters)."""
    blob = json.dumps({"config": config.to_dict(), "device": runtime.device(config.device).type,
                       "data": data_fingerprint(tasks, config.tasks + config.watch_tasks),
                       "code": code_fingerprint(), "versions": library_versions()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_result(result: TrainResult, folder: Path) -> None:
    """Write a run into ``folder``: model checkpoint, tables, predictions, summary, and the manifest last."""
    folder.mkdir(parents=True, exist_ok=True)
    result.model.save(folder / "model")
    result.history.to_csv(folder / "history.csv", index=False)
    result.steps.to_csv(folder / "steps.csv", index=False)
    result.test.to_csv(folder / "test.csv", index=False)
    np.savez(folder / "predictions.npz", **result.predictions)
    summary = {"config": result.config.to_dict(), "best_round": result.best_round,
               "train_seconds": result.train_seconds, "confusion": {k: v.tolist() for k, v in result.confusion.items()}}
    (folder / "result.json").write_text(json.dumps(summary, indent=2))
    files = [folder / name for name in ENTRY_FILES] + sorted((folder / "model").rglob("*"))
    manifest = {str(p.relative_to(folder)): _sha256(p) for p in files if p.is_file()}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))


def verify_entry(folder: Path) -> None:
    """Raise :class:`DamagedRunError` unless every file of the entry exists and matches the manifest."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise DamagedRunError(f"{MANIFEST} is missing (an entry from an interrupted or older write)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DamagedRunError(f"{MANIFEST} is not valid JSON ({err})") from None
    for name in (*ENTRY_FILES, "model/config.json", "model/model.safetensors"):
        if name not in manifest:
            raise DamagedRunError(f"the manifest does not list {name}")
    for name, expected in manifest.items():
        path = folder / name
        if not path.is_file():
            raise DamagedRunError(f"{name} is missing")
        if _sha256(path) != expected:
            raise DamagedRunError(f"{name} does not match its checksum")


def load_result(folder: Path, config: TrainConfig) -> TrainResult:
    """Read back a verified entry (see :func:`verify_entry`); a problem raises :class:`DamagedRunError`."""
    verify_entry(folder)
    try:
        summary = json.loads((folder / "result.json").read_text())
        with np.load(folder / "predictions.npz") as stored:
            predictions = {k: stored[k] for k in stored.files}
        test = pd.read_csv(folder / "test.csv")
        if test.empty:
            raise DamagedRunError("test.csv has no rows")
        return TrainResult(model=MultiTaskModel.load(folder / "model"), config=config,
                           history=pd.read_csv(folder / "history.csv"), test=test,
                           confusion={k: np.array(v) for k, v in summary["confusion"].items()},
                           predictions=predictions, best_round=summary["best_round"],
                           train_seconds=summary["train_seconds"], steps=pd.read_csv(folder / "steps.csv"),
                           cached=True)
    except (CheckpointError, KeyError, ValueError, OSError, pd.errors.ParserError) as err:
        raise DamagedRunError(f"{type(err).__name__}: {err}") from None


def train_or_load(config: TrainConfig, tasks: Mapping[str, Task], force: bool = False, progress_bar: bool = True,
                  cache: Path | None = None) -> TrainResult:
    """Load the cached result of this exact run, or train and cache it (``force=True`` retrains).

    A damaged entry is reported with a warning naming it and retrained. ``config.init_from`` must name a
    finished run in the same cache; training continues from its model.
    """
    root = Path(cache or paths.cache_dir()) / "runs"
    key = run_key(config, tasks)
    folder = root / key
    (root / ".locks").mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / ".locks" / f"{key}.lock")):
        for stale in root.glob(f".tmp-{key}-*"):  # left by a crashed run of this key (we hold its lock)
            shutil.rmtree(stale, ignore_errors=True)
        if folder.is_dir() and not force:
            try:
                return load_result(folder, config)
            except DamagedRunError as err:
                warnings.warn(f"cached run {folder} is damaged ({err}); training it again", stacklevel=2)
        start = None
        if config.init_from:
            source = root / config.init_from
            try:
                verify_entry(source)
                start = MultiTaskModel.load(source / "model", device=config.device)
            except (DamagedRunError, CheckpointError) as err:
                raise FileNotFoundError(f"init_from='{config.init_from}': no finished, intact run at {source} ({err});"
                                        " train that run first (train_or_load of its config)") from None
        result = train(config, tasks, model=start, progress_bar=progress_bar)
        tmp = root / f".tmp-{key}-{uuid.uuid4().hex[:8]}"
        try:
            save_result(result, tmp)
            if folder.exists():  # a damaged or forced-over entry: move it aside, then publish, then delete it
                aside = root / f".old-{key}-{uuid.uuid4().hex[:8]}"
                os.replace(folder, aside)
                os.replace(tmp, folder)
                shutil.rmtree(aside, ignore_errors=True)
            else:
                os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return result
