"""A multi-task model's checkpoint: one self-contained folder, loading offline for any base model, read back verified:
``config.json`` (encoder settings, tasks and labels, head shape, a SHA-256 of every other file), ``model.safetensors``
(every weight, no pickle, digests of the configuration and the manifest), ``backbone/`` (configuration, tokenizer). An
edited ``config.json``, flipped bytes, or a Python file the manifest does not list are refused (damage and careless
edits, not a forger; loading runs no code). Saving keeps what it did not write and refuses a folder not a checkpoint;
it writes a hidden sibling and swaps it in (:func:`publish_folder`), losing nothing if killed. No lock: one writer."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from mtl_utils.core.digests import first_mismatch, manifest_of, publish_folder

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
BACKBONE_DIR = "backbone"
FORMAT_VERSION = 3  # 3: the manifest's digest is stored in the weights' metadata
_OURS = (CONFIG_FILE, WEIGHTS_FILE, BACKBONE_DIR)
_STALE_SECONDS = 3600  # a temporary folder this old is a killed save's, not a running one's
_CODE_SUFFIXES = (".py", ".pyc")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class CheckpointError(ValueError):
    """A checkpoint folder is missing, incomplete, corrupted or edited; the message names the file."""


def config_digest(config: Mapping) -> str:
    """Digest of a checkpoint's configuration, without its file checksums (stored inside the weights file)."""
    core = {k: v for k, v in config.items() if k != "files"}
    return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()


def files_digest(files: Mapping[str, str]) -> str:
    """Digest of a checkpoint's manifest without the weights' own entry (stored inside the weights file)."""
    core = {k: v for k, v in files.items() if k not in (WEIGHTS_FILE, CONFIG_FILE)}
    return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()


def is_checkpoint(folder: Path) -> bool:
    """Whether ``folder`` holds a checkpoint written by this module (any format version)."""
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and isinstance(config.get("format_version"), int) \
        and {"encoder", "tasks", "head", "files"} <= set(config)


def _siblings(folder: Path, kind: str) -> list[Path]:
    """Hidden siblings left by saves of ``folder``: ``kind`` is ``tmp`` (new, maybe unfinished) or ``old``."""
    found = folder.parent.glob(f".{folder.name}.{kind}-*") if folder.parent.is_dir() else []
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def recover(folder: Path) -> None:
    """Put back what a killed save left hidden (newest finished, new before old); remove what finished saves left."""
    if not folder.exists():
        finished = [p for p in _siblings(folder, "tmp") if is_checkpoint(p)] + _siblings(folder, "old")
        if finished:
            os.replace(finished[0], folder)
    if folder.exists():
        for old in _siblings(folder, "old"):
            shutil.rmtree(old, ignore_errors=True)
    for tmp in _siblings(folder, "tmp"):
        if time.time() - tmp.stat().st_mtime > _STALE_SECONDS:
            shutil.rmtree(tmp, ignore_errors=True)


def _keep_extras(folder: Path, tmp: Path) -> None:
    """Link (or copy) every entry of ``folder`` that a save did not write into the new checkpoint ``tmp``."""
    for entry in folder.iterdir():
        if entry.name in _OURS:
            continue
        if entry.is_dir() and not entry.is_symlink():
            try:
                shutil.copytree(entry, tmp / entry.name, symlinks=True, copy_function=os.link)
            except OSError:
                shutil.rmtree(tmp / entry.name, ignore_errors=True)
                shutil.copytree(entry, tmp / entry.name, symlinks=True)
        else:
            try:
                os.link(entry, tmp / entry.name, follow_symlinks=False)
            except OSError:
                shutil.copy2(entry, tmp / entry.name, follow_symlinks=False)


