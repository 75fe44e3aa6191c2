"""The cross-encoder: its scores equal a plain forward of its model (the pair read as one input, mean-pooled,
through the head), the labelled pairs, length-grouped batches, re-ranking, the trainer and its cache entry."""
import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from mtl_utils.training import cross_encoder as ce
from mtl_utils.training.sentence_training import PairData
from series import pair_variants
from series.experiments import sentence
from tests.conftest import SENTENCES


def test_scores_equal_a_plain_forward_of_its_model(tiny_model_dir):
    torch.manual_seed(0)
    model = ce.CrossEncoder(tiny_model_dir, max_length=32)
    queries, passages = SENTENCES[:4], SENTENCES[2:] + SENTENCES[:0]
    scores = model.score(queries, passages, batch_size=3)      # two batches, length-sorted
    tokenizer, plain = AutoTokenizer.from_pretrained(tiny_model_dir), AutoModel.from_pretrained(tiny_model_dir)
    expected = []
    for q, p in zip(queries, passages):                         # one pair at a time: no padding at all
        batch = tokenizer(q, p, truncation=True, max_length=32, return_tensors="pt")
        assert batch["token_type_ids"].max() == 1               # the passage is segment 1
        with torch.no_grad():
            hidden = plain(**batch).last_hidden_state[0]
            expected.append(float(model.head(hidden.mean(0))))
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="one passage per query"):
        model.score(queries, passages[:2])
    with pytest.raises(TypeError, match=r"sentences\[1\]"):
        model.score(["a", None], ["b", "c"])


def test_labelled_pairs_give_a_positive_a_mined_and_a_random_negative():
    queries, passages = [f"q{i}" for i in range(5)], [f"p{i}" for i in range(5)]
    pairs = ce.labelled_pairs(queries, passages, [1, 2, -1, 0, 3])
    assert len(pairs) == 5 * 3 - 1 and pairs.labels.sum() == 5            # query 2 has no mined negative
    for q, p, label in zip(pairs.a, pairs.b, pairs.labels):
        assert (p[1:] == q[1:]) == (label == 1)                          # only the own passage is labelled 1
    mined = {(q, p) for q, p, y in zip(pairs.a, pairs.b, pairs.labels) if y == 0}
    assert {("q0", "p1"), ("q1", "p2"), ("q3", "p0"), ("q4", "p3")} <= mined
    assert len(mined) == 9                       # each random negative is neither the own nor the mined one
    again = ce.labelled_pairs(queries, passages, [1, 2, -1, 0, 3])
    assert again.digest() == pairs.digest()      # the draw is fixed by its seed
    for bad, message in (([1, 2], "one passage and one negative"), ([1.0, 2, -1, 0, 3], "an integer"),
                         ([0, 2, -1, 0, 3], r"negatives\[0\]=0"), ([1, 2, 5, 0, 3], r"negatives\[2\]=5"),
                         ([1, 2, -2, 0, 3], r"negatives\[2\]=-2")):
        with pytest.raises(ValueError, match=message):
            ce.labelled_pairs(queries, passages, bad)


def test_length_grouped_batches_cover_every_pair_once_with_little_padding():
    lengths = np.random.default_rng(0).integers(10, 80, 1000)
    batches = ce.length_grouped_batches(lengths, 32, np.random.default_rng(1))
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(1000))
    padded = sum(len(b) * lengths[b].max() for b in batches)
    shuffled = np.random.default_rng(1).permutation(1000)
    random_padded = sum(32 * lengths[shuffled[i:i + 32]].max() for i in range(0, 1000, 32))
    assert padded < 0.8 * random_padded


def test_rerank_puts_the_top_k_first_in_the_cross_encoders_order():
    first = np.array([[0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.4]])
    top = ce.top_k(first, 2)
    np.testing.assert_array_equal(top, [[0, 1], [3, 2]])
    out = ce.rerank(first, top, np.array([[-5.0, 3.0], [1.0, 2.0]]))
    np.testing.assert_array_equal(np.argsort(-out, axis=1), [[1, 0, 2, 3], [2, 3, 1, 0]])
    with pytest.raises(ValueError, match="one cross-encoder score per candidate"):
        ce.rerank(first, top, np.zeros((2, 3)))


