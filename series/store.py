"""The run store: every result the series computes once and reads back (trained runs, pair runs, pooled
embeddings, replayed timings) is kept the same way, in one place.

* :func:`key`: an entry's name, a SHA-256 over what the result depends on (given as a JSON-able mapping),
  with what keys are made of: the code that runs (:func:`code_sha256`, docstrings and comments excluded) and
  the files a model loads from (:func:`model_digest`);
* an entry is a sealed folder ``<cache>/<kind>/<key>/`` (:mod:`mtl_utils.core.folders`: :func:`publish`,
  :func:`verify` and :func:`recover` are that module's, the one implementation of each);
* :func:`load_or_make`: the one policy for every kind: a finished entry is loaded; a damaged one is reported
  with a one-line warning and made again, never loaded.

Trained runs add a file lock and the processes of a distributed run around these
(:func:`series.runs.train_or_load`); the other kinds are written by one process at a time.
"""
from __future__ import annotations

import ast
import errno
import hashlib
import inspect
import json
import warnings
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import TypeVar

import huggingface_hub

from mtl_utils.core.digests import file_identity, file_sha256
from mtl_utils.core.folders import (  # noqa: F401 (the store's folder operations, named where they are used)
    MANIFEST,
    DamagedEntry,
    is_finished,
    leftover,
    publish,
    recover,
    seal,
    siblings,
    verify,
)
from mtl_utils.modeling.backbone import DEFAULT_MODEL, resolve_model

READ_ONLY = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})  # what writing into an unwritable cache raises
T = TypeVar("T")


def key(parts: Mapping, length: int = 16) -> str:
    """An entry's name: the first ``length`` hex characters of the SHA-256 of ``parts`` as sorted JSON (values
    JSON cannot hold are written with ``str``)."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def code_without_docs(source: str) -> str:
    """Python source as an AST dump without docstrings: comment and docstring edits do not count."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False)


def code_sha256(modules: Iterable[ModuleType]) -> str:
    """SHA-256 over the names and the code (:func:`code_without_docs`) of ``modules``, in the order given."""
    digest = hashlib.sha256()
    for module in modules:
        digest.update(module.__name__.encode())
        digest.update(_module_code(module).encode())
    return digest.hexdigest()


_MODULE_CODE: dict[tuple, str] = {}


def _module_code(module: ModuleType) -> str:
    """:func:`code_without_docs` of a module's source, remembered while its file is unchanged."""
    identity = (module.__name__, *file_identity(Path(inspect.getfile(module))))
    if identity not in _MODULE_CODE:
        _MODULE_CODE[identity] = code_without_docs(inspect.getsource(module))
    return _MODULE_CODE[identity]


# What ``from_pretrained`` reads from a model folder: configuration, tokenizer, weights (top level only).
_MODEL_FILES = ("config.json", "sentence_bert_config.json", "tokenizer.json", "tokenizer_config.json",
                "special_tokens_map.json", "vocab.txt", "vocab.json", "merges.txt", "spiece.model",
                "sentencepiece.bpe.model", "model.safetensors", "model.safetensors.index.json", "model-*.safetensors",
                "pytorch_model.bin", "pytorch_model.bin.index.json", "pytorch_model-*.bin")


@cache
def _hub_snapshot(model_id: str) -> Path:
    """A hub model's local snapshot folder: the cached one if there is one, else downloaded (once a process)."""
    try:
        return Path(huggingface_hub.snapshot_download(model_id, allow_patterns=list(_MODEL_FILES),
                                                      local_files_only=True))
    except Exception:  # not cached yet: download it (fails offline, with the message below)
        return Path(huggingface_hub.snapshot_download(model_id, allow_patterns=list(_MODEL_FILES)))


def model_files(name_or_path: str | None) -> Path:
    """The folder a model loads from: the bundled default, a local folder, or a hub model's local snapshot."""
    path = Path(resolve_model(name_or_path))
    if path.is_dir():
        return path
    try:
        return _hub_snapshot(str(name_or_path))
    except Exception as err:  # offline and not cached, unknown id, ...: say what to do
        raise OSError(f"Could not find the files of the model '{name_or_path}' ({type(err).__name__}: {err}). "
                      f"Offline, pass a local model folder or use the bundled default '{DEFAULT_MODEL}'.") from err


def model_digest(name_or_path: str | None) -> str:
    """SHA-256 over the files a model loads from (configuration, tokenizer and the weights ``from_pretrained``
    reads: safetensors where there are any, else ``.bin``): what a run trained from this model depends on,
    whatever name points at them (a re-saved folder or an upgraded package changes it)."""
    folder = model_files(name_or_path)
    files = sorted(p for pattern in _MODEL_FILES for p in folder.glob(pattern) if p.is_file())
    if any(p.suffix == ".safetensors" for p in files):
        files = [p for p in files if not p.name.startswith("pytorch_model")]
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.name}:{file_sha256(file)};".encode())
    return digest.hexdigest()


def warn_damaged(what: str, folder: Path, err: Exception, redo: str) -> None:
    """The one warning for a damaged entry, on one line: what it is, where, why, and what happens instead."""
    why = (str(err).strip().splitlines() or [type(err).__name__])[0]
    warnings.warn(f"the cached {what} {folder} is damaged ({why}); {redo}", stacklevel=3)


def load_or_make(folder: Path, load: Callable[[Path], T], make: Callable[[], T], write: Callable[[T, Path], None],
                 *, what: str, redo: str = "computing it again", force: bool = False) -> tuple[T, bool]:
    """``(load(folder), True)`` for a finished entry, else ``(make(), False)`` after publishing it with
    ``write(value, tmp)``. A damaged entry (:func:`verify`, or an error of ``load`` reading it) is reported
    with :func:`warn_damaged` and made again; ``force`` makes it again without looking. Where the cache cannot
    be written, the value made is returned with a one-line warning, unstored."""
    recover(folder)
    if folder.is_dir() and not force:
        try:
            verify(folder)
            return load(folder), True
        except MemoryError:
            raise
        except (DamagedEntry, OSError, ValueError, KeyError, RuntimeError) as err:  # never use such an entry
            if isinstance(err, RuntimeError) and "out of memory" in str(err):
                raise
            warn_damaged(what, folder, err, redo)
    value = make()
    try:
        publish(folder, lambda tmp: write(value, tmp))
    except OSError as err:
        if err.errno not in READ_ONLY:
            raise
        warnings.warn(f"the cache {folder.parent} cannot be written ({err.strerror}): the {what} is not stored",
                      stacklevel=2)
    return value, False
