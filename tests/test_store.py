"""The run store (series.store): one key, one publish, one verify, one policy for a damaged entry,
for every kind of cached result (trained runs, pair runs, pooled embeddings, replayed timings)."""
import os
import warnings

import numpy as np
import pandas as pd
import pytest

from mtl_utils.core import folders
from mtl_utils.modeling.encoder import SentenceEncoder
from mtl_utils.training import sentence_training as st
from mtl_utils.training.config import TrainConfig
from series import pair_runs, records, store
from series.pooling_probes import cached_poolings
from series.runs import run_key, train_or_load


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _write(files):
    def write(value, tmp):
        for name, text in files.items():
            (tmp / name).write_text(text)
    return write


def test_key_is_the_same_for_the_same_parts_in_any_order():
    assert store.key({"a": 1, "b": [2, 3]}) == store.key({"b": [2, 3], "a": 1})
    assert store.key({"a": 1}) != store.key({"a": 2})
    assert len(store.key({"a": 1})) == 16 and len(store.key({"a": 1}, 20)) == 20


def test_load_or_make_loads_a_finished_entry_and_never_a_damaged_one(tmp_path):
    folder, loaded, made = tmp_path / "kind" / "k", [], []

    def load(entry):
        loaded.append(entry)
        return (entry / "value.txt").read_text()

    def make():
        made.append(1)
        return "fresh"

    assert store.load_or_make(folder, load, make, lambda v, tmp: _write({"value.txt": v})(v, tmp), what="thing") \
        == ("fresh", False)
    assert store.load_or_make(folder, load, make, lambda v, tmp: None, what="thing") == ("fresh", True)
    (folder / "value.txt").write_text("edited")
    with pytest.warns(UserWarning) as caught:
        value, cached = store.load_or_make(folder, load, make, lambda v, tmp: _write({"value.txt": v})(v, tmp),
                                           what="thing")
    assert (value, cached) == ("fresh", False) and len(loaded) == 1 and len(made) == 2
    message = str(caught[0].message)
    assert message.startswith(f"the cached thing {folder} is damaged (value.txt does not match its checksum)")
    assert "\n" not in message
    assert sorted(p.name for p in folder.parent.iterdir()) == ["k"]  # nothing hidden left


@pytest.mark.parametrize("newer_finished", [True, False])
def test_a_swap_killed_between_its_renames_is_put_back(tmp_path, newer_finished):
    folder = tmp_path / "k"
    store.publish(folder, lambda tmp: _write({"v": "old"})(None, tmp))
    os.replace(folder, tmp_path / ".old-k-deadbeef")  # the first rename happened, the second did not
    store.publish(tmp_path / "scratch", lambda tmp: _write({"v": "new"})(None, tmp))
    os.replace(tmp_path / "scratch", tmp_path / ".tmp-k-cafebabe")
    if not newer_finished:
        (tmp_path / ".tmp-k-cafebabe" / store.MANIFEST).unlink()
    store.recover(folder, tidy_all=True)
    assert (folder / "v").read_text() == ("new" if newer_finished else "old")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k"]


# -- every kind of entry: damaged -> one-line warning, made again (never loaded), then served -----------

def _damaged_then_repaired(make_or_load, entry_file, what):
    first = make_or_load()
    _flip_a_byte(entry_file())
    with pytest.warns(UserWarning, match=f"the cached {what} .* is damaged") as caught:
        again = make_or_load()
    assert all("\n" not in str(w.message) for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        third = make_or_load()
    return first, again, third


def test_a_damaged_run_is_retrained(small_tasks, tiny_model_dir, tmp_path):
    config = TrainConfig(model=tiny_model_dir, examples=16, batch_size=8, max_length=32)
    first, again, third = _damaged_then_repaired(
        lambda: train_or_load(config, small_tasks, cache=tmp_path, progress_bar=False),
        lambda: tmp_path / "runs" / run_key(config, small_tasks) / "model" / "model.safetensors", "run")
    assert not first.cached and not again.cached and third.cached
    pd.testing.assert_frame_equal(first.test, again.test)


def test_a_damaged_pair_run_is_retrained(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MTL_CACHE_DIR", str(tmp_path))
    pairs = st.PairData(["a cat", "a dog", "the sun", "the moon"], ["a kitten", "a puppy", "a star", "a planet"])
    config = st.PairConfig(model=tiny_model_dir, batch_size=2, examples=4, lr=1e-3, max_length=16)
    first, again, third = _damaged_then_repaired(
        lambda: pair_runs.pairs_or_load(config, pairs, progress_bar=False),
        lambda: tmp_path / "pairs" / pair_runs.pair_key(config, pairs) / "encoder.safetensors", "pair run")
    assert not first.cached and not again.cached and third.cached
    assert again.losses == first.losses


def test_damaged_embeddings_are_computed_again(tiny_model_dir, tmp_path):
    encoder = SentenceEncoder(tiny_model_dir)
    texts = ["The market rallied.", "A dull, lifeless film."]
    first, again, third = _damaged_then_repaired(
        lambda: cached_poolings(encoder, texts, "demo", modes=["mean"], cache=tmp_path),
        lambda: next(tmp_path.glob("demo-*")) / "vectors.npz", "embeddings")
    assert not first.from_cache and not again.from_cache and third.from_cache
    assert np.array_equal(first["mean"], again["mean"])


def test_a_damaged_measurement_is_measured_again(tmp_path, monkeypatch):
    monkeypatch.setenv("MTL_CACHE_DIR", str(tmp_path))
    calls = []

    def measure():
        calls.append(1)
        return {"speed": pd.DataFrame({"variant": ["a", "b"], "seconds": [1.0, 2.0]}).set_index("variant")}

    first, again, third = _damaged_then_repaired(
        lambda: records.timings("demo", {"model": "m"}, measure),
        lambda: next((tmp_path / "measurements").glob("demo-*")) / "tables.json", "measurement")
    assert not first.replayed and not again.replayed and third.replayed and len(calls) == 2
    pd.testing.assert_frame_equal(first.tables["speed"], third.tables["speed"], check_dtype=False)


def test_a_reader_recovering_between_the_two_renames_does_not_break_the_writer(tmp_path, monkeypatch):
    """``load_or_make`` recovers without a lock: a reader may put the writer's finished copy in place while
    the writer is between its two renames. The writer's publish then finds its work done, not an error."""
    folder = tmp_path / "k"
    store.publish(folder, lambda tmp: _write({"v": "old"})(None, tmp))
    real = folders.publish_folder

    def racing(tmp, target, aside):
        os.replace(target, aside)        # the writer's first rename ...
        store.recover(target)            # ... a reader puts back the newest finished copy: the writer's ...
        real(tmp, target, aside)         # ... so the writer's second rename finds no tmp
    monkeypatch.setattr(folders, "publish_folder", racing)
    store.publish(folder, lambda tmp: _write({"v": "new"})(None, tmp))
    assert (folder / "v").read_text() == "new" and store.is_finished(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k"]


def test_a_cache_that_cannot_be_written_still_gives_the_value(tmp_path, monkeypatch):
    def refused(folder, write):
        raise PermissionError(13, "Permission denied", str(folder))
    monkeypatch.setattr(store, "publish", refused)
    with pytest.warns(UserWarning, match=r"cannot be written \(Permission denied\): the thing is not stored"):
        assert store.load_or_make(tmp_path / "k", lambda f: None, lambda: 7, lambda v, t: None, what="thing") \
            == (7, False)
