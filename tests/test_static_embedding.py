"""Static embeddings (notebook 06 § 5): the encoder is a mean of table rows, distillation keeps what it is given,
training lowers the in-batch loss, a saved model reads back the same, bad input is refused at the door."""
import numpy as np
import pytest
import torch
from conftest import SENTENCES
from transformers import AutoTokenizer

from mtl_utils import assets
from mtl_utils.modeling.encoder import SentenceEncoder
from mtl_utils.serving.static_embedding import StaticEncoder, distill, train_static


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(assets.bundled_model_dir())


@pytest.fixture(scope="module")
def tiny_encoder(tiny_model_dir):
    return SentenceEncoder(tiny_model_dir)


def test_a_sentence_is_the_mean_of_its_pieces_rows(tokenizer):
    table = torch.randn(len(tokenizer), 8, generator=torch.Generator().manual_seed(0))
    model = StaticEncoder(table, tokenizer)
    got = model.encode(SENTENCES)
    for text, vector in zip(SENTENCES, got):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        mean = table[ids].mean(0).numpy()
        np.testing.assert_allclose(vector, mean / np.linalg.norm(mean), rtol=1e-5, atol=1e-6)
    assert model.encode([""]).tolist() == [[0.0] * 8]  # no pieces: the zero vector, not NaN
    assert model.encode([]).shape == (0, 8) and model([]).shape == (0, 8)


def test_distill_keeps_only_the_pieces_given_and_refuses_bad_sizes(tiny_encoder):
    ids = sorted({i for text in SENTENCES for i in tiny_encoder.tokenizer(text, add_special_tokens=False)["input_ids"]})
    model = distill(tiny_encoder, dims=16, pieces=ids)
    table = model.bag.weight.detach()
    assert table.shape == (len(tiny_encoder.tokenizer), 16)
    others = torch.ones(len(table), dtype=torch.bool)
    others[ids] = False
    assert table[others].abs().sum() == 0 and (table[ids].norm(dim=1) > 0).all()
    with pytest.raises(ValueError, match="dims must be between 1 and the encoder's 32"):
        distill(tiny_encoder, dims=64)
    with pytest.raises(ValueError, match="pieces must be at least 16 ids"):
        distill(tiny_encoder, dims=16, pieces=ids[:3])


def test_distill_of_one_piece_is_the_transformer_on_that_piece_alone(tiny_encoder):
    """Before PCA and SIF: row = mean of the transformer's outputs on [CLS] piece [SEP] (checked through the
    PCA: distilling with every dimension kept gives rows that differ from the raw outputs by a centring and a
    rotation, so their pairwise distances match after undoing the SIF weights)."""
    tok = tiny_encoder.tokenizer
    ids = list(range(1000, 1040))
    model = distill(tiny_encoder, dims=32, pieces=ids, sif=1e9)  # sif huge: every weight ~1
    x = torch.tensor([[tok.cls_token_id, i, tok.sep_token_id] for i in ids])
    with torch.inference_mode():
        raw = tiny_encoder.transformer(input_ids=x, attention_mask=torch.ones_like(x)).last_hidden_state.mean(1)
    rows = model.bag.weight.detach()[ids]
    def distances(x):
        x = x.double()
        return (x[:, None, :] - x[None, :, :]).norm(dim=-1)

    torch.testing.assert_close(distances(rows), distances(raw), rtol=1e-4, atol=1e-4)


def test_training_lowers_the_in_batch_loss_and_checks_its_input(tokenizer):
    table = torch.randn(len(tokenizer), 16, generator=torch.Generator().manual_seed(0))
    model = StaticEncoder(table, tokenizer)
    queries = SENTENCES
    positives = [[s.upper(), s] for s in SENTENCES]
    losses = train_static(model, queries, positives, epochs=20, batch_size=6, lr=0.05)
    assert len(losses) == 20 and losses[-1] < 0.5 * losses[0]
    with pytest.raises(ValueError, match="every query needs at least one positive"):
        train_static(model, queries, positives[:-1], epochs=1)
    with pytest.raises(ValueError, match="every query needs at least one positive"):
        train_static(model, queries[:1], [[]], epochs=1)
    with pytest.raises(ValueError, match="batch_size must be between 2 and the 6 queries"):
        train_static(model, queries, positives, epochs=1, batch_size=7)
    with pytest.raises(ValueError, match="epochs must be a whole number of at least 1, not 0"):
        train_static(model, queries, positives, epochs=0)


def test_a_saved_model_reads_back_the_same(tmp_path, tokenizer):
    model = StaticEncoder(torch.randn(len(tokenizer), 8), tokenizer)
    back = StaticEncoder.load(model.save(tmp_path / "static"))
    np.testing.assert_array_equal(back.encode(SENTENCES), model.encode(SENTENCES))
    with pytest.raises(FileNotFoundError, match="holds no static model"):
        StaticEncoder.load(tmp_path)
