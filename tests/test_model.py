"""The multi-task model: forward, predict's inputs, and checkpoints that are self-contained and verified."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TASKS

from mtl_utils.modeling.model import CheckpointError, MultiTaskModel


@pytest.fixture()
def model(tiny_model_dir):
    torch.manual_seed(0)
    return MultiTaskModel(TASKS, model=tiny_model_dir, max_length=32)


def test_forward_all_tasks_or_some(model):
    batch = model.encoder.tokenize(["Shares rose.", "A dull, lifeless film."])
    out = model(**batch)
    assert set(out) == {"topic", "sentiment"} and out["topic"].shape == (2, 5) and out["sentiment"].shape == (2, 2)
    assert list(model(**batch, tasks="sentiment")) == ["sentiment"]
    with pytest.raises(KeyError, match=r"unknown task 'ner'; this model has \['topic', 'sentiment'\]"):
        model(**batch, tasks=["ner"])
    with pytest.raises(ValueError, match="no tasks asked for"):
        model.logits(["x"], tasks=[])


def test_third_task_is_one_more_entry(tiny_model_dir):
    three = MultiTaskModel({**TASKS, "genre": ["news", "opinion", "entertainment"]}, model=tiny_model_dir)
    assert three.logits(["hello"])["genre"].shape == (1, 3)
    for bad in ({"bad": ["only"]}, {"bad": "ab"}, {}):
        with pytest.raises(ValueError):
            MultiTaskModel(bad, model=tiny_model_dir)


def test_predict_table_keeps_a_series_index(model):
    texts = pd.Series(["Shares rose.", "A dull, lifeless film."], index=["a", "b"])
    table = model.predict(texts)
    assert list(table.index) == ["a", "b"] and list(table["sentence"]) == list(texts)
    assert set(table["topic"]) <= set(TASKS["topic"])
    assert np.allclose(table[[f"topic: p({label})" for label in TASKS["topic"]]].sum(axis=1), 1, atol=0.01)
    assert list(model.predict("one text").index) == [0]
    with pytest.raises(TypeError, match="sentences is None"):
        model.predict(None)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        model.predict(["x"], batch_size=1.5)


def test_save_load_roundtrip_is_exact_self_contained_and_in_eval_mode(model, tmp_path):
    model.train()
    folder = model.save(tmp_path / "ckpt")
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors", "backbone"}
    assert (folder / "backbone" / "config.json").is_file() and (folder / "backbone" / "tokenizer.json").is_file()
    loaded = MultiTaskModel.load(folder, tasks=TASKS)
    assert not loaded.training and not loaded.heads["topic"].training
    batch = loaded.encoder.tokenize(["Shares rose.", "A dull film."])
    with torch.no_grad():
        assert torch.equal(loaded(**batch)["topic"], loaded(**batch)["topic"])  # eval mode: no dropout
    texts = ["Shares rose.", "A dull, lifeless film.", "The minister resigned on Tuesday."]
    for task, logits in model.logits(texts).items():
        assert np.array_equal(logits, loaded.logits(texts)[task])
    with pytest.raises(ValueError, match="was trained for tasks/labels"):
        MultiTaskModel.load(folder, tasks={"topic": TASKS["topic"], "sentiment": ["pos", "neg"]})


def test_checkpoint_loads_without_the_original_model_folder(model, tmp_path, tiny_model_dir):
    folder = model.save(tmp_path / "ckpt")
    config = json.loads((folder / "config.json").read_text())
    assert config["encoder"]["model"] == tiny_model_dir
    moved = tmp_path / "elsewhere"
    folder.rename(moved)
    loaded = MultiTaskModel.load(moved)
    assert loaded.encoder.model_name == tiny_model_dir and loaded.encoder.max_length == 32


@pytest.mark.parametrize("damage, message", [
    (lambda f: (f / "config.json").unlink(), "config.json is missing"),
    (lambda f: (f / "config.json").write_text("{not json"), "is not valid JSON"),
    (lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:1000]),
     "model.safetensors does not match its checksum"),
    (lambda f: _flip_a_byte(f / "model.safetensors"), "model.safetensors does not match its checksum"),
    (lambda f: (f / "backbone" / "tokenizer.json").unlink(), "tokenizer.json is missing"),
    (lambda f: _edit_config(f, lambda c: c["tasks"]["sentiment"].reverse()), "was changed after the weights"),
    (lambda f: _edit_config(f, lambda c: c["encoder"].update(pooling="max")), "was changed after the weights"),
    (lambda f: _edit_config(f, lambda c: c.update(format_version=1)), "checkpoint format 1, expected 3"),
])
def test_damaged_checkpoints_name_the_file(model, tmp_path, damage, message):
    folder = model.save(tmp_path / "ckpt")
    damage(folder)
    with pytest.raises(CheckpointError, match=message):
        MultiTaskModel.load(folder)


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))


def _edit_config(folder, edit):
    config = json.loads((folder / "config.json").read_text())
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))


def test_a_failed_save_keeps_the_previous_checkpoint(model, tmp_path, monkeypatch):
    folder = model.save(tmp_path / "ckpt")
    before = (folder / "model.safetensors").read_bytes()
    with torch.no_grad():
        model.heads["topic"].net[-1].bias.add_(1.0)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(model.encoder.tokenizer, "save_pretrained", broken)
    with pytest.raises(OSError, match="disk full"):
        model.save(folder)
    assert (folder / "model.safetensors").read_bytes() == before
    MultiTaskModel.load(folder)  # still a valid checkpoint
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left behind


def test_save_refuses_to_replace_a_folder_that_is_not_a_checkpoint(model, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="is not a MultiTaskModel checkpoint"):
        model.save(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
