"""The multi-task model and its training loop, on the real model and small real data."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from mtl_utils import data as data_mod
from mtl_utils import optim
from mtl_utils.data import Task
from mtl_utils.model import MultiTaskModel
from mtl_utils.training import (BatchStream, TaskSampler, TrainConfig, check_datasets, run_key, train,
                                train_or_load)

TASKS = {"topic": data_mod.TOPIC_LABELS, "sentiment": data_mod.SENTIMENT_LABELS}


@pytest.fixture(scope="module")
def tiny():
    """Real data, tiny splits: enough for a few steps."""
    return data_mod.load_tasks(sizes={"train": 48, "validation": 16, "test": 16})


@pytest.fixture(scope="module")
def model(encoder):
    torch.manual_seed(0)
    return MultiTaskModel(TASKS, encoder=encoder)


def test_forward_all_tasks_or_some(model):
    batch = model.encoder.tokenize(["Shares rose.", "A dull, lifeless film."])
    out = model(**batch)
    assert set(out) == {"topic", "sentiment"}
    assert out["topic"].shape == (2, 5) and out["sentiment"].shape == (2, 2)
    assert list(model(**batch, tasks="sentiment")) == ["sentiment"]
    with pytest.raises(KeyError, match=r"unknown task 'ner'; this model has \['topic', 'sentiment'\]"):
        model(**batch, tasks=["ner"])


def test_third_task_is_one_more_entry(encoder):
    three = MultiTaskModel({**TASKS, "formality": ["formal", "informal", "neutral"]}, encoder=encoder)
    assert three.logits(["hello"])["formality"].shape == (1, 3)
    with pytest.raises(ValueError, match="two or more distinct"):
        MultiTaskModel({"bad": ["only"]}, encoder=encoder)


def test_predict_table(model):
    table = model.predict(["Shares rose.", "A dull, lifeless film."])
    assert list(table["sentence"]) == ["Shares rose.", "A dull, lifeless film."]
    assert set(table["topic"]) <= set(TASKS["topic"]) and set(table["sentiment"]) <= set(TASKS["sentiment"])
    probs = table[[f"topic: p({label})" for label in TASKS["topic"]]].sum(axis=1)
    assert np.allclose(probs, 1, atol=0.01)


def test_parameter_summary(model):
    table = model.parameter_summary().set_index("part")
    assert table.loc["head: topic", "parameters"] == 384 * 5 + 5
    assert table.loc["total", "parameters"] == sum(p.numel() for p in model.parameters())


def test_save_load_roundtrip_predicts_identically(model, tmp_path):
    model.save(tmp_path / "ckpt")
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["tasks"]["sentiment"] == ["negative", "positive"]
    assert not list((tmp_path / "ckpt").glob("*.bin")) and not list((tmp_path / "ckpt").glob("*.pt"))
    loaded = MultiTaskModel.load(tmp_path / "ckpt", tasks=TASKS)
    texts = ["Shares rose.", "A dull, lifeless film.", "The minister resigned on Tuesday."]
    for task, logits in model.logits(texts).items():
        assert np.abs(logits - loaded.logits(texts)[task]).max() < 1e-6
    with pytest.raises(ValueError, match="was trained for tasks/labels"):
        MultiTaskModel.load(tmp_path / "ckpt", tasks={"topic": TASKS["topic"], "sentiment": ["pos", "neg"]})
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        MultiTaskModel.load(tmp_path)


def test_task_sampler_strategies():
    sizes = {"a": 900, "b": 100}
    prop = TaskSampler(sizes, "proportional").probabilities
    temp = TaskSampler(sizes, "temperature", temperature=2).probabilities
    assert prop["a"] == pytest.approx(0.9) and temp["a"] == pytest.approx(30 / 40)
    it = iter(TaskSampler(sizes, "uniform"))
    assert [next(it) for _ in range(4)] == ["a", "b", "a", "b"]
    draws = iter(TaskSampler(sizes, "proportional", rng=np.random.default_rng(1)))
    share = np.mean([next(draws) == "a" for _ in range(2000)])
    assert 0.87 < share < 0.93
    with pytest.raises(ValueError, match="unknown sampling"):
        TaskSampler(sizes, "random")


def test_batch_stream_covers_each_example_once_per_pass():
    texts = [f"t{i}" * (i % 7 + 1) for i in range(50)]
    stream = BatchStream(texts, list(range(50)), 8, np.random.default_rng(0), bucketing=True)
    seen = [label for _ in range(7) for label in next(stream)[1].tolist()]
    assert sorted(seen) == list(range(50))


def test_bad_inputs_fail_before_training(tiny):
    bad_topic = tiny["topic"]["train"].copy()
    bad_topic.loc[3, "label"] = 7
    data = {**tiny, "topic": Task("topic", tiny["topic"].labels, {**tiny["topic"].splits, "train": bad_topic})}
    with pytest.raises(ValueError, match=r"task 'topic', train row 3: label 7 is outside 0..4"):
        check_datasets(data, ["topic"])
    empty = Task("sentiment", tiny["sentiment"].labels, {**tiny["sentiment"].splits, "validation": bad_topic[:0]})
    with pytest.raises(ValueError, match="the validation split is empty"):
        check_datasets({"sentiment": empty}, ["sentiment"])
    with pytest.raises(ValueError, match="unknown sampling"):
        TrainConfig(sampling="random")
    with pytest.raises(ValueError, match="loss_weights name tasks"):
        TrainConfig(tasks=("topic",), loss_weights={"sentiment": 1.0})


def test_nan_loss_raises(tiny, encoder):
    broken = MultiTaskModel({"topic": TASKS["topic"]}, encoder=encoder)
    with torch.no_grad():
        broken.heads["topic"].net[-1].weight.fill_(float("nan"))
    config = TrainConfig(tasks=("topic",), epochs=1, steps_per_epoch=2, max_length=16, batch_size=4)
    with pytest.raises(FloatingPointError, match="the loss of task 'topic' is nan at epoch 1, step 0"):
        train(config, tiny, model=broken, progress=False)


def test_training_is_deterministic_and_cached(tiny, tmp_path):
    config = TrainConfig(epochs=2, steps_per_epoch=3, max_length=24, batch_size=8, seed=5)
    first = train_or_load(config, tiny, progress=False, cache=tmp_path)
    assert not first.cached and list(first.history["epoch"]) == [1, 1, 2, 2]
    again = train(config, tiny, progress=False)
    pd.testing.assert_frame_equal(first.test, again.test)
    assert np.allclose(first.history["train loss"], again.history["train loss"], atol=1e-6)
    loaded = train_or_load(config, tiny, progress=False, cache=tmp_path)
    assert loaded.cached and loaded.best_epoch == first.best_epoch
    assert len(first.steps) == 6 and list(first.steps["step"]) == [1, 2, 3, 4, 5, 6]
    pd.testing.assert_frame_equal(first.steps, loaded.steps)
    pd.testing.assert_frame_equal(first.test, loaded.test)
    texts = list(tiny["topic"]["test"]["text"][:5])
    assert np.abs(first.model.logits(texts)["topic"] - loaded.model.logits(texts)["topic"]).max() < 1e-5
    assert run_key(config, tiny) != run_key(TrainConfig(epochs=2, steps_per_epoch=3, max_length=24, batch_size=8,
                                                        seed=6), tiny)


def test_frozen_parameters_left_out_and_heads_rate():
    net = torch.nn.ModuleDict({"encoder": torch.nn.Linear(2, 2), "heads": torch.nn.Linear(2, 2)})
    net["encoder"].weight.requires_grad_(False)
    groups = optim.param_groups(net, lr=1e-4, weight_decay=0.01, head_lr=1e-3)
    names = {g["name"]: (g["lr"], g["weight_decay"], len(g["params"])) for g in groups}
    assert names == {"encoder (no decay)": (1e-4, 0.0, 1), "heads": (1e-3, 0.01, 1), "heads (no decay)": (1e-3, 0.0, 1)}
