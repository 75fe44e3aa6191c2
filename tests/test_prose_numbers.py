"""Every number typed in a notebook's reading cells comes from the run that rendered it (its outputs or a
record) or is cited with its source (``notebooks/cited_numbers.yaml``); the check catches drift."""
import json

import pytest

from tools import prose_numbers
from tools.run_notebooks import notebooks


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.stem)
def test_every_number_in_the_prose_is_sourced(path):
    missing = prose_numbers.unsourced(path)
    assert not missing, "\n".join(f"cell {i}: {number!r} …{context}…" for i, number, context in missing)


def _notebook(folder, markdown: str, printed: str, stem: str = "02_example"):
    cells = [{"cell_type": "markdown", "metadata": {}, "source": [markdown]},
             {"cell_type": "code", "metadata": {}, "source": ["x"], "execution_count": 1,
              "outputs": [{"output_type": "stream", "name": "stdout", "text": [printed]}]}]
    path = folder / f"{stem}.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


@pytest.mark.parametrize("markdown, printed, flagged", [
    ("topic reached 0.587", "accuracy 0.585", ["0.587"]),  # drift: the run printed another number
    ("topic reached 0.585", "accuracy 0.5852", []),  # the printed value at the prose's precision
    ("topic reached 58.5 %", "accuracy 0.5852", []),
    ("topic reached 58.5 %", "share 58.52%", []),
    ("it took about 22 minutes", "22 rows", ["22 minutes"]),  # a count does not source a measurement
    ("it took about 22 minutes", "took 21.7 min", []),
    ("about 8× cheaper", "13.3× faster", ["8 ×"]),
    ("bert-base has 110 M parameters", "", ["110 M"]),
    ("MiniLM has 22.6 M parameters", "22,565,376 parameters", []),
    ("set `lr=0.587` and $x = 0.587$", "", []),  # code and math are not prose
    ("layer 5 of 6, seed 2024", "", []),  # bare integers are not checked
    ("kept by the family (Holm p = 0.037)", "0.037", ["Holm p = 0.037"]),
])
def test_the_check_catches_drift(tmp_path, monkeypatch, markdown, printed, flagged):
    monkeypatch.setattr(prose_numbers, "RESULTS", tmp_path)
    found = prose_numbers.unsourced(_notebook(tmp_path, markdown, printed), cited={})
    assert [number for _, number, _ in found] == flagged


def test_a_named_notebook_s_record_sources_its_numbers(tmp_path, monkeypatch):
    monkeypatch.setattr(prose_numbers, "RESULTS", tmp_path)
    (tmp_path / "01.json").write_text(json.dumps({"metrics": {"bag of words": 0.8681}}))
    named = _notebook(tmp_path, "[notebook 01](01_sentence_embeddings.ipynb)'s bag of words: 0.868", "")
    assert prose_numbers.unsourced(named, cited={}) == []
    unnamed = _notebook(tmp_path, "the bag of words: 0.868", "", stem="03_other")
    assert [n for _, n, _ in prose_numbers.unsourced(unnamed, cited={})] == ["0.868"]


def test_cited_numbers_are_not_flagged_and_must_say_where_they_are_from(tmp_path, monkeypatch):
    monkeypatch.setattr(prose_numbers, "RESULTS", tmp_path)
    path = _notebook(tmp_path, "SBERT reports 46.35 on STSb", "")
    assert prose_numbers.unsourced(path, cited={"02_example": {"46.35": "Reimers & Gurevych (2019)"}}) == []
    cited = tmp_path / "cited.yaml"
    cited.write_text("03_multitask_model:\n  '46.35': ''\n")
    monkeypatch.setattr(prose_numbers, "CITED", cited)
    with pytest.raises(ValueError, match="without saying where it is from"):
        prose_numbers.load_cited()
