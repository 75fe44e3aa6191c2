"""The run store: every result the series computes once and reads back (trained runs, pair runs, pooled
embeddings, replayed timings) is kept the same way, in one place.

* :func:`key`: an entry's name, a SHA-256 over what the result depends on (given as a JSON-able mapping);
* an entry is a folder ``<cache>/<kind>/<key>/`` holding its files and ``manifest.json`` (the SHA-256 of every
  file, written last: :func:`seal`);
* :func:`publish`: an entry written into a hidden temporary sibling, sealed, then swapped in
  (:func:`~mtl_utils.core.digests.publish_folder`), so readers never see half an entry;
* :func:`verify`: an entry whose manifest is missing, unreadable or does not match its files is
  :class:`DamagedEntry`;
* :func:`recover`: a swap killed between its two renames leaves the entry under a hidden name; the newest
  finished one is put back (the new copy before the old), and what crashed writes left is removed;
* :func:`load_or_make`: the one policy for every kind: a finished entry is loaded; a damaged one is reported
  with a one-line warning and made again, never loaded.

Trained runs add a file lock and the processes of a distributed run around these
(:func:`mtl_utils.training.runs.train_or_load`); the other kinds are written by one process at a time.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TypeVar

from .digests import first_mismatch, manifest_of, publish_folder

MANIFEST = "manifest.json"
READ_ONLY = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})  # what writing into an unwritable cache raises
_STALE_SECONDS = 3600  # a temporary folder this old is a killed write's, not a running one's
T = TypeVar("T")


class DamagedEntry(RuntimeError):
    """A stored entry is incomplete or does not match its manifest."""


def key(parts: Mapping, length: int = 16) -> str:
    """An entry's name: the first ``length`` hex characters of the SHA-256 of ``parts`` as sorted JSON (values
    JSON cannot hold are written with ``str``)."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def seal(folder: Path) -> None:
    """Write ``folder``'s manifest: the SHA-256 of every file in it, the manifest itself last."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    (folder / MANIFEST).write_text(json.dumps(manifest_of(folder, files), indent=2))


def verify(folder: Path, required: Iterable[str] = ()) -> None:
    """Raise :class:`DamagedEntry` unless ``folder`` has a manifest that lists ``required`` and every file it
    lists exists and matches."""
    path = folder / MANIFEST
    if not path.is_file():
        raise DamagedEntry(f"{MANIFEST} is missing (an entry from an interrupted or older write)")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DamagedEntry(f"{MANIFEST} is not valid JSON ({err})") from None
    if not isinstance(manifest, dict):
        raise DamagedEntry(f"{MANIFEST} is not a mapping of files to checksums")
    for name in required:
        if name not in manifest:
            raise DamagedEntry(f"the manifest does not list {name}")
    mismatch = first_mismatch(folder, manifest)
    if mismatch:
        raise DamagedEntry(f"{mismatch[0]} is missing" if mismatch[1] == "missing" else
                           f"{mismatch[0]} does not match its checksum")


def is_finished(folder: Path) -> bool:
    """Whether ``folder`` is a sealed, intact entry."""
    try:
        verify(folder)
    except DamagedEntry:
        return False
    return True


def siblings(folder: Path) -> tuple[list[Path], list[Path]]:
    """The hidden folders writes of ``folder`` left beside it: (new copies ``.tmp-*``, entries moved aside
    ``.old-*``)."""
    parent = folder.parent
    if not parent.is_dir():
        return [], []
    return list(parent.glob(f".tmp-{folder.name}-*")), list(parent.glob(f".old-{folder.name}-*"))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def leftover(folder: Path) -> Path | None:
    """Where a swap killed between its two renames left ``folder``: the newest finished new copy, else the
    newest finished entry moved aside; ``None`` when ``folder`` exists or nothing finished is left."""
    if folder.exists():
        return None
    for kind in siblings(folder):
        for candidate in sorted(kind, key=_mtime, reverse=True):
            if candidate.is_dir() and is_finished(candidate):
                return candidate
    return None


def recover(folder: Path, tidy_all: bool = False) -> None:
    """Put back the entry a killed swap left hidden (:func:`leftover`), then remove leftovers of finished or
    crashed writes: every one with ``tidy_all`` (the caller holds the entry's lock), else those over an hour
    old (another process may be writing). A folder that cannot be written is left as it is."""
    found = leftover(folder)
    try:
        if found is not None:
            os.replace(found, folder)
        new, old = siblings(folder)
        for stale in [*new, *old]:
            if tidy_all or (folder.exists() and stale in old) or time.time() - _mtime(stale) > _STALE_SECONDS:
                shutil.rmtree(stale, ignore_errors=True)
    except OSError:  # another process put one back first, or the cache cannot be written
        pass


def publish(folder: Path, write: Callable[[Path], None]) -> Path:
    """``write(tmp)`` into a hidden sibling of ``folder``, :func:`seal` it, swap it in as ``folder``. A reader
    that recovers ``folder`` between the swap's two renames (:func:`recover`, which takes no lock) may put this
    very copy, or the entry moved aside, in place first: the swap is then tried again, or is already done."""
    tag = uuid.uuid4().hex[:8]
    tmp = folder.parent / f".tmp-{folder.name}-{tag}"
    asides = [folder.parent / f".old-{folder.name}-{tag}{i}" for i in range(3)]
    tmp.mkdir(parents=True)
    try:
        write(tmp)
        seal(tmp)
        for aside in asides:
            try:
                publish_folder(tmp, folder, aside)
                break
            except OSError:
                if not tmp.exists() and is_finished(folder):  # a reader put this copy in place
                    break
                if aside is asides[-1]:
                    raise
    finally:
        for leftover_ in (tmp, *asides):
            shutil.rmtree(leftover_, ignore_errors=True)
    return folder


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
