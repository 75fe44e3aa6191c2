"""What a notebook run leaves behind: its key numbers as JSON, with the environment that produced them.

``metrics.json`` goes to the run's output folder (what the tests assert on). A full run also writes the same
record to ``notebooks/results/NN.json``, which is committed: the README's results are generated from those
files (:mod:`tools.readme`), so they can never drift from the committed notebooks.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import io
import json
import math
import os
import platform
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import sklearn
import torch
import transformers
from transformers.utils import logging as hf_logging

from mtl_utils.core import paths, runtime
from mtl_utils.core.digests import write_text_atomic
from mtl_utils.core.seeding import set_seed
from series import store
from series.runs import training_modules


def environment() -> dict[str, Any]:
    """Versions and machine facts worth printing at the top of a notebook and storing with its numbers; the
    device is the one the series computes on (:func:`mtl_utils.core.runtime.device`)."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "cpu cores": os.cpu_count(),
        "cpu": runtime.cpu()["model"],
        "cpu flags": " ".join(runtime.cpu()["flags"]) or "none of " + ", ".join(runtime.SPEED_FLAGS),
        **runtime.describe(),
        "platform": platform.platform(),
    }


def environment_table() -> pd.DataFrame:
    """:func:`environment` as a one-column table."""
    return pd.DataFrame({"value": {k: str(v) for k, v in environment().items()}})


def start(notebook: str, seed: int, output_dir: str | Path | None = None) -> Path:
    """Begin a notebook run: the series' one thread setting (recorded in :func:`environment`), one seeding
    call, no library progress bars, and the notebook's output folder (returned, created)."""
    runtime.set_threads()
    set_seed(seed)
    hf_logging.disable_progress_bar()  # weight-loading bars and load reports say nothing a reader can act on
    hf_logging.set_verbosity_error()
    warnings.formatwarning = _short_warning
    return notebook_output_dir(notebook, output_dir)


def _short_warning(message, category, filename, lineno, line=None) -> str:
    """A warning as a reader needs it in a notebook: its kind and message, without the machine's file paths."""
    return f"{category.__name__}: {message}\n"


def finite_or_none(value: Any) -> float | None:
    """A number for a metrics file: ``None`` where there is none (NaN, e.g. a spread over one seed)."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def notebook_output_dir(notebook: str, output_dir: str | Path | None = None) -> Path:
    """The folder a notebook writes to: ``output_dir`` if given, else ``<outputs>/<notebook>``; created."""
    folder = Path(output_dir) if output_dir else paths.output_dir() / notebook
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _plain(value: Any, where: str = "metrics") -> Any:
    """JSON-ready values; NaN/inf and keys that collide once turned into strings raise, naming the key."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        original: dict[str, Any] = {}
        for key, item in value.items():
            name = str(key)
            if name in out:
                raise ValueError(f"{where}: keys {original[name]!r} and {key!r} both become the JSON key {name!r}")
            original[name] = key
            out[name] = _plain(item, f"{where}[{name!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist(), where)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} is {value}: JSON has no NaN or infinity; store None (null) for a missing number")
    if isinstance(value, Path):
        return str(value)
    return value


def _write_json(target: Path, record: dict) -> Path:
    return write_text_atomic(target, json.dumps(record, indent=2, allow_nan=False) + "\n")