def save_checkpoint(folder: str | Path, config: dict, state: Mapping[str, torch.Tensor],
                    write_backbone: Callable[[Path], None]) -> Path:
    """Write a checkpoint of ``config`` and ``state`` into ``folder``; ``write_backbone(path)`` saves the backbone."""
    folder = Path(folder)
    recover(folder)
    if folder.exists() and any(folder.iterdir()) and not is_checkpoint(folder):
        raise FileExistsError(f"{folder} exists and is not a MultiTaskModel checkpoint: refusing to write into it "
                              "(choose an empty or new folder)")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        config = dict(config)
        write_backbone(tmp / BACKBONE_DIR)  # first: the weights' metadata holds the digest of its manifest
        signed = {"config_sha256": config_digest(config),
                  "files_sha256": files_digest(manifest_of(tmp, sorted(tmp.rglob("*"))))}
        save_file(dict(state), str(tmp / WEIGHTS_FILE), metadata=signed)
        config["files"] = manifest_of(tmp, sorted(tmp.rglob("*")))
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2))  # last: a tmp with it is finished
        if folder.exists():
            _keep_extras(folder, tmp)
        publish_folder(tmp, folder, folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def read_checkpoint_config(folder: Path) -> dict:
    """A checkpoint's ``config.json``, after checking folder, format, manifest (every .py listed) and checksums."""
    folder = Path(folder)
    recover(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder: no MultiTaskModel checkpoint there")
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{folder} is not a saved MultiTaskModel: {CONFIG_FILE} is missing")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err}): the checkpoint is corrupted; save it again") from None
    if not isinstance(config, dict) or config.get("format_version") != FORMAT_VERSION:
        found = config.get("format_version") if isinstance(config, dict) else None
        raise CheckpointError(f"{path}: checkpoint format {found}, expected {FORMAT_VERSION} (another version of "
                              "mtl_utils wrote it): train or save the model again with this version")
    for key in ("encoder", "tasks", "head", "files"):
        if key not in config:
            raise CheckpointError(f"{path} has no '{key}' entry: the checkpoint is incomplete")
        if not isinstance(config[key], dict):
            raise CheckpointError(f"{path}: '{key}' is a {type(config[key]).__name__}, expected a mapping: the "
                                  "checkpoint is corrupted; save it again")
    _check_manifest(folder, config["files"])
    mismatch = first_mismatch(folder, config["files"])
    if mismatch and mismatch[1] == "missing":
        raise CheckpointError(f"{folder / mismatch[0]} is missing from the checkpoint")
    if mismatch:
        raise CheckpointError(f"{folder / mismatch[0]} does not match its checksum in {CONFIG_FILE}: the file is "
                              "corrupted")
    if WEIGHTS_FILE not in config["files"]:
        raise CheckpointError(f"{path} lists no {WEIGHTS_FILE}: the checkpoint is incomplete")
    return config


def _check_manifest(folder: Path, files: dict) -> None:
    """Refuse a manifest that is not ``{relative path inside folder: SHA-256}``, and unlisted Python files."""
    path = folder / CONFIG_FILE
    for name, digest in files.items():
        parts = Path(name).parts
        if Path(name).is_absolute() or ".." in parts or not parts or not isinstance(digest, str) \
                or not _SHA256.fullmatch(digest):
            raise CheckpointError(f"{path}: 'files' entry {name!r}: {digest!r:.70} is not a file inside the "
                                  "checkpoint with its SHA-256: the checkpoint is corrupted; save it again")
    for file in sorted(folder.rglob("*")):
        name = str(file.relative_to(folder))
        if file.suffix in _CODE_SUFFIXES and name not in files:
            raise CheckpointError(f"{file} is Python code that {path} does not list: a checkpoint holds no code, "
                                  "and loading never runs any; remove the file")


def read_weights(folder: Path, config: dict) -> dict[str, torch.Tensor]:
    """The weights of a checked checkpoint (:func:`read_checkpoint_config`), verified against their stored digests."""
    path = folder / WEIGHTS_FILE
    try:
        with safe_open(str(path), framework="pt") as handle:
            signed = handle.metadata() or {}
            state = {k: handle.get_tensor(k) for k in handle.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} cannot be read ({err}): the checkpoint is corrupted") from None
    if signed.get("files_sha256") != files_digest(config["files"]):
        raise CheckpointError(f"the file list ('files') of {folder / CONFIG_FILE} was changed after the weights were "
                              f"saved (its digest does not match the one in {WEIGHTS_FILE}): save the checkpoint again")
    if signed.get("config_sha256") != config_digest(config):
        raise CheckpointError(f"{folder / CONFIG_FILE} was changed after the weights were saved (its digest does not "
                              f"match the one in {WEIGHTS_FILE}): label names, pooling or lengths no longer fit them")
    return state
