"""Finished runs, cached by everything they depend on, so a run is never trained twice and never reused wrongly.

A run's key (:func:`run_key`) covers its configuration, the files of the base model it starts from (weights,
configuration, tokenizer: :func:`series.store.model_digest`, so a re-saved folder or an upgraded
model package is a new run), its data (texts, labels *and* label names of every split, checked first), the code
of the training path (every project module the trainer imports, directly or not, found from the imports
themselves: :func:`training_modules`; without comments and docstrings, so only a change of what runs retrains) and
the versions of the libraries that compute it.

An entry ``<cache>/runs/<key>/`` is kept by the run store (:mod:`series.store`, as pair runs, pooled
embeddings and replayed timings are): written to a unique temporary folder and published by one rename, here
under a file lock per key (two processes training one configuration: the second waits and loads the first's
result). It carries a manifest of its files' SHA-256, verified on load: a damaged entry is reported, naming it,
and retrained, never loaded. A loaded run equals a fresh one: same device, same trainable parameters, and the
same warnings about its data (:func:`mtl_utils.data.checks.warn_about`). A run whose weights or logits are
not finite raises and is never cached. Temporary folders of crashed runs are removed; a retrain killed between
the two renames of its swap is put back (:func:`series.store.recover`). A cache that cannot be
written (no lock file can be made) still serves its finished entries, writing nothing.
"""
from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import inspect
import json
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import sklearn
import tokenizers
import torch
import torch.distributed as dist
import transformers
from filelock import FileLock

from mtl_utils.core import paths, runtime
from mtl_utils.core.digests import update_with_texts
from mtl_utils.data.checks import check_datasets, warn_about
from mtl_utils.data.tasks import SPLITS, Task
from mtl_utils.modeling.model import CheckpointError, MultiTaskModel
from mtl_utils.training import distributed, trainer
from mtl_utils.training.config import TrainConfig
from mtl_utils.training.trainer import TrainResult, train
from series import store

ENTRY_FILES = ("result.json", "history.csv", "steps.csv", "test.csv", "predictions.npz", "seen.npz")


PROJECT = ("mtl_utils", "series")  # the packages whose code a run's key covers


def _imported_modules(module: ModuleType) -> list[ModuleType]:
    """The project modules ``module`` imports (``from mtl_utils.x import y``: ``mtl_utils.x``; ``from
    mtl_utils.x import module``: that module alone; relative imports alike)."""
    found = []
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if isinstance(node, ast.Import):
            found += [importlib.import_module(a.name) for a in node.names if a.name.split(".")[0] in PROJECT]
        elif isinstance(node, ast.ImportFrom):
            base = (importlib.util.resolve_name("." * node.level + (node.module or ""), module.__package__)
                    if node.level else node.module or "")
            if base.split(".")[0] not in PROJECT:
                continue
            modules = [f"{base}.{a.name}" for a in node.names
                       if _is_package(base) and importlib.util.find_spec(f"{base}.{a.name}")]
            # from pkg import module: the module itself, not the package (its __init__ may import much more);
            # from module import name: the module
            names = modules if len(modules) == len(node.names) else [base, *modules]
            found += [importlib.import_module(name) for name in names]
    return found


def _is_package(name: str) -> bool:
    spec = importlib.util.find_spec(name)
    return spec is not None and spec.submodule_search_locations is not None


@cache
def training_modules(*roots: ModuleType) -> tuple[ModuleType, ...]:
    """Every project module the ``roots`` (default: the trainer) depend on through their imports, the roots
    included, sorted by name; found once per process (imports do not change while it runs)."""
    seen: dict[str, ModuleType] = {}
    todo = list(roots or (trainer,))
    while todo:
        module = todo.pop()
        if module.__name__ not in seen:
            seen[module.__name__] = module
            todo += _imported_modules(module)
    return tuple(seen[name] for name in sorted(seen))


def code_fingerprint() -> str:
    """SHA-256 over the training path's code (:func:`training_modules`), docstrings and comments excluded."""
    return store.code_sha256(training_modules())


def library_versions() -> dict[str, str]:
    """Versions of the libraries that compute a run."""
    return {"torch": torch.__version__, "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
            "numpy": np.__version__, "scikit-learn": sklearn.__version__}


