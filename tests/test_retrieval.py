"""The retrieval benchmark, its metrics (checked against sentence-transformers' InformationRetrievalEvaluator),
BM25 and the clustering score."""
import numpy as np
import pytest

from mtl_utils.data.retrieval import RetrievalSet
from mtl_utils.evaluation import retrieval
from series.headline_passages import load_headline_passages


def small_set(n_queries=6, n_passages=9, seed=0):
    rng = np.random.default_rng(seed)
    corpus_ids = [f"p{i:02d}" for i in rng.permutation(n_passages)]
    relevant = {f"q{i}": frozenset(rng.choice(corpus_ids, size=1 + i % 3, replace=False))
                for i in range(n_queries)}
    return RetrievalSet(tuple(relevant), tuple(f"query {i}" for i in range(n_queries)), tuple(corpus_ids),
                        tuple(f"passage {c}" for c in corpus_ids), relevant)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rank_metrics_equal_information_retrieval_evaluator(seed):
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    data = small_set(seed=seed)
    rng = np.random.default_rng(seed + 10)
    scores = rng.normal(size=(len(data.query_ids), len(data.corpus_ids)))
    scores[0, :3] = scores[0, 3]                       # ties: broken by ascending corpus id in both
    ours = retrieval.summary(retrieval.rank_metrics(scores, data, k=3))
    evaluator = InformationRetrievalEvaluator(
        dict(zip(data.query_ids, data.queries)), dict(zip(data.corpus_ids, data.passages)),
        {q: set(r) for q, r in data.relevant.items()}, mrr_at_k=[3], ndcg_at_k=[3],
        accuracy_at_k=[1, 3], precision_recall_at_k=[1, 3], write_csv=False)
    hits = [[{"corpus_id": c, "score": float(s)} for c, s in zip(data.corpus_ids, row)] for row in scores]
    theirs = evaluator.compute_metrics(hits)
    assert ours["recall@1"] == pytest.approx(theirs["recall@k"][1])
    assert ours["recall@3"] == pytest.approx(theirs["recall@k"][3])
    assert ours["MRR@3"] == pytest.approx(theirs["mrr@k"][3])
    assert ours["nDCG@3"] == pytest.approx(theirs["ndcg@k"][3])


def test_rank_metrics_on_a_hand_made_case():
    data = RetrievalSet(("a", "b"), ("x", "y"), ("1", "2", "3"), ("one", "two", "three"),
                        {"a": frozenset({"2"}), "b": frozenset({"1", "3"})})
    scores = np.array([[0.9, 0.5, 0.1], [0.2, 0.8, 0.1]])   # a: relevant at rank 2; b: ranks 2 and 3
    table = retrieval.rank_metrics(scores, data, k=10)
    assert table.loc["a", "MRR@10"] == 0.5 and table.loc["a", "recall@1"] == 0
    assert table.loc["b", "recall@10"] == 1.0 and table.loc["b", "rank"] == 2
    ideal = 1 + 1 / np.log2(3)
    assert table.loc["b", "nDCG@10"] == pytest.approx((1 / np.log2(3) + 1 / np.log2(4)) / ideal)


@pytest.mark.parametrize("build, message", [
    (lambda: RetrievalSet((), (), ("1",), ("one",), {}), "the query list is empty"),
    (lambda: RetrievalSet(("a",), ("x",), ("1", "1"), ("one", "uno"), {"a": frozenset({"1"})}),
     r"duplicate passage ids \['1'\]"),
    (lambda: RetrievalSet(("a", "b"), ("x", "y"), ("1",), ("one",), {"a": frozenset({"1"})}),
     r"queries \['b'\] have no relevant passage"),
    (lambda: RetrievalSet(("a",), ("x",), ("1",), ("one",), {"a": frozenset({"9"})}), r"\('a', '9'\)"),
])
def test_bad_retrieval_sets_are_named(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_headline_passage_benchmark_is_leak_free():
    bench = load_headline_passages(quick=True)
    from series.corpora import load_topic

    topic = load_topic()
    topic_texts = set().union(*(set(topic[s]["text"]) for s in ("train", "validation", "test")))
    assert not topic_texts & set(bench.train["passage"])          # passages lie beyond the lead sentences
    assert not set(bench.train["article"]) & set(bench.evaluation.corpus_ids)
    assert set(bench.evaluation.queries) <= set(topic["test"]["text"])   # queries: test headlines
    assert len(bench.evaluation.corpus_ids) > len(bench.evaluation)       # validation passages distract


def test_bm25_finds_the_passage_sharing_words():
    data = RetrievalSet(("a", "b"), ("chancellor budget tax", "striker goal final"), ("1", "2", "3"),
                        ("the chancellor's budget raised tax", "a late goal won the final for the striker",
                         "shares fell"), {"a": frozenset({"1"}), "b": frozenset({"2"})})
    table = retrieval.rank_metrics(retrieval.bm25_scores(data), data)
    assert table["recall@1"].tolist() == [1.0, 1.0]


def test_clustering_score():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 30)
    separated = np.eye(3)[labels] * 10 + rng.normal(size=(90, 3))
    assert retrieval.clustering_score(separated, labels) > 0.9
    assert retrieval.clustering_score(rng.normal(size=(90, 3)), labels) < 0.2
    with pytest.raises(ValueError, match="one label per vector"):
        retrieval.clustering_score(separated, labels[:5])