def save_metrics(folder: str | Path, metrics: dict[str, Any], parameters: dict[str, Any] | None = None,
                 notebook: str | None = None) -> Path:
    """Write ``metrics.json`` (numbers, the run's parameters, environment, time) into ``folder``, atomically.

    With ``notebook`` (e.g. ``"03_multitask_model"``), a full run (``parameters["QUICK"]`` false) and
    ``MTL_RECORD_RESULTS=1`` (set by ``run_notebooks --inplace``, i.e. ``make refresh``, which re-renders the
    committed notebooks), the record is also written to ``notebooks/results/<NN>.json``, the committed results
    of the series. Any other run (``make run``, JupyterLab) leaves the committed records alone."""
    record = {"metrics": _plain(metrics), "parameters": _plain(parameters or {}, "parameters"),
              "environment": environment(), "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    target = _write_json(Path(folder) / "metrics.json", record)
    if notebook and not (parameters or {}).get("QUICK", False) and os.environ.get(paths.RECORD_ENV) == "1":
        _write_json(paths.results_file(notebook), record)
    return target


@dataclass
class Timings:
    """Tables from :func:`timings`: ``tables`` by name, and ``when`` they were measured (``replayed``: read back
    from the cache rather than measured by this run)."""

    tables: dict[str, pd.DataFrame]
    when: str
    replayed: bool

    def note(self) -> str:
        """What a notebook prints under replayed timings, so that nobody reads them as this run's."""
        if not self.replayed:
            return f"measured by this run ({self.when})"
        return (f"replayed from the measurement of {self.when} (same models, settings and machine kind); "
                "FORCE_RETRAIN=True measures again")


TIMING_LIBRARIES = ("torch", "onnx", "onnxruntime", "openvino", "nncf", "numpy")
#: The timed code replays are keyed on by default (with every project module these import). Named, not imported:
#: ``python -m series.older_cpus`` runs one of them, and importing ``series`` must not have loaded it already.
TIMED_MODULES = ("mtl_utils.serving.variants", "mtl_utils.serving.padding", "mtl_utils.serving.static_int8",
                 "series.older_cpus", "series.serving_measurements")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def timings(name: str, key: dict[str, Any], measure: Callable[[], dict[str, pd.DataFrame]],
            force: bool = False, code: Sequence[ModuleType] | None = None) -> Timings:
    """Timing tables cached like trained runs: ``measure()`` runs once per ``key`` and is replayed from
    ``<cache>/measurements/`` afterwards, labelled as such. ``force`` measures again.

    The replay is keyed on everything the timings depend on: ``key`` (models, settings), the code of the timed
    modules ``code`` (default: :data:`TIMED_MODULES`, with every project module they import; docstrings and
    comments excluded), the versions of :data:`TIMING_LIBRARIES`, and the
    machine: CPU model and instruction sets (:func:`mtl_utils.core.runtime.cpu`), cores, threads, device."""
    env = environment()
    identity = {"key": _plain(key), "environment": {k: env[k] for k in ("cpu cores", "torch threads", "device",
                                                                    "device name")},
                "versions": {p: _version(p) for p in TIMING_LIBRARIES}, "cpu": runtime.cpu(),
                "code": store.code_sha256(code or training_modules(
                    *map(importlib.import_module, TIMED_MODULES)))}
    folder = paths.cache_dir() / "measurements" / f"{name}-{store.key(identity)}"

    def load(entry: Path) -> tuple[dict[str, pd.DataFrame], str]:
        stored = json.loads((entry / "tables.json").read_text())
        return {k: _frame(v) for k, v in stored["tables"].items()}, stored["when"]

    def write(made: tuple[dict[str, pd.DataFrame], str], tmp: Path) -> None:
        tables, when = made
        stored = {k: {"index": t.index.name, "frame": t.reset_index(drop=t.index.name is None).to_json(orient="split")}
                  for k, t in tables.items()}
        (tmp / "tables.json").write_text(json.dumps({"key": identity, "when": when, "tables": stored}, indent=2))

    (tables, when), replayed = store.load_or_make(folder, load, lambda: (measure(), time.strftime("%Y-%m-%d %H:%M")),
                                                  write, what="measurement", redo="measuring again", force=force)
    return Timings(tables, when, replayed)


def _frame(stored: dict) -> pd.DataFrame:
    frame = pd.read_json(io.StringIO(stored["frame"]), orient="split")
    return frame.set_index(stored["index"]) if stored["index"] else frame


def save_benchmark(name: str, title: str, command: str, setting: str, table: str) -> Path:
    """Write a benchmark's result (its Markdown table and how it was made) to ``benchmarks/results/<name>.json``,
    committed and rendered into the README by :mod:`tools.readme`."""
    record = {"title": title, "command": command, "setting": setting, "table": table,
              "environment": environment(), "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    return _write_json(paths.REPO_ROOT / "benchmarks" / "results" / f"{name}.json", record)


def load_metrics(folder: str | Path) -> dict[str, Any]:
    """Read back what :func:`save_metrics` wrote (the ``metrics`` part)."""
    return json.loads((Path(folder) / "metrics.json").read_text())["metrics"]