def all_true(flag: bool, device: torch.device | None = None) -> bool:
    """Whether ``flag`` holds on every process (``flag`` itself when alone)."""
    if distributed.world().size == 1:
        return bool(flag)
    value = torch.tensor([int(bool(flag))], device=device or distributed.collective_device())
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def check_same(value: str, what: str) -> None:
    """Raise ``RuntimeError`` on every process unless ``value`` is the same on all of them."""
    if distributed.world().size == 1:
        return
    values: list = [None] * distributed.world().size
    dist.all_gather_object(values, value)
    if len(set(values)) > 1:
        raise RuntimeError(f"the processes disagree on the {what}: {values} (by rank); they must run the same "
                           "code, data, model files and library versions")


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
            update_with_texts(digest, df["text"])
            digest.update(df["label"].to_numpy().astype(np.int64).tobytes())
    return digest.hexdigest()


def run_key(config: TrainConfig, tasks: Mapping[str, Task]) -> str:
    """Cache key of a run: configuration, base model files, data, training code and library versions (16 hex
    characters). The tasks are checked first (:func:`mtl_utils.data.checks.check_datasets`): a key is never
    computed from data a run would refuse."""
    check_datasets(tasks, config.tasks + config.watch_tasks, warn=False)  # the Trainer, or a cache hit, warns
    return store.key({"config": config.to_dict(), "device": runtime.device(config.device).type,
                      "processes": distributed.world().size, "base model": store.model_digest(config.model),
                      "data": data_fingerprint(tasks, config.tasks + config.watch_tasks),
                      "code": code_fingerprint(), "versions": library_versions()})


def save_result(result: TrainResult, folder: Path) -> None:
    """Write a run into ``folder``: model checkpoint, tables, predictions, summary, and the manifest last."""
    folder.mkdir(parents=True, exist_ok=True)
    result.model.save(folder / "model")
    result.history.to_csv(folder / "history.csv", index=False)
    result.steps.to_csv(folder / "steps.csv", index=False)
    result.test.to_csv(folder / "test.csv", index=False)
    np.savez(folder / "predictions.npz", **result.predictions)
    np.savez(folder / "seen.npz", **result.seen)
    summary = {"config": result.config.to_dict(), "best_round": result.best_round,
               "train_seconds": result.train_seconds, "confusion": {k: v.tolist() for k, v in result.confusion.items()},
               "frozen": [name for name, p in result.model.named_parameters() if not p.requires_grad]}
    (folder / "result.json").write_text(json.dumps(summary, indent=2))
    store.seal(folder)


def verify_entry(folder: Path) -> None:
    """Raise :class:`~series.store.DamagedEntry` unless every file of the entry exists and matches the manifest
    (:func:`series.store.verify`)."""
    store.verify(folder, (*ENTRY_FILES, "model/config.json", "model/model.safetensors"))


def load_result(folder: Path, config: TrainConfig) -> TrainResult:
    """Read back a verified entry (see :func:`verify_entry`); a problem raises :class:`~series.store.DamagedEntry`."""
    verify_entry(folder)
    try:
        summary = json.loads((folder / "result.json").read_text())
        with np.load(folder / "predictions.npz") as stored:
            predictions = {k: stored[k] for k in stored.files}
        with np.load(folder / "seen.npz") as stored:
            seen = {k: stored[k] for k in stored.files}
        test = pd.read_csv(folder / "test.csv")
        if test.empty:
            raise store.DamagedEntry("test.csv has no rows")
        model = MultiTaskModel.load(folder / "model", device=config.device)
        frozen = set(summary["frozen"])
        for name, param in model.named_parameters():  # as the run left them: a cached result equals a fresh one
            param.requires_grad_(name not in frozen)
        return TrainResult(model=model, config=config,
                           history=pd.read_csv(folder / "history.csv"), test=test,
                           confusion={k: np.array(v) for k, v in summary["confusion"].items()},
                           predictions=predictions, best_round=summary["best_round"],
                           train_seconds=summary["train_seconds"], steps=pd.read_csv(folder / "steps.csv"),
                           cached=True, seen=seen)
    except (CheckpointError, KeyError, ValueError, OSError, pd.errors.ParserError) as err:
        raise store.DamagedEntry(f"{type(err).__name__}: {err}") from None


