"""Every notebook in notebooks/, executed headless by papermill in quick mode, with assertions on the numbers
it records (``metrics.json`` in its output folder), and checks of the committed full-run outputs. The
assertions of notebook ``NN_*.ipynb`` live in ``tests/notebook_checks/nbNN.py``."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from mtl_utils import paths
from series import records
from tools.run_notebooks import execute, notebooks

PARAMETERS = yaml.safe_load((Path(__file__).parent / "notebook_parameters.yaml").read_text())


def checks_for(notebook: Path):
    module = f"notebook_checks.nb{notebook.stem[:2]}"
    try:
        return importlib.import_module(module).check
    except ModuleNotFoundError:
        pytest.fail(f"add tests/notebook_checks/nb{notebook.stem[:2]}.py with check(metrics) for {notebook.name}")


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory):
    """One run cache for the whole quick series, as `make run` shares data/cache: later notebooks load the
    runs earlier ones trained (the protocol's shared configurations)."""
    return tmp_path_factory.mktemp("cache")


@pytest.mark.notebook
@pytest.mark.parametrize("notebook", notebooks(), ids=lambda p: p.stem)
def test_notebook_runs_and_records(notebook: Path, tmp_path: Path, shared_cache: Path, monkeypatch) -> None:
    check = checks_for(notebook)
    monkeypatch.setenv("MTL_CACHE_DIR", str(shared_cache))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    out = tmp_path / "out"
    params = {**PARAMETERS["all"], **(PARAMETERS.get("notebooks") or {}).get(notebook.name, {}),
              "OUTPUT_DIR": str(out)}
    execute(notebook, tmp_path / notebook.name, params, cwd=paths.NOTEBOOKS_DIR)
    check(records.load_metrics(out))
