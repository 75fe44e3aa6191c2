"""Execute the notebooks of the series in order with papermill (``make run``).

    python -m mtl_utils.run_notebooks [--quick] [--inplace] [NOTEBOOK ...] [-p NAME VALUE ...]

Executed copies go to ``outputs/executed/`` (git-ignored); ``--inplace`` overwrites the notebooks in
``notebooks/`` instead, which is how the committed outputs of a full run are refreshed.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import yaml

from . import paths


def notebooks(selected: list[str] | None = None) -> list[Path]:
    """The series' notebooks in order (``NN_*.ipynb``), or the selected ones (by file name or stem)."""
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


def execute(notebook: Path, target: Path, parameters: dict, cwd: Path | None = None) -> float:
    """Run one notebook with papermill; return the seconds it took."""
    import papermill as pm

    start = time.perf_counter()
    pm.execute_notebook(
        str(notebook), str(target), parameters=parameters, cwd=str(cwd or notebook.parent), progress_bar=False,
        kernel_name="python3",
    )
    return time.perf_counter() - start


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
    timings = []
    for nb in notebooks(args.names):
        target = nb if args.inplace else out_dir / nb.name
        print(f"running {nb.name} {parameters or ''} ...", flush=True)
        seconds = execute(nb, target, parameters)
        timings.append((nb.name, seconds, target))
        print(f"  done in {seconds / 60:.1f} min -> {target}", flush=True)
    print("\nnotebook                                   minutes")
    for name, seconds, _ in timings:
        print(f"{name:<42} {seconds / 60:7.1f}")
    if timings:
        print(f"\nexecuted notebooks are in {timings[0][2].parent}")
    else:
        print("no notebooks found in", paths.NOTEBOOKS_DIR)
    return 0


if __name__ == "__main__":
    sys.exit(main())
