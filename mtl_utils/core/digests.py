"""Digests and atomic writes, the one place they are defined: :func:`file_sha256` (remembered while the file is
unchanged, :func:`file_identity`), :func:`texts_sha256` / :func:`update_with_texts` (texts hashed length-prefixed, for
every cache key over texts), :func:`manifest_of` / :func:`first_mismatch` (a folder's files' digests; the first that
differs), :func:`write_atomic` (written beside, renamed into place), :func:`publish_folder` (a folder swapped in)."""
from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

_FILE_DIGESTS: dict[tuple, str] = {}


def file_identity(path: Path) -> tuple:
    """What a write (or a reset modification time) changes: path, inode, size, modification and change times."""
    stat = path.stat()
    return (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (hex), read in 1 MiB blocks and remembered while the file is unchanged."""
    path = Path(path)
    identity = file_identity(path)
    known = _FILE_DIGESTS.get(identity)
    if known is None:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        known = _FILE_DIGESTS[identity] = digest.hexdigest()
    return known


def update_with_texts(digest, texts: Iterable[str]) -> None:
    """Feed ``texts`` into a ``hashlib`` object, each UTF-8 encoded and length-prefixed (no two lists collide)."""
    for text in texts:
        raw = str(text).encode("utf-8")
        digest.update(len(raw).to_bytes(8, "big") + raw)


def texts_sha256(texts: Iterable[str], prefix: str = "") -> str:
    """SHA-256 (hex) of ``prefix`` followed by ``texts``, length-prefixed (see :func:`update_with_texts`)."""
    digest = hashlib.sha256(prefix.encode("utf-8"))
    update_with_texts(digest, texts)
    return digest.hexdigest()


def manifest_of(folder: Path, files: Iterable[Path]) -> dict[str, str]:
    """``{path relative to folder: SHA-256}`` of the regular files among ``files``."""
    return {str(p.relative_to(folder)): file_sha256(p) for p in files if p.is_file()}


def first_mismatch(folder: Path, manifest: dict[str, str]) -> tuple[str, str] | None:
    """First file of ``manifest`` missing or changed in ``folder``: ``(name, "missing" | "changed")``, else ``None``."""
    for name, expected in manifest.items():
        path = folder / name
        if not path.is_file():
            return name, "missing"
        if file_sha256(path) != expected:
            return name, "changed"
    return None


def write_atomic(target: str | Path, write: Callable[[Path], None]) -> Path:
    """Create ``target`` by ``write(tmp)`` on a temporary file beside it, then a rename: all or nothing."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def write_text_atomic(target: str | Path, text: str) -> Path:
    """:func:`write_atomic` for a UTF-8 text."""
    return write_atomic(target, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def publish_folder(tmp: Path, folder: Path, aside: Path) -> None:
    """Make the finished folder ``tmp`` become ``folder``; the old one waits at ``aside`` until then, or is put back."""
    if folder.exists():
        os.replace(folder, aside)
    try:
        os.replace(tmp, folder)
    except OSError:
        if aside.exists() and not folder.exists():
            os.replace(aside, folder)
        raise
    shutil.rmtree(aside, ignore_errors=True)
