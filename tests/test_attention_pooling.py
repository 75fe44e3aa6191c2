"""Attention pooling (a learned query over frozen token vectors): mean pooling at q = 0, training, pairing."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mtl_utils import SentenceEncoder
from mtl_utils.evaluation.attention_probe import (
    AttentionPoolingProbe,
    TokenVectors,
    fit_probe,
    token_vectors,
    top_pieces,
)
from mtl_utils.modeling.pooling import mean_pool
from series.comparisons import compare_over_seeds
from series.corpora import load_tasks


@pytest.fixture(scope="module")
def small():
    return load_tasks(sizes={"train": 120, "validation": 60, "test": 80})["topic"]


@pytest.fixture(scope="module")
def vectors(tiny_model_dir, small):
    encoder = SentenceEncoder(tiny_model_dir)
    return encoder, {s: token_vectors(encoder, list(small[s]["text"]), batch_size=16)
                     for s in ("train", "validation", "test")}


def test_zero_query_is_exactly_mean_pooling(vectors):
    encoder, data = vectors
    test = data["test"]
    tokens, mask = test.batch(torch.arange(10))
    probe = AttentionPoolingProbe(encoder.hidden_size, 5, learn_query=False)
    weights = probe.weights(tokens, mask)
    assert torch.all(weights[~mask] == 0)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(10))
    pooled = (weights.unsqueeze(-1) * tokens).sum(dim=1)
    torch.testing.assert_close(pooled, mean_pool(tokens, mask.long()))


def test_token_vectors_match_the_transformer_and_select_keeps_rows(vectors, small):
    encoder, data = vectors
    texts = list(small["test"]["text"][:3])
    with torch.inference_mode():
        batch = encoder.tokenize(texts)
        expected = encoder.transformer(**batch).last_hidden_state
    got, mask = data["test"].batch(torch.arange(3))
    assert torch.equal(mask.long(), batch["attention_mask"][:, :mask.shape[1]])
    torch.testing.assert_close(got[mask], expected[batch["attention_mask"].bool()], atol=2e-3, rtol=2e-3)
    picked = data["test"].select([2, 0])
    assert len(picked) == 2 and picked.ids[0] == data["test"].ids[2]
    assert torch.equal(picked.lengths, data["test"].lengths[[2, 0]])
    with pytest.raises(ValueError, match="at least one row"):
        data["test"].select([])


def test_fit_probe_learns_pairs_and_keeps_the_control_at_mean(vectors, small):
    encoder, data = vectors
    y = {s: small[s]["label"].to_numpy() for s in ("train", "validation", "test")}
    args = [a for s in ("train", "validation", "test") for a in (data[s], y[s])]
    learned = fit_probe(*args, learn_query=True, seed=0, epochs=4)
    control = fit_probe(*args, learn_query=False, seed=0, epochs=4)
    assert torch.count_nonzero(control.model.query) == 0  # the control's query never moves
    assert torch.count_nonzero(learned.model.query) > 0
    assert len(learned.validation) == 4 and 1 <= learned.epoch <= 4
    assert learned.correct.shape == (len(y["test"]),)
    assert learned.accuracy == pytest.approx(learned.correct.mean())
    again = fit_probe(*args, learn_query=True, seed=0, epochs=4)
    assert np.array_equal(again.correct, learned.correct)  # seeded: reproducible
    row = compare_over_seeds("attention", [learned.correct, again.correct], "mean", [control.correct] * 2, "topic")
    assert row["seeds"] == 2 and row["A"] == "attention"
    table = top_pieces(learned.model, data["test"], [0, 1], encoder.tokenizer, k=3)
    assert len(table) == 2 and table["most weighted (weight)"].str.count(",").eq(2).all()


def test_fit_probe_refuses_mismatched_labels(vectors, small):
    _, data = vectors
    y = small["train"]["label"].to_numpy()
    with pytest.raises(ValueError, match="train: .* labels"):
        fit_probe(data["train"], y[:-1], data["validation"], small["validation"]["label"].to_numpy(),
                  data["test"], small["test"]["label"].to_numpy())


def _marked(n: int, rng: np.random.Generator, prototypes: torch.Tensor, length: int = 24) -> tuple:
    """Synthetic token vectors: token 0 of each text carries its class (a prototype) and a marker (dimension
    0), every other token is noise. Mean pooling dilutes the class 1 : ``length``; a query can find the marker."""
    y = rng.integers(0, len(prototypes), n)
    values = torch.from_numpy(rng.normal(0, 1, (n, length, prototypes.shape[1]))).float()
    values[:, :, 0] = 0.0
    values[:, 0] = prototypes[torch.from_numpy(y)]
    values[:, 0, 0] = 6.0
    return TokenVectors(values.half(), torch.full((n,), length), [[0] * length] * n), y


def test_the_learned_query_finds_the_token_that_carries_the_class():
    """What the probe is for: where one token decides the class, the learned query weighs it and beats the
    masked mean (its control) by a wide margin."""
    rng = np.random.default_rng(0)
    prototypes = torch.from_numpy(rng.normal(0, 1.0, (4, 16))).float()
    (train, ty), (val, vy), (test, sy) = (_marked(n, rng, prototypes) for n in (400, 100, 200))
    learned = fit_probe(train, ty, val, vy, test, sy, learn_query=True, seed=0, epochs=15, lr=1e-2)
    control = fit_probe(train, ty, val, vy, test, sy, learn_query=False, seed=0, epochs=15, lr=1e-2)
    marker_weight = learned.model.weights(*test.batch(torch.arange(len(test))))[:, 0].mean().item()
    assert marker_weight > 0.2, marker_weight  # the mean gives it 1/24 (0.04)
    assert learned.accuracy > control.accuracy + 0.2, (learned.accuracy, control.accuracy)


def test_an_encoder_can_pool_with_attention_and_train_it(tiny_model_dir, tmp_path):
    """``pooling="attention"`` starts as the mean, learns with the model, and its query is saved with it."""
    from conftest import TASKS

    from mtl_utils import MultiTaskModel

    texts = ["Shares rose sharply.", "A dull, lifeless film about nothing."]
    mean, attention = SentenceEncoder(tiny_model_dir), SentenceEncoder(tiny_model_dir, pooling="attention")
    torch.testing.assert_close(attention.encode(texts), mean.encode(texts))  # the query starts at zero
    model = MultiTaskModel(TASKS, encoder=attention)
    batch = model.encoder.tokenize(texts)
    model(**batch, tasks="topic")["topic"].sum().backward()
    assert model.encoder.attention.query.grad.abs().sum() > 0
    with torch.no_grad():
        model.encoder.attention.query.add_(1.0)
    loaded = MultiTaskModel.load(model.save(tmp_path / "ckpt"))
    assert loaded.encoder.pooling == "attention"
    assert torch.equal(loaded.encoder.attention.query, model.encoder.attention.query)
    with pytest.raises(ValueError, match="unknown pooling 'gated'"):
        SentenceEncoder(tiny_model_dir, pooling="gated")
