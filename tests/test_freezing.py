"""Freezing by intent, the parameter report, and the frozen-layer cache (equivalence with the full model)."""
import dataclasses

import numpy as np
import pytest
import torch

from mtl_utils import data as data_mod
from mtl_utils import freezing
from mtl_utils.frozen_cache import build_cache, cached_forward, cached_logits, clear_shared, shared_cache
from mtl_utils.model import MultiTaskModel
from mtl_utils.training import TrainConfig, run_key, train, train_or_load

TASKS = {"topic": data_mod.TOPIC_LABELS, "sentiment": data_mod.SENTIMENT_LABELS}
SENTENCES = [
    "Shares in the carmaker rose sharply after the results.",
    "A dull, lifeless film.",
    "The minister resigned on Tuesday amid a row over funding.",
    "Warm, funny and beautifully acted, it is a small gem of a movie.",
    "United won 2-0.",
    "The band's new album tops the charts for a third week.",
]


@pytest.fixture(scope="module")
def tiny():
    return data_mod.load_tasks(sizes={"train": 48, "validation": 16, "test": 16})


def fresh(encoder=None, seed=0):
    torch.manual_seed(seed)
    return MultiTaskModel(TASKS, encoder=encoder) if encoder else MultiTaskModel(TASKS)


def trainable_names(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_freeze_by_intent():
    model = fresh()
    n = freezing.num_layers(model)
    assert n == 6
    freezing.freeze_bottom(model, 3)
    names = trainable_names(model)
    assert not any(x.startswith("encoder.transformer.embeddings.") for x in names)
    assert not any(f"encoder.layer.{i}." in x for x in names for i in range(3))
    assert all(any(f"encoder.layer.{i}." in x for x in names) for i in range(3, n))
    assert freezing.frozen_bottom(model) == 3
    freezing.unfreeze_all(model)
    freezing.freeze(model, "backbone")
    assert trainable_names(model) == {n for n, _ in model.heads.named_parameters(prefix="heads")}
    assert freezing.frozen_bottom(model) == n and freezing.encoder_frozen(model)
    freezing.unfreeze_all(model)
    freezing.freeze(model, "head", task="topic")
    assert not any(x.startswith("heads.topic.") for x in trainable_names(model))
    assert any(x.startswith("heads.sentiment.") for x in trainable_names(model))
    freezing.freeze(model, "all")
    assert freezing.trainable_parameters(model) == 0
    freezing.unfreeze_all(model)
    freezing.freeze_bottom(model, 0)
    assert freezing.trainable_parameters(model) == sum(p.numel() for p in model.parameters())


def test_bad_freeze_requests_name_the_problem():
    model = fresh()
    with pytest.raises(ValueError, match=r"k \(frozen encoder layers\) must be an integer in 0..6 for this model, got 7"):
        freezing.freeze_bottom(model, 7)
    with pytest.raises(ValueError, match="got -1"):
        freezing.freeze(model, "bottom", k=-1)
    with pytest.raises(ValueError, match="needs k"):
        freezing.freeze(model, "bottom")
    with pytest.raises(KeyError, match=r"unknown task 'ner'"):
        freezing.freeze(model, "head", task="ner")
    with pytest.raises(ValueError, match=r"unknown part 'decoder' to freeze; choose one of \('all', 'backbone'"):
        freezing.freeze(model, "decoder")
    with pytest.raises(ValueError, match="frozen_layers must be a non-negative integer"):
        TrainConfig(frozen_layers=-2)
    with pytest.raises(ValueError, match="watch only tasks that are not in tasks"):
        TrainConfig(tasks=("topic",), watch_tasks=("topic",))


def test_parameter_report():
    model = fresh()
    freezing.unfreeze_all(model)
    freezing.freeze_bottom(model, 2)
    table = freezing.parameter_report(model).set_index("part")
    total = sum(p.numel() for p in model.parameters())
    assert table.loc["total", "parameters"] == total
    assert table.loc["total", "trainable"] == freezing.trainable_parameters(model)
    assert table.drop("total")["parameters"].sum() == total
    assert table.loc["embeddings", "state"] == "frozen" and table.loc["encoder layer 2", "trainable"] == 0
    assert table.loc["encoder layer 3", "state"] == "trainable"
    assert table.loc["head: topic", "parameters"] == 384 * 5 + 5
    freezing.unfreeze_all(model)


def test_unfreezing_schedule():
    assert freezing.unfreezing_schedule(6, 4) == [6, 5, 4, 3]
    assert freezing.unfreezing_schedule(6, 8, final_frozen=4) == [6, 5, 4, 4, 4, 4, 4, 4]
    with pytest.raises(ValueError, match="final_frozen must be in 0..6"):
        freezing.unfreezing_schedule(6, 3, final_frozen=9)


def _logits_and_grads(model, fn, seed=123):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    out = fn()
    loss = sum(torch.nn.functional.cross_entropy(v, torch.arange(len(v)) % v.shape[1]) for v in out.values())
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    return {t: v.detach().clone() for t, v in out.items()}, grads


@pytest.mark.parametrize("k", [3, 6])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_cache_gives_same_outputs_and_gradients(k, mode):
    """(a) the full model with the bottom k layers frozen (and in eval mode) against (b) the layers above k
    run on the cached token vectors: logits and every trainable parameter's gradient agree within 1e-5.
    In "train" mode the layers above k keep dropout; the same seed gives both paths the same masks."""
    model = fresh()
    freezing.freeze_bottom(model, k)
    cache = build_cache(model, SENTENCES, k, level="tokens")
    assert cache.level == "tokens" and len(cache) == len(SENTENCES)
    model.train() if mode == "train" else model.eval()
    freezing.set_frozen_eval(model)
    inputs = model.encoder.tokenize(SENTENCES)
    full_out, full_grads = _logits_and_grads(model, lambda: model(**inputs))
    idx = np.arange(len(SENTENCES))
    batch = cache.batch(idx)
    assert torch.equal(batch["attention_mask"], inputs["attention_mask"])
    cache_out, cache_grads = _logits_and_grads(model, lambda: cached_forward(model, batch, k))
    assert set(full_grads) == set(cache_grads) and len(full_grads) > 0
    if k < 6:
        assert any(".layer.5." in n for n in full_grads) and not any(".layer.0." in n for n in full_grads)
    errors = [(full_out[t] - cache_out[t]).abs().max().item() for t in full_out]
    errors += [(full_grads[n] - cache_grads[n]).abs().max().item() for n in full_grads]
    assert max(errors) < 1e-5
    assert max(g.abs().max().item() for g in full_grads.values()) > 1e-4  # the gradients are not all ~0


def test_heads_only_cache_of_sentence_vectors():
    model = fresh()
    freezing.unfreeze_all(model)
    freezing.freeze_backbone(model)
    cache = build_cache(model, SENTENCES, freezing.num_layers(model))
    assert cache.level == "vectors" and cache.vectors.shape == (len(SENTENCES), 384)
    model.eval()
    direct = model.logits(SENTENCES)
    cached = cached_logits(model, cache)
    for task in direct:
        assert np.abs(direct[task] - cached[task]).max() < 1e-5
    freezing.unfreeze_all(model)


def test_cache_mismatch_is_detectable():
    """The equivalence check can fail: a cache of the wrong layer gives different logits."""
    model = fresh()
    freezing.freeze_bottom(model, 2)
    model.eval()
    wrong = build_cache(model, SENTENCES, 1, level="tokens")
    inputs = model.encoder.tokenize(SENTENCES)
    with torch.no_grad():
        full = model(**inputs)["topic"]
        shifted = cached_forward(model, wrong.batch(range(len(SENTENCES))), 2)["topic"]
    assert (full - shifted).abs().max().item() > 1e-3


def test_shared_cache_is_reused():
    clear_shared()
    model = fresh()
    freezing.freeze_bottom(model, 4)
    first = shared_cache(model, SENTENCES, 4, "pretrained:test")
    again = shared_cache(model, SENTENCES, 4, "pretrained:test")
    assert again.seconds == 0.0 and again.states is first.states
    other = shared_cache(model, SENTENCES[:3], 4, "pretrained:test")
    assert len(other) == 3
    # a higher layer is built from the cached lower one, running only the missing layers
    freezing.freeze_backbone(model)
    extended = shared_cache(model, SENTENCES, 5, "pretrained:test", level="tokens")
    direct = build_cache(model, SENTENCES, 5, level="tokens")
    assert max((a - b).abs().max().item() for a, b in zip(extended.states, direct.states)) < 1e-5
    vectors = shared_cache(model, SENTENCES, 6, "pretrained:test")
    assert vectors.level == "vectors"
    assert (vectors.vectors - build_cache(model, SENTENCES, 6).vectors).abs().max().item() < 1e-5
    clear_shared()


def test_training_with_and_without_cache_agree(tiny):
    """The same run (k=4 frozen) trained on the cache and on the full model: same losses, same test scores."""
    base = TrainConfig(epochs=2, steps_per_epoch=3, max_length=24, batch_size=8, seed=3, frozen_layers=4)
    with_cache = train(base, tiny, progress=False)
    without = train(dataclasses.replace(base, frozen_cache=False), tiny, progress=False)
    assert np.abs(with_cache.steps["loss"].to_numpy() - without.steps["loss"].to_numpy()).max() < 1e-4
    assert np.allclose(with_cache.test["accuracy"], without.test["accuracy"])
    assert set(with_cache.history["frozen layers"]) == {4}
    model = with_cache.model
    pretrained = MultiTaskModel(TASKS)
    for name, p in pretrained.encoder.transformer.named_parameters():  # the frozen bottom did not move
        if name.startswith("embeddings.") or any(f"layer.{i}." in name for i in range(4)):
            assert torch.equal(p, dict(model.encoder.transformer.named_parameters())[name])


def test_frozen_layers_out_of_range_in_train(tiny):
    with pytest.raises(ValueError, match="frozen_layers=9, but this model has 6 encoder layers"):
        train(TrainConfig(frozen_layers=9, epochs=1, steps_per_epoch=1, max_length=16), tiny, progress=False)


def test_gradual_unfreezing_and_frozen_head_continuation(tiny, tmp_path):
    config = TrainConfig(epochs=3, steps_per_epoch=2, max_length=24, batch_size=8, seed=1, gradual_unfreezing=True)
    first = train_or_load(config, tiny, progress=False, cache=tmp_path)
    assert list(first.history.drop_duplicates("epoch")["frozen layers"]) == [6, 5, 4]
    no_freeze = TrainConfig(epochs=2, steps_per_epoch=3, max_length=24, batch_size=8, seed=5)
    assert "frozen_layers" not in no_freeze.key_dict()  # keys of runs without freezing are unchanged
    assert run_key(config, tiny) != run_key(dataclasses.replace(config, gradual_unfreezing=False), tiny)
    # continue on sentiment only with the topic head and the backbone frozen: topic predictions cannot move
    cont = TrainConfig(tasks=("sentiment",), watch_tasks=("topic",), frozen_heads=("topic",), frozen_layers=6,
                       init_from=run_key(config, tiny), epochs=2, steps_per_epoch=2, max_length=24, batch_size=8)
    result = train_or_load(cont, tiny, progress=False, cache=tmp_path)
    topic = result.history[result.history["task"] == "topic"]
    assert list(topic["epoch"]) == [0, 1, 2] and topic["val accuracy"].nunique() == 1
    assert (result.test.set_index("task").loc["topic", "accuracy"]
            == pytest.approx(first.test.set_index("task").loc["topic", "accuracy"]))
    texts = list(tiny["topic"]["test"]["text"][:4])
    assert np.abs(result.model.logits(texts)["topic"] - first.model.logits(texts)["topic"]).max() < 1e-5
    with pytest.raises(FileNotFoundError, match="no finished run"):
        train_or_load(dataclasses.replace(cont, init_from="0" * 16), tiny, progress=False, cache=tmp_path)
