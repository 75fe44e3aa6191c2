"""What a notebook run leaves behind: its key numbers as JSON, with the environment that produced them."""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import paths


def environment() -> dict[str, Any]:
    """Versions and machine facts worth printing at the top of a notebook and storing with its numbers."""
    import sklearn
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "cpu cores": os.cpu_count(),
        "torch threads": torch.get_num_threads(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "platform": platform.platform(),
    }


def notebook_output_dir(notebook: str, output_dir: str | Path | None = None) -> Path:
    """The folder a notebook writes to: ``output_dir`` if given, else ``<outputs>/<notebook>``; created."""
    folder = Path(output_dir) if output_dir else paths.output_dir() / notebook
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return value


def save_metrics(folder: str | Path, metrics: dict[str, Any], parameters: dict[str, Any] | None = None) -> Path:
    """Write ``metrics.json`` (numbers, the run's parameters, environment, time) into ``folder``.

    The file is written to a temporary name first and then renamed, so a failed run never leaves a
    half-written file behind.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "metrics": _plain(metrics),
        "parameters": _plain(parameters or {}),
        "environment": environment(),
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    target = folder / "metrics.json"
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, allow_nan=False))
    tmp.replace(target)
    return target


def load_metrics(folder: str | Path) -> dict[str, Any]:
    """Read back what :func:`save_metrics` wrote (the ``metrics`` part)."""
    return json.loads((Path(folder) / "metrics.json").read_text())["metrics"]
