"""Every folder the series reads or writes, in one place.

``MTL_OUTPUT_DIR`` and ``MTL_CACHE_DIR`` override the defaults (tests point them at temporary folders).
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT: Path = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR: Path = REPO_ROOT / "notebooks"


def output_dir() -> Path:
    """Where notebooks write figures, metrics and executed copies (git-ignored)."""
    return Path(os.environ.get("MTL_OUTPUT_DIR", REPO_ROOT / "outputs"))


def cache_dir() -> Path:
    """Where derived data splits and trained runs are cached (git-ignored)."""
    return Path(os.environ.get("MTL_CACHE_DIR", REPO_ROOT / "data" / "cache"))