def train_or_load(config: TrainConfig, tasks: Mapping[str, Task], force: bool = False, progress_bar: bool = True,
                  cache: Path | None = None) -> TrainResult:
    """Load the cached result of this exact run, or train and cache it (``force=True`` retrains).

    A damaged entry is reported with a warning naming it and retrained. A cached result warns about its data as
    a fresh run does. ``config.init_from`` must name a finished run in the same cache; training continues from
    its model. With several processes (:mod:`~mtl_utils.training.distributed`) every process must compute the
    same run key; the run is loaded only when every process finds it intact in its cache folder (on several
    machines: share ``MTL_CACHE_DIR``, or each launch trains again), else all train; the main process alone
    holds the lock and writes the entry. Where the cache cannot be written (no lock file can be made), a
    finished entry is read without the lock and nothing is written; a run that must be trained there raises
    ``PermissionError`` naming the folder.
    """
    root = Path(cache or paths.cache_dir()) / "runs"
    key = run_key(config, tasks)
    check_same(key, "run key")
    folder, main = root / key, distributed.world().main
    lock, unwritable = None, None
    if main:
        try:
            lock = _acquire_lock(root, key)
        except OSError as err:
            if err.errno not in store.READ_ONLY:
                raise
            unwritable = f"{type(err).__name__}: {err}"
    unwritable = distributed.broadcast(unwritable)
    try:
        if lock is not None:
            store.recover(folder, tidy_all=True)  # under the lock: a killed swap put back, leftovers gone
        distributed.barrier()  # every process reads after the main one put back a killed swap
        result = _load_cached(folder, config, force, writable=unwritable is None)
        if all_true(result is not None):
            distributed.barrier()  # every process has read the entry before the lock is released
            warn_about(tasks, config.tasks + config.watch_tasks)
            return result
        if unwritable is not None:
            why = "force=True retrains it" if force else "it holds no finished entry"
            raise PermissionError(f"the run cache {root} cannot be written ({unwritable}) and {why} for run {key}: "
                                  "make it writable or point MTL_CACHE_DIR at a writable folder")
        result = train(config, tasks, model=_start_model(root, config), progress_bar=progress_bar)
        if main:
            _publish(result, root, key)
    finally:
        if lock is not None:
            lock.release()
    distributed.barrier()
    return result


def _acquire_lock(root: Path, key: str) -> FileLock:
    """The lock of run ``key``, held (waiting for another process that holds it); ``OSError`` where the cache
    cannot be written."""
    (root / ".locks").mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(root / ".locks" / f"{key}.lock"))
    lock.acquire()
    return lock


def _load_cached(folder: Path, config: TrainConfig, force: bool, writable: bool = True) -> TrainResult | None:
    """The cached run in ``folder``, or ``None`` (absent, ``force``, or damaged: then a warning names it). Where
    the cache cannot be written, an entry a killed swap left under a hidden name is read where it lies."""
    if force:
        return None
    if not writable and not folder.is_dir():
        folder = store.leftover(folder) or folder
    if folder.is_dir():
        try:
            return load_result(folder, config)
        except store.DamagedEntry as err:
            then = "training it again" if writable else "its cache cannot be written to train it again"
            store.warn_damaged("run", folder, err, then)
    return None


def _start_model(root: Path, config: TrainConfig) -> MultiTaskModel | None:
    """The model ``config.init_from`` names (a finished, intact run in ``root``), or ``None``."""
    if not config.init_from:
        return None
    source = root / config.init_from
    try:
        verify_entry(source)
        return MultiTaskModel.load(source / "model", device=config.device)
    except (store.DamagedEntry, CheckpointError) as err:
        raise FileNotFoundError(f"init_from='{config.init_from}': no finished, intact run at {source} ({err}); "
                                "train that run first (train_or_load of its config)") from None


def _publish(result: TrainResult, root: Path, key: str) -> None:
    """Write ``result`` as the entry ``root/key`` (:func:`series.store.publish`)."""
    store.publish(root / key, lambda tmp: save_result(result, tmp))
