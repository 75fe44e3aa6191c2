import json
import math
import warnings

import numpy as np
import pytest
import torch

from mtl_utils import SentenceEncoder, assets, pool, records, set_seed
from mtl_utils.encoder import padding_fraction


@pytest.fixture(scope="module")
def sentences(tasks):
    """40 real sentences of mixed length: short headlines, long snippets."""
    topic = tasks["topic"]["test"]["text"]
    sentiment = tasks["sentiment"]["test"]["text"]
    mixed = list(topic[:15]) + list(sentiment[:15])
    mixed += sorted(sentiment, key=len)[-5:] + sorted(topic, key=len)[:5]
    return mixed


def test_matches_sentence_transformers(encoder, sentences):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(assets.bundled_model_dir()), device="cpu")
    expected = reference.encode(sentences, normalize_embeddings=True, batch_size=8)
    ours = encoder.encode(sentences, batch_size=8)
    assert ours.shape == (len(sentences), 384)
    assert np.abs(ours - expected).max() < 1e-5


def test_padding_never_counts(encoder, sentences):
    short = "Stocks fell sharply on Monday."
    long_ones = sorted(sentences, key=len)[-5:]
    alone = encoder.encode(short)
    batched = encoder.encode([short] + long_ones, sort_by_length=False)[:1]
    assert np.abs(alone - batched).max() < 1e-5


def test_shapes_and_order(encoder, sentences):
    assert encoder.dim == 384 and encoder.max_length == 256
    assert encoder.encode("one sentence").shape == (1, 384)
    together = encoder.encode(sentences[:6], batch_size=4)
    one_by_one = np.vstack([encoder.encode(s) for s in sentences[:6]])
    assert np.abs(together - one_by_one).max() < 1e-5
    assert np.allclose(np.linalg.norm(together, axis=1), 1, atol=1e-5)
    as_tensor = encoder.encode(sentences[:2], convert_to_tensor=True)
    assert isinstance(as_tensor, torch.Tensor) and as_tensor.shape == (2, 384)


def test_empty_inputs(encoder):
    assert encoder.encode([]).shape == (0, 384)
    vector = encoder.encode("")
    assert vector.shape == (1, 384) and np.isfinite(vector).all()


@pytest.mark.parametrize("bad, message", [
    (None, "got NoneType"),
    (["fine", 3], r"sentences\[1\] is int"),
    (["fine", "also fine", None], r"sentences\[2\] is NoneType"),
    (42, "got int"),
])
def test_bad_input_names_index_and_type(encoder, bad, message):
    with pytest.raises(TypeError, match=message):
        encoder.encode(bad)


def test_truncation_warns_once(encoder):
    long_text = "word " * 600
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = encoder.encode([long_text, long_text, "short"])
    messages = [str(w.message) for w in caught if "truncated" in str(w.message)]
    assert len(messages) == 1 and "2 of 3" in messages[0]
    assert out.shape == (3, 384)


def test_encode_restores_training_mode(encoder):
    encoder.train()
    try:
        first = encoder.encode("dropout must be off")
        second = encoder.encode("dropout must be off")
        assert encoder.training
        assert np.array_equal(first, second)
    finally:
        encoder.eval()


def test_forward_is_differentiable(encoder):
    batch = encoder.tokenize(["a short one", "a somewhat longer sentence than the first"])
    assert batch["input_ids"].shape[0] == 2
    out = encoder(**batch)
    out.sum().backward()
    grad = encoder.transformer.embeddings.word_embeddings.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    encoder.zero_grad(set_to_none=True)


def test_projection_gives_requested_dim():
    set_seed(0)
    enc = SentenceEncoder(output_dim=256, max_length=32)
    assert enc.dim == 256 and enc.encode(["a", "b c"]).shape == (2, 256)
    assert enc.config() == {"model": "sentence-transformers/all-MiniLM-L6-v2", "pooling": "mean",
                            "normalize": False, "max_length": 32, "output_dim": 256}


def test_pooling_modes_ignore_padding():
    tokens = torch.tensor([[[1.0, 2.0], [3.0, -4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert torch.allclose(pool(tokens, mask, "mean"), torch.tensor([[2.0, -1.0]]))
    assert torch.allclose(pool(tokens, mask, "max"), torch.tensor([[3.0, 2.0]]))
    assert torch.allclose(pool(tokens, mask, "cls"), torch.tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="unknown pooling 'sum'"):
        pool(tokens, mask, "sum")
    with pytest.raises(ValueError, match="unknown pooling"):
        SentenceEncoder(pooling="sum")


def test_unreachable_model_error_names_bundled_default(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="bundled default 'sentence-transformers/all-MiniLM-L6-v2'"):
        SentenceEncoder("no-such-org/no-such-model-xyz")


def test_padding_fraction_sorted_is_lower(encoder, sentences):
    assert padding_fraction(encoder, sentences, sort=True) < padding_fraction(encoder, sentences, sort=False)


def test_set_seed_repeats():
    set_seed(3)
    a = (torch.rand(3), np.random.rand(3))
    set_seed(3)
    b = (torch.rand(3), np.random.rand(3))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_save_metrics_roundtrip_and_rejects_nan(tmp_path):
    path = records.save_metrics(tmp_path, {"acc": np.float32(0.5), "dims": (1, 2)}, {"QUICK": True})
    stored = json.loads(path.read_text())
    assert stored["metrics"] == {"acc": 0.5, "dims": [1, 2]} and stored["parameters"] == {"QUICK": True}
    with pytest.raises(ValueError):
        records.save_metrics(tmp_path / "nan", {"acc": math.nan})
    assert not (tmp_path / "nan" / "metrics.json").exists()


def test_new_encoder_is_in_eval_mode():
    enc = SentenceEncoder(max_length=16)
    assert not enc.training and not enc.transformer.training
    enc.encode("x")
    assert not enc.transformer.training
