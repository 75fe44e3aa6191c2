"""Every notebook in notebooks/, executed headless by papermill in quick mode, with assertions on the
numbers it records (``metrics.json`` in its output folder)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mtl_utils import paths, records
from mtl_utils.run_notebooks import execute, notebooks

PARAMETERS = yaml.safe_load((Path(__file__).parent / "notebook_parameters.yaml").read_text())


def check_01(m: dict) -> None:
    assert m["embedding_dim"] == 384
    assert m["reference_max_abs_diff"] < 1e-5
    for task in ("topic", "sentiment"):
        assert m["probe"][task]["mean"]["accuracy"] > m["majority_baseline"][task]


CHECKS = {"01_sentence_embeddings": check_01}


@pytest.mark.notebook
@pytest.mark.parametrize("notebook", notebooks(), ids=lambda p: p.stem)
def test_notebook_runs_and_records(notebook: Path, tmp_path: Path, monkeypatch) -> None:
    assert notebook.stem in CHECKS, f"add assertions on {notebook.stem}'s metrics to CHECKS in {__file__}"
    monkeypatch.setenv("MTL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    out = tmp_path / "out"
    params = {**PARAMETERS["all"], **(PARAMETERS.get("notebooks") or {}).get(notebook.name, {}),
              "OUTPUT_DIR": str(out)}
    execute(notebook, tmp_path / notebook.name, params, cwd=paths.NOTEBOOKS_DIR)
    CHECKS[notebook.stem](records.load_metrics(out))
