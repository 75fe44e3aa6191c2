"""Sealed folders, written whole and checked before read (static int8 models; :mod:`series.store`'s entries):
:func:`publish` writes a hidden sibling, seals it with ``manifest.json`` (:func:`seal`) and swaps it in; :func:`verify`
raises :class:`DamagedEntry` for a missing or wrong manifest; :func:`recover` undoes a swap killed mid-rename."""
from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from mtl_utils.core.digests import first_mismatch, manifest_of, publish_folder

MANIFEST = "manifest.json"
_STALE_SECONDS = 3600  # a temporary folder this old is a killed write's, not a running one's


class DamagedEntry(RuntimeError):
    """A sealed folder is incomplete or does not match its manifest."""


def seal(folder: Path) -> None:
    """Write ``folder``'s manifest: the SHA-256 of every file in it, the manifest itself last."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    (folder / MANIFEST).write_text(json.dumps(manifest_of(folder, files), indent=2))


def verify(folder: Path, required: Iterable[str] = ()) -> None:
    """Raise :class:`DamagedEntry` unless ``folder``'s manifest lists ``required`` and every file it lists matches."""
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
    """The hidden folders writes of ``folder`` left beside it: (new copies ``.tmp-*``, moved aside ``.old-*``)."""
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
    """Where a killed swap left ``folder``: the newest finished new copy, else entry moved aside; else ``None``."""
    if folder.exists():
        return None
    for kind in siblings(folder):
        for candidate in sorted(kind, key=_mtime, reverse=True):
            if candidate.is_dir() and is_finished(candidate):
                return candidate
    return None


def recover(folder: Path, tidy_all: bool = False) -> None:
    """Put back what a killed swap left hidden (:func:`leftover`); remove stale leftovers (all: ``tidy_all``)."""
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
    """``write(tmp)`` into a hidden sibling of ``folder``, :func:`seal` it, swap it in as ``folder``; if a reader
    recovers ``folder`` mid-swap (:func:`recover` takes no lock), the swap is retried or already done."""
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