@pytest.mark.parametrize("change, message", [
    ({"epochs": 0}, "epochs must be a positive integer"), ({"batch_size": 2.5}, "batch_size"),
    ({"head_lr": 0}, "head_lr must be positive"), ({"max_grad_norm": -1.0}, "max_grad_norm")])
def test_config_refuses_bad_settings(change, message):
    with pytest.raises(ValueError, match=message):
        ce.CrossConfig(**change)


def test_trainer_trains_and_is_cached(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MTL_CACHE_DIR", str(tmp_path))
    pairs = ce.labelled_pairs(SENTENCES, SENTENCES[::-1], [1, 2, 3, 4, 5, 0])
    config = ce.CrossConfig(model=tiny_model_dir, epochs=2, batch_size=4, max_grad_norm=None, max_length=32)
    first = pair_variants.cross_or_load(config, pairs, progress_bar=False)
    assert len(first.losses) == 2 * 5 and all(np.isfinite(first.losses)) and not first.cached
    again = pair_variants.cross_or_load(config, pairs, progress_bar=False)
    assert again.cached and again.losses == first.losses
    np.testing.assert_array_equal(again.encoder.score(SENTENCES, SENTENCES), first.encoder.score(SENTENCES, SENTENCES))
    with pytest.raises(ValueError, match="labelled pairs"):
        ce.CrossEncoderTrainer(config, PairData(SENTENCES, SENTENCES))


def test_reranked_scores_each_candidate_once_and_matches_reranking_by_hand(tiny_model_dir):
    from mtl_utils.data.retrieval import RetrievalSet
    from mtl_utils.evaluation.retrieval import rank_metrics

    data = RetrievalSet(queries=tuple(SENTENCES[:3]), passages=tuple(SENTENCES), query_ids=("a", "b", "c"),
                        corpus_ids=tuple("uvwxyz"), relevant={q: frozenset(p) for q, p in zip("abc", "uvw")})
    model = ce.CrossEncoder(tiny_model_dir, max_length=32)
    calls, score = [], model.score
    model.score = lambda q, p: calls.append(len(q)) or score(q, p)
    rng = np.random.default_rng(0)
    first, second = rng.random((3, 6)), rng.random((3, 6))
    second[:, :2] = first[:, :2] + 5                    # both stages rank passages u and v first: shared candidates
    out = sentence.reranked({0: model}, {"A": first, "B": {0: second}}, data, k=3)
    shared = sum(len(set(a) & set(b)) for a, b in zip(ce.top_k(first, 3), ce.top_k(second, 3)))
    assert calls == [2 * 3 * 3 - shared]                # one call, each (query, passage) once
    for name, scores in (("A", first), ("B", second)):
        top = ce.top_k(scores, 3, data.corpus_ids)
        by_hand = np.array([[score([data.queries[q]], [data.passages[p]])[0] for p in row]
                            for q, row in enumerate(top)])
        expected = rank_metrics(ce.rerank(scores, top, by_hand), data)
        assert np.allclose(out[name][0].to_numpy(), expected.to_numpy(), atol=1e-6), name
    with pytest.raises(ValueError, match="seeds"):
        sentence.reranked({0: model, 1: model}, {"B": {0: second}}, data, k=3)


def test_top_k_breaks_ties_by_passage_id_so_reranking_keeps_recall_at_k():
    from mtl_utils.data.retrieval import RetrievalSet
    from mtl_utils.evaluation.retrieval import rank_metrics

    ids = ("p3", "p1", "p2", "p0")                      # positions and ids in different orders
    data = RetrievalSet(queries=("q",), passages=("w", "x", "y", "z"), query_ids=("a",), corpus_ids=ids,
                        relevant={"a": frozenset({"p1"})})
    first = np.array([[1.0, 0.5, 0.5, 0.5]])            # three passages tied for second place
    top = ce.top_k(first, 2, ids)
    np.testing.assert_array_equal(top, [[0, 3]])        # p3, then p0: the lowest id among the tied
    assert rank_metrics(first, data)["recall@10"].iloc[0] == 1
    after = rank_metrics(ce.rerank(first, top, np.array([[0.0, 1.0]])), data)
    before = rank_metrics(first, data)
    assert (before["rank"] <= 2).equals(after["rank"] <= 2)      # the same passages in the top 2
    for bad in (0, 5, 2.0):
        with pytest.raises(ValueError, match="1 <= k <= passages"):
            ce.top_k(first, bad)
