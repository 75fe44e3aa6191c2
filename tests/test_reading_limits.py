"""The book's reading limits (tools/reading_limits.py): measured on every committed notebook (the table is
printed), enforced on the notebooks already written to them, and shown to catch each kind of excess."""
import json

import pytest

from tools import reading_limits
from tools.run_notebooks import notebooks

# Every notebook is written to the limits (issue 41); the table below tracks them.
WITHIN_LIMITS = tuple(p.stem for p in notebooks())


def test_the_table_of_every_notebook(capsys):
    paths = notebooks()
    print(reading_limits.table(paths))
    assert {p.stem for p in paths} >= set(WITHIN_LIMITS)


@pytest.mark.parametrize("stem", WITHIN_LIMITS)
def test_notebooks_written_to_the_limits_keep_them(stem):
    path = next(p for p in notebooks() if p.stem == stem)
    assert not reading_limits.measure(path).problems()


@pytest.mark.parametrize("stem", [s for s in WITHIN_LIMITS if not s.startswith("08")])
def test_every_chapter_links_to_the_statistics_primer(stem):
    path = next(p for p in notebooks() if p.stem == stem)
    cells = json.loads(path.read_text())["cells"]
    assert any("(08_reading_comparisons.ipynb)" in "".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def _notebook(tmp_path, *cells):
    made = []
    for kind, text in cells:
        if kind == "md":
            made.append({"cell_type": "markdown", "metadata": {}, "source": [text]})
        else:  # a code cell whose output is a figure
            made.append({"cell_type": "code", "metadata": {}, "source": ["plot"], "execution_count": 1,
                         "outputs": [{"output_type": "display_data", "metadata": {},
                                      "data": {"image/png": "iVBOR", "text/plain": ["<Figure>"]}}]})
    path = tmp_path / "99_example.ipynb"
    path.write_text(json.dumps({"cells": made, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_each_limit_is_caught(tmp_path):
    sentence = "A short sentence of eight words ends here. "
    ok = reading_limits.measure(_notebook(tmp_path, ("md", sentence * 18), ("fig", ""), ("md", sentence)))
    assert ok.problems() == [] and ok.figures == 1 and ok.longest_cell == 144
    long_cell = reading_limits.measure(_notebook(tmp_path, ("md", sentence * 19)))
    assert long_cell.cells_over_limit == 1 and "over 150 words" in long_cell.problems()[0]
    three = reading_limits.measure(_notebook(tmp_path, ("md", "+0.1 [+0.0, +0.2], −0.1 [−0.2, 0.0] and 0 [−1, 1]")))
    assert three.most_intervals == 3 and "3 intervals" in three.problems()[0]
    rambling = "Word" + " word" * 44 + ". "
    assert reading_limits.measure(_notebook(tmp_path, ("md", rambling * 4))).long_sentences == 4
    alone = reading_limits.measure(_notebook(tmp_path, ("md", sentence), ("fig", ""), ("fig", ""), ("md", sentence)))
    assert alone.undiscussed_figures == 1  # the first figure is followed by another, not by its discussion
    exercises = reading_limits.measure(_notebook(tmp_path, ("md", sentence), ("md", "## Exercises\n" + sentence * 40),
                                                 ("md", "<details><summary>Solution</summary>" + sentence * 40)))
    assert exercises.words == 8 and exercises.problems() == []
