"""Execute the notebooks of the series in order with papermill (``make run``).

    python -m tools.run_notebooks [--quick] [--inplace] [NOTEBOOK ...] [-p NAME VALUE ...]

Executed copies go to ``outputs/executed/`` (git-ignored); ``--inplace`` overwrites the notebooks in
``notebooks/`` instead, which is how the committed outputs of a full run are refreshed; only then do full runs
also write their records to ``notebooks/results/`` (so a ``make run`` from the cache never changes them).
Kernels run headless (``MTL_HEADLESS=1``: one final line per progress bar) and quiet (no kernel log lines); the
run ends with a table of each notebook's minutes. A refresh that trained nothing (every model from the run
cache) keeps the time of the last full run that trained in its record (``cold run``: what the README shows). A quick run also records its times in ``notebooks/results/quick.json``
(the README's quick-mode column).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import nbformat
import papermill as pm
import yaml
from jupyter_client.kernelspec import KernelSpecManager

from mtl_utils.core import paths
from mtl_utils.core.progress import HEADLESS_ENV

KERNEL = "python3"


def notebooks(selected: list[str] | None = None) -> list[Path]:
    """The series' notebooks in order (``NN_*.ipynb``), or the selected ones (by file name, stem or number)."""
    found = sorted(paths.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
    if not selected:
        return found
    chosen = []
    for name in selected:
        match = [p for p in found if name in (p.name, p.stem) or p.name.startswith(name)]
        if not match:
            raise SystemExit(f"no notebook matches '{name}'; available: {[p.name for p in found]}")
        chosen.extend(match)
    return chosen


def kernel_display_name(name: str = KERNEL) -> str:
    """The display name of the installed kernel (what JupyterLab writes into a notebook it opens)."""
    return KernelSpecManager().get_kernel_spec(name).display_name


def execute(notebook: Path, target: Path, parameters: dict, cwd: Path | None = None) -> float:
    """Run one notebook with papermill, headless and quiet; return the seconds it took. The executed copy
    keeps the installed kernel's name, so JupyterLab opens it unmodified, and neither papermill's record of this
    machine's paths nor saved widget state."""
    os.environ[HEADLESS_ENV] = "1"
    start = time.perf_counter()
    pm.execute_notebook(str(notebook), str(target), parameters=parameters, cwd=str(cwd or notebook.parent),
                        progress_bar=False, kernel_name=KERNEL, extra_arguments=["--IPKernelApp.log_level=CRITICAL"])
    seconds = time.perf_counter() - start
    executed = nbformat.read(target, as_version=4)
    executed.metadata["kernelspec"] = {"display_name": kernel_display_name(), "language": "python", "name": KERNEL}
    for machine_path in ("input_path", "output_path"):  # where this machine keeps the files: nobody else's
        executed.metadata.get("papermill", {}).pop(machine_path, None)
    executed.metadata.pop("widgets", None)  # a library's progress bars: the book would fetch a widget manager
    nbformat.write(executed, target)
    return seconds


def run_entries() -> set[str]:
    """The run cache's entries (one per trained configuration): classifier runs and pair runs."""
    return {f"{kind}/{p.name}" for kind in ("runs", "pairs") if (paths.cache_dir() / kind).is_dir()
            for p in (paths.cache_dir() / kind).iterdir() if p.is_dir()}


def keep_cold_run(old: dict, new: dict) -> dict:
    """``new``'s record with the run time of the last full run that trained, when ``new``'s run trained
    nothing (every model from the run cache): ``cold run`` = minutes and day of that run, carried over from
    ``old`` (its own ``cold run``, or its run time if it trained). The README shows that time, so a reader
    learns what a fresh machine takes, not what a warm cache does."""
    minutes = old.get("metrics", {}).get("runtime_minutes")
    cold = old.get("cold run") or ({"minutes": round(minutes, 2), "measured": old.get("written", "")[:10]}
                                   if minutes is not None else None)
    now = new.get("metrics", {}).get("runtime_minutes") or 0.0
    if cold is None or cold["minutes"] <= 1.2 * now:  # the cache saved nothing (a notebook that trains nothing)
        return new
    return {**new, "cold run": cold}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Execute the notebooks in order with papermill.")
    parser.add_argument("names", nargs="*", help="notebooks to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="QUICK=True (small data, few steps)")
    parser.add_argument("--inplace", action="store_true", help="overwrite notebooks/ with the executed copies")
    parser.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="override a parameter (value parsed as YAML), e.g. -p MODEL bert-base-uncased")
    args = parser.parse_args(argv)
    parameters = {name: yaml.safe_load(value) for name, value in args.p}
    if args.quick:
        parameters["QUICK"] = True
    out_dir = paths.output_dir() / "executed"
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ[paths.RECORD_ENV] = "1" if args.inplace else "0"  # only re-rendered notebooks update the records
    timings = {}
    for nb in notebooks(args.names):
        target = nb if args.inplace else out_dir / nb.name
        print(f"running {nb.name} {parameters or ''}", flush=True)
        record = paths.results_file(nb.stem)
        old = json.loads(record.read_text()) if args.inplace and record.is_file() else {}
        before = run_entries()
        timings[nb.stem] = execute(nb, target, parameters) / 60
        if args.inplace and old and run_entries() == before and record.is_file():  # trained nothing
            record.write_text(json.dumps(keep_cold_run(old, json.loads(record.read_text())), indent=2) + "\n")
    print(f"\n{'notebook':<36} minutes")
    for name, minutes in timings.items():
        print(f"{name:<36} {minutes:7.1f}")
    print(f"{'total':<36} {sum(timings.values()):7.1f}")
    print(f"\nexecuted notebooks: {paths.relative(paths.NOTEBOOKS_DIR if args.inplace else out_dir)}")
    if args.quick and set(parameters) == {"QUICK"}:
        record = paths.RESULTS_DIR / "quick.json"
        old = json.loads(record.read_text()) if record.is_file() else {}
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({**old, **{k: round(v, 2) for k, v in timings.items()}}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
