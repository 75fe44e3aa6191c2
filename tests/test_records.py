"""What a run records: metrics JSON that refuses what JSON cannot hold, naming the key."""
import json
import math

import numpy as np
import pytest

from mtl_utils import paths
from series import records


def test_save_metrics_roundtrip(tmp_path):
    path = records.save_metrics(tmp_path, {"acc": np.float32(0.5), "dims": (1, 2), "arr": np.arange(2)},
                                {"QUICK": True})
    stored = json.loads(path.read_text())
    assert stored["metrics"] == {"acc": 0.5, "dims": [1, 2], "arr": [0, 1]} and stored["parameters"] == {"QUICK": True}
    assert stored["environment"]["device"] == "cpu" and "torch threads" in stored["environment"]
    assert records.load_metrics(tmp_path) == stored["metrics"]


@pytest.mark.parametrize("metrics, message", [
    ({"probe": {"topic": {"accuracy": math.nan}}}, r"metrics\['probe'\]\['topic'\]\['accuracy'\] is nan"),
    ({"runs": [1.0, math.inf]}, r"metrics\['runs'\]\[1\] is inf"),
    ({1: "a", "1": "b"}, r"keys 1 and '1' both become the JSON key '1'"),
])
def test_save_metrics_names_the_bad_key_and_writes_nothing(tmp_path, metrics, message):
    with pytest.raises(ValueError, match=message):
        records.save_metrics(tmp_path, metrics)
    assert not list(tmp_path.iterdir())


def test_full_runs_also_write_the_committed_results_file(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path / "results")
    records.save_metrics(tmp_path / "out", {"a": 1}, {"QUICK": True}, notebook="03_multitask_model")
    assert not (tmp_path / "results").exists()
    monkeypatch.setenv(paths.RECORD_ENV, "0")  # a full run that does not re-render the committed notebooks
    records.save_metrics(tmp_path / "out", {"a": 1}, {"QUICK": False}, notebook="03_multitask_model")
    assert not (tmp_path / "results").exists()
    monkeypatch.setenv(paths.RECORD_ENV, "1")  # run_notebooks --inplace (make refresh)
    records.save_metrics(tmp_path / "out", {"a": 1}, {"QUICK": False}, notebook="03_multitask_model")
    assert json.loads((tmp_path / "results" / "03.json").read_text())["metrics"] == {"a": 1}


def test_relative_paths():
    assert paths.relative(paths.REPO_ROOT / "notebooks" / "x.png") == "notebooks/x.png"
    assert paths.relative("/somewhere/else") == "/somewhere/else"


def test_measurements_are_replayed_and_labelled(tmp_path, monkeypatch):
    import pandas as pd

    monkeypatch.setenv("MTL_CACHE_DIR", str(tmp_path))
    calls = []

    def measure():
        calls.append(1)
        return {"speed": pd.DataFrame({"variant": ["fp32", "int8"], "x": [1.0, 1.6]}).set_index("variant"),
                "plain": pd.DataFrame({"a": [1, 2]})}

    first = records.timings("demo", {"model": "abc", "sentences": 10}, measure)
    again = records.timings("demo", {"model": "abc", "sentences": 10}, measure)
    assert len(calls) == 1 and not first.replayed and again.replayed and "replayed" in again.note()
    pd.testing.assert_frame_equal(first.tables["speed"], again.tables["speed"])
    pd.testing.assert_frame_equal(first.tables["plain"], again.tables["plain"])
    records.timings("demo", {"model": "other", "sentences": 10}, measure)
    records.timings("demo", {"model": "abc", "sentences": 10}, measure, force=True)
    assert len(calls) == 3
