"""Freezing by intent, the parameter table, and the frozen-layer cache (exact equivalence with the full model)."""
import numpy as np
import pytest
import torch
from conftest import SENTENCES, TASKS

from mtl_utils import anatomy, freezing, frozen_cache
from mtl_utils.modeling.model import MultiTaskModel
from mtl_utils.training.frozen_cache import (
    build_cache,
    cached_forward,
    cached_logits,
    check_equivalence,
    clear_shared,
    shared_cache,
)
from series.experiments import intents_table


@pytest.fixture()
def tiny(tiny_model_dir):
    torch.manual_seed(0)
    return MultiTaskModel(TASKS, model=tiny_model_dir)


def trainable_names(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_freeze_by_intent(tiny):
    assert anatomy.num_layers(tiny) == 2
    freezing.freeze_bottom(tiny, 1)
    names = trainable_names(tiny)
    assert not any(x.startswith("encoder.transformer.embeddings.") or "encoder.layer.0." in x for x in names)
    assert any("encoder.layer.1." in x for x in names) and freezing.frozen_bottom(tiny) == 1
    freezing.unfreeze_all(tiny)
    freezing.freeze(tiny, "backbone")
    assert trainable_names(tiny) == {n for n, _ in tiny.heads.named_parameters(prefix="heads")}
    assert freezing.frozen_bottom(tiny) == 2 and freezing.encoder_frozen(tiny)
    freezing.unfreeze_all(tiny)
    freezing.freeze(tiny, "head", task="topic")
    assert not any(x.startswith("heads.topic.") for x in trainable_names(tiny))
    assert any(x.startswith("heads.sentiment.") for x in trainable_names(tiny))
    freezing.freeze(tiny, "all")
    assert anatomy.trainable_parameters(tiny) == 0


def test_bad_freeze_requests_name_the_problem(tiny):
    with pytest.raises(ValueError, match=r"k \(frozen encoder layers\) must be an integer in 0..2 for this model, got 7"):
        freezing.freeze_bottom(tiny, 7)
    with pytest.raises(ValueError, match="needs k"):
        freezing.freeze(tiny, "bottom")
    with pytest.raises(KeyError, match=r"unknown task 'ner'"):
        freezing.freeze(tiny, "head", task="ner")
    with pytest.raises(ValueError, match=r"unknown part 'decoder' to freeze; choose one of \('all', 'backbone'"):
        freezing.freeze(tiny, "decoder")


def test_parameter_table_and_intents(tiny):
    freezing.freeze_bottom(tiny, 1)
    table = anatomy.parameter_table(tiny).set_index("part")
    total = sum(p.numel() for p in tiny.parameters())
    assert table.loc["total", "parameters"] == total == table.drop("total")["parameters"].sum()
    assert table.loc["total", "trainable"] == anatomy.trainable_parameters(tiny)
    assert table.loc["embeddings", "state"] == "frozen" and table.loc["encoder layer 2", "state"] == "trainable"
    assert table.loc["head: topic", "parameters"] == 32 * 5 + 5
    freezing.unfreeze_all(tiny)
    intents = intents_table(tiny, "topic")
    assert intents.loc["total", "nothing frozen"] == total and intents.loc["total", "whole model"] == 0
    assert intents.loc["total", "backbone"] == 32 * 5 + 5 + 32 * 2 + 2
    assert anatomy.trainable_parameters(tiny) == total  # the table leaves the model unfrozen


def test_one_finder_for_layers(tiny):
    stack = anatomy.layer_stack(tiny)
    assert anatomy.module_name(tiny, stack) == "encoder.transformer.encoder.layer"
    units = anatomy.depth_units(tiny)
    assert [u.name for u in units] == ["head: topic", "head: sentiment", "layer 2", "layer 1", "embeddings"]
    assert sum(len(u.params) for u in units) == len(list(tiny.parameters()))
    with pytest.raises(ValueError, match="no encoder layer list"):
        anatomy.layer_stack(torch.nn.Linear(2, 2))


def test_unfreezing_schedule():
    assert freezing.unfreezing_schedule(6, 4) == [6, 5, 4, 3]
    assert freezing.unfreezing_schedule(6, 8, final_frozen=4) == [6, 5, 4, 4, 4, 4, 4, 4]
    with pytest.raises(ValueError, match="final_frozen must be in 0..6"):
        freezing.unfreezing_schedule(6, 3, final_frozen=9)


def _logits_and_grads(model, fn, seed=123):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    out = fn()
    sum(torch.nn.functional.cross_entropy(v, torch.arange(len(v)) % v.shape[1]) for v in out.values()).backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    return {t: v.detach().clone() for t, v in out.items()}, grads


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_cache_gives_same_outputs_and_gradients(tiny, k, mode):
    """The full model with the bottom k layers frozen (in eval mode) against the layers above k on the cached
    token vectors: logits and every trainable gradient agree. In "train" mode the layers above k keep dropout;
    the same seed gives both paths the same masks."""
    freezing.freeze_bottom(tiny, k)
    cache = build_cache(tiny, SENTENCES, k, level="tokens")
    assert cache.level == "tokens" and len(cache) == len(SENTENCES)
    tiny.train() if mode == "train" else tiny.eval()
    freezing.set_frozen_eval(tiny)
    inputs = tiny.encoder.tokenize(SENTENCES)
    full_out, full_grads = _logits_and_grads(tiny, lambda: tiny(**inputs))
    batch = cache.batch(np.arange(len(SENTENCES)))
    assert torch.equal(batch["attention_mask"], inputs["attention_mask"])
    cache_out, cache_grads = _logits_and_grads(tiny, lambda: cached_forward(tiny, batch, k))
    assert set(full_grads) == set(cache_grads) and len(full_grads) > 0
    errors = [(full_out[t] - cache_out[t]).abs().max().item() for t in full_out]
    errors += [(full_grads[n] - cache_grads[n]).abs().max().item() for n in full_grads]
    assert max(errors) < 1e-5
    assert max(g.abs().max().item() for g in full_grads.values()) > 1e-4


def test_equivalence_on_the_real_model():
    """The check notebook 04 shows, on all-MiniLM-L6-v2 and real sentences."""
    real = MultiTaskModel(TASKS, max_length=64)
    for k in (1, 4):
        result = check_equivalence(real, SENTENCES, k)
        assert result["logits max abs diff"] < 1e-5 and result["gradients max abs diff"] < 1e-5
        assert result["largest gradient"] > 1e-4
    assert anatomy.trainable_parameters(real) == sum(p.numel() for p in real.parameters()) and not real.training


def test_cache_mismatch_is_detectable(tiny):
    """The equivalence check can fail: a cache of the wrong layer gives different logits."""
    freezing.freeze_bottom(tiny, 2)
    tiny.eval()
    wrong = build_cache(tiny, SENTENCES, 1, level="tokens")
    with torch.no_grad():
        full = tiny(**tiny.encoder.tokenize(SENTENCES))["topic"]
        shifted = cached_forward(tiny, wrong.batch(range(len(SENTENCES))), 2)["topic"]
    assert (full - shifted).abs().max().item() > 1e-4


def test_heads_only_cache_of_sentence_vectors(tiny):
    freezing.freeze_backbone(tiny)
    cache = build_cache(tiny, SENTENCES, 2)
    assert cache.level == "vectors" and cache.vectors.shape == (len(SENTENCES), 32)
    direct, cached = tiny.logits(SENTENCES), cached_logits(tiny, cache)
    for task in direct:
        assert np.abs(direct[task] - cached[task]).max() < 1e-5


def test_shared_cache_is_reused_and_extended(tiny, monkeypatch):
    clear_shared()
    freezing.freeze_bottom(tiny, 1)
    weights = tiny.encoder.fingerprint()
    first = shared_cache(tiny, SENTENCES, 1, weights)
    again = shared_cache(tiny, SENTENCES, 1, weights)
    assert again.seconds == 0.0 and again.states is first.states
    assert len(shared_cache(tiny, SENTENCES[:3], 1, weights)) == 3
    freezing.freeze_backbone(tiny)
    built = []
    monkeypatch.setattr(frozen_cache, "build_cache", lambda *a, **k: built.append(a) or build_cache(*a, **k))
    extended = shared_cache(tiny, SENTENCES, 2, weights, level="tokens")
    assert not built, "a token cache at k = 1 exists: k = 2 must extend it (run one layer), not rebuild it"
    monkeypatch.undo()
    direct = build_cache(tiny, SENTENCES, 2, level="tokens")
    assert max((a - b).abs().max().item() for a, b in zip(extended.states, direct.states)) < 1e-5
    vectors = shared_cache(tiny, SENTENCES, 2, weights)
    assert vectors.level == "vectors"
    assert (vectors.vectors - build_cache(tiny, SENTENCES, 2).vectors).abs().max().item() < 1e-5
    other = shared_cache(tiny, SENTENCES, 1, "other weights", level="tokens")
    assert other.seconds > 0  # other frozen weights: never served from the first weights' cache
    clear_shared()
