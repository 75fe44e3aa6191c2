"""The Matryoshka loss against sentence-transformers' ``MatryoshkaLoss``, its refusals, its trainer's run and
its cache, and the prefix metrics against plain retrieval."""
import numpy as np
import pytest
import torch

from mtl_utils import SentenceEncoder, cosine_matrix
from mtl_utils.data.retrieval import RetrievalSet
from mtl_utils.evaluation import retrieval
from mtl_utils.training import matryoshka
from mtl_utils.training import sentence_training as st
from series import pair_variants
from tests.conftest import SENTENCES


def test_matryoshka_loss_equals_sentence_transformers(tiny_model_dir):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MatryoshkaLoss, MultipleNegativesRankingLoss

    model = SentenceTransformer(tiny_model_dir, device="cpu").eval()
    features = [model.tokenize(SENTENCES), model.tokenize(SENTENCES[::-1])]
    dims, weights = (32, 16, 8, 4), (1.0, 0.5, 2.0, 1.0)
    with torch.no_grad():
        theirs = MatryoshkaLoss(model, MultipleNegativesRankingLoss(model), list(dims), list(weights))(features, None)
        q, p = (model(dict(f))["sentence_embedding"] for f in features)
    ours = matryoshka.matryoshka_loss(q, p, dims, weights)
    assert float(ours) == pytest.approx(float(theirs), rel=1e-5)
    assert float(matryoshka.matryoshka_loss(q, p, (32,))) == pytest.approx(
        float(MultipleNegativesRankingLoss(model).compute_loss_from_embeddings([q, p], None)), rel=1e-6)


@pytest.mark.parametrize("dims, weights, message", [
    ((), None, "between 1 and"), ((0, 8), None, "between 1 and"), ((8, 64), None, "between 1 and"),
    ((8, 8), None, "differ"), ((16, 8), (1.0,), "one Matryoshka weight per dimension"),
    ((8.0,), None, "integers")])
def test_matryoshka_loss_refuses_bad_dims(dims, weights, message):
    q = torch.randn(4, 32)
    with pytest.raises(ValueError, match=message):
        matryoshka.matryoshka_loss(q, q, dims, weights)


def test_matryoshka_trainer_trains_and_is_cached(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MTL_CACHE_DIR", str(tmp_path))
    pairs = st.PairData(SENTENCES, SENTENCES[::-1])
    config = st.PairConfig(model=tiny_model_dir, batch_size=3, lr=1e-3)
    first = pair_variants.variant_or_load(config, pairs, "matryoshka", (32, 8), progress_bar=False)
    assert len(first.losses) == 2 and all(np.isfinite(first.losses)) and not first.cached
    again = pair_variants.variant_or_load(config, pairs, "matryoshka", (32, 8), progress_bar=False)
    assert again.cached and again.losses == first.losses
    for a, b in zip(first.encoder.state_dict().values(), again.encoder.state_dict().values()):
        torch.testing.assert_close(a, b)
    other = pair_variants.variant_key(config, pairs, "matryoshka", (32, 16))
    assert other != pair_variants.variant_key(config, pairs, "matryoshka", (32, 8))
    with pytest.raises(ValueError, match="variant must be one of"):
        pair_variants.variant_or_load(config, pairs, "triplets", (32,))
    with pytest.raises(ValueError, match="without GradCache"):
        matryoshka.MatryoshkaTrainer(config.replace(mini_batch=1), pairs)
    with pytest.raises(ValueError, match="between 1 and the vector's width 32"):
        matryoshka.MatryoshkaTrainer(config, pairs, (64, 8), progress_bar=False)
    with pytest.raises(ValueError, match="must be positive integers"):
        matryoshka.MatryoshkaTrainer(config, pairs, (32, 8.0), progress_bar=False)


def test_nested_dims_halve_from_the_width():
    assert matryoshka.nested_dims(384) == matryoshka.DIMS
    assert matryoshka.nested_dims(768) == (768, 512, 256, 128, 64, 32)
    assert matryoshka.nested_dims(256, smallest=64) == (256, 128, 64)


def test_full_prefix_equals_plain_retrieval(tiny_model_dir):
    encoder = SentenceEncoder(tiny_model_dir)
    ids = tuple(str(i) for i in range(len(SENTENCES)))
    data = RetrievalSet(ids, tuple(SENTENCES[::-1]), ids, tuple(SENTENCES), {i: frozenset([i]) for i in ids})
    per_dim = matryoshka.prefix_metrics(encoder, data, (32, 4))
    plain = retrieval.evaluate_encoder(encoder, data)
    np.testing.assert_allclose(per_dim[32].to_numpy(), plain.to_numpy())
    assert set(per_dim) == {32, 4}
    q, p = encoder.encode(list(data.queries)), encoder.encode(list(data.passages))   # the first 4, not the last
    first = retrieval.rank_metrics(cosine_matrix(q[:, :4], p[:, :4]), data)
    np.testing.assert_allclose(per_dim[4].to_numpy(), first.to_numpy())
