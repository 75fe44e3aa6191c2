"""The committed notebooks as readers meet them: outputs of a full run, every cell executed, no errors, no
warnings a reader cannot act on, no paths of the machine that ran them, one line per progress bar, code that
fits the book's code column (formatted by ruff), figures with alternative text, and a results record
matching the run that passes the notebook's own checks."""
import importlib
import json
import re
import subprocess
import sys

import pytest

from mtl_utils import paths
from tools.run_notebooks import kernel_display_name, notebooks

ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(work|tmp|home|root|Users|opt|usr)/[\w.-]+")


def outputs_text(cell) -> str:
    text = ""
    for output in cell.get("outputs", []):
        text += "".join(output.get("text", ""))
        for mime, value in output.get("data", {}).items():
            if mime.startswith("text/"):
                text += "".join(value)
    return text


@pytest.fixture(params=notebooks(), ids=lambda p: p.stem)
def notebook(request):
    return request.param, json.loads(request.param.read_text())


def test_full_run_outputs_every_cell_no_errors(notebook):
    path, nb = notebook
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert any("parameters" in c["metadata"].get("tags", []) for c in code), "no cell tagged parameters"
    assert all(c["execution_count"] is not None for c in code if c["source"]), "a code cell was not executed"
    assert not [o for c in code for o in c.get("outputs", []) if o["output_type"] == "error"]
    injected = nb["metadata"].get("papermill", {}).get("parameters", {})
    assert not injected.get("QUICK"), "committed outputs must come from a full run"
    assert nb["metadata"]["kernelspec"]["display_name"] == kernel_display_name()


def test_outputs_are_clean(notebook):
    path, nb = notebook
    for i, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
        text = outputs_text(cell)
        assert not ABSOLUTE_PATH.search(text), f"code cell {i} shows a machine path: {ABSOLUTE_PATH.search(text)[0]}"
        assert "TqdmWarning" not in text and "IProgress" not in text, f"code cell {i}"
        assert text.count("\r") <= 1, f"code cell {i} holds a stream of progress-bar fragments"
        streams = [o for o in cell.get("outputs", []) if o.get("name") == "stderr"]
        assert not streams, f"code cell {i} writes to stderr: {''.join(streams[0]['text'])[:200]}"


def test_code_fits_the_book_column(notebook):
    """The book's code column holds 88 characters; longer lines scroll sideways. `make format` wraps them."""
    path, nb = notebook
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            for line in "".join(cell["source"]).splitlines():
                assert len(line) <= 88, f"{path.name}: a code line of {len(line)} characters: {line[:60]}..."


def test_notebooks_are_formatted():
    """The notebooks' code as ruff formats it at notebooks/ruff.toml's line length (`make format` fixes it)."""
    done = subprocess.run([sys.executable, "-m", "ruff", "format", "--check", "--quiet", str(paths.NOTEBOOKS_DIR)],
                          capture_output=True, text=True)
    assert done.returncode == 0, f"run `make format`: {done.stdout.strip() or done.stderr.strip()}"


def test_figures_have_alternative_text(notebook):
    path, nb = notebook
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" in data:
                assert 'alt="' in "".join(data.get("text/html", "")), f"{path.name}: a figure without alt text"


def test_results_record_is_the_committed_run(notebook):
    path, nb = notebook
    record = json.loads(paths.results_file(path.stem).read_text())
    assert record["parameters"].get("QUICK") is False
    assert record["metrics"]["runtime_minutes"] > 0
    shown = "".join(outputs_text(c) for c in nb["cells"] if c["cell_type"] == "code")
    assert f"run time {record['metrics']['runtime_minutes']:.1f} min" in shown, "the record is not from this run"


def test_committed_results_pass_the_notebook_checks(notebook):
    """What the quick runs must record holds for the committed full run as well; a few checks (such as notebook
    04's trainable-head arm being its sweep's k = 5 runs) can only bite on a full run."""
    path, _ = notebook
    check = importlib.import_module(f"notebook_checks.nb{path.stem[:2]}").check
    check(json.loads(paths.results_file(path.stem).read_text())["metrics"])


def test_no_machine_paths_in_the_papermill_metadata(notebook):
    """papermill records where the files were on the machine that ran them; that is nobody else's business."""
    _, nb = notebook
    assert not {"input_path", "output_path"} & set(nb["metadata"].get("papermill", {}))


def test_no_widget_state_is_committed(notebook):
    """Widget state saved by a headless run (a library's progress bar) makes the book load the widget
    manager from a CDN for nothing; the series' live controls run in JupyterLab, not from saved state."""
    path, nb = notebook
    assert "widgets" not in nb["metadata"], f"{path.name} carries saved widget state"
