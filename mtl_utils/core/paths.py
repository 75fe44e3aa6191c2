"""Every folder the series reads or writes, in one place; ``MTL_OUTPUT_DIR`` and ``MTL_CACHE_DIR`` override them."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT: Path = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR: Path = REPO_ROOT / "notebooks"
RESULTS_DIR: Path = NOTEBOOKS_DIR / "results"


def output_dir() -> Path:
    """Where notebooks write figures, metrics and executed copies (git-ignored)."""
    return Path(os.environ.get("MTL_OUTPUT_DIR", REPO_ROOT / "outputs"))


def cache_dir() -> Path:
    """Where embeddings and trained runs are cached (git-ignored)."""
    return Path(os.environ.get("MTL_CACHE_DIR", REPO_ROOT / "data" / "cache"))


RECORD_ENV = "MTL_RECORD_RESULTS"  # "1": full runs write notebooks/results/ (run_notebooks --inplace sets it)


def results_file(notebook: str) -> Path:
    """The committed full-run record of a notebook: ``notebooks/results/NN.json`` (NN: its number)."""
    return RESULTS_DIR / f"{notebook[:2]}.json"


def relative(path: str | Path) -> str:
    """``path`` relative to the repository when it lies inside it (what notebooks print), else as it is."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)
