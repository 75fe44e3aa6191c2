"""Notebook 06 § 5's machinery: static runs are trained once and read back the same, the budget is the learning
curve's best epoch, every index is scored with the bytes it keeps, and the FLOP count is the textbook one."""
import numpy as np
import pandas as pd
import pytest
from conftest import SENTENCES
from transformers import BertConfig

from mtl_utils.data.retrieval import RetrievalSet
from mtl_utils.modeling.encoder import SentenceEncoder
from series import fast_search


@pytest.fixture
def corpus():
    ids = tuple(f"p{i}" for i in range(len(SENTENCES)))
    return RetrievalSet(ids, tuple(s.lower() for s in SENTENCES), ids, tuple(SENTENCES),
                        {i: frozenset([i]) for i in ids})


def test_static_runs_are_trained_once_and_read_back(tiny_model_dir, corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("MTL_CACHE_DIR", str(tmp_path))
    encoder = SentenceEncoder(tiny_model_dir)
    pieces = range(999, 1100)
    args = (encoder, list(corpus.queries), [[s] for s in SENTENCES], corpus, [0, 1])
    made = fast_search.static_runs(*args, quick=True, dims=16, pieces=pieces, batch_size=3)
    again = fast_search.static_runs(*args, quick=True, dims=16, pieces=pieces, batch_size=3)
    assert not made.cached and again.cached
    assert list(made.curve["epoch"]) == list(range(1, fast_search.QUICK_CURVE_EPOCHS + 1))
    assert made.epochs == int(made.curve.loc[made.curve["validation MRR@10"].idxmax(), "epoch"])
    for seed in (0, 1):
        np.testing.assert_array_equal(made.trained[seed].encode(SENTENCES), again.trained[seed].encode(SENTENCES))
    np.testing.assert_array_equal(made.distilled.encode(SENTENCES), again.distilled.encode(SENTENCES))
    pd.testing.assert_frame_equal(made.curve, again.curve, check_dtype=False)


def test_every_index_is_scored_with_the_bytes_it_keeps():
    rng = np.random.default_rng(0)
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    q, c = unit(rng.standard_normal((3, 384))), unit(rng.standard_normal((20, 384)))
    found = fast_search.index_scores(q, c, c, k=5)
    assert {n: b for n, (_, b) in found.items()} == {
        "fp32": 1536, "int8": 384, "binary": 48, "binary, top 5 rescored with int8": 48,
        "binary, top 5 rescored with fp32": 48, "fp32, first 256 dimensions": 1024,
        "fp32, first 128 dimensions": 512, "fp32, first 64 dimensions": 256}
    assert all(s.shape == (3, 20) for s, _ in found.values())


def test_flops_per_token_counts_projections_feed_forward_and_attention():
    config = BertConfig(hidden_size=384, intermediate_size=1536, num_hidden_layers=6)
    # four h x h projections and the h x 4h pair: 12 h^2 multiply-adds, times two, per layer (~21 MFLOP in all)
    assert fast_search.flops_per_token(config, tokens=0) == 2 * 6 * 12 * 384 ** 2
    assert fast_search.flops_per_token(config, tokens=16) - fast_search.flops_per_token(config, 0) == 2 * 6 * 2 * 16 * 384


def test_search_speed_times_every_index_on_its_own_bytes():
    table = fast_search.search_speed(dims=64, corpus=500, queries=4, k=10, repeats=1, truncations=(32,))
    assert list(table.index) == ["fp32", "int8", "binary", "binary, top 10 rescored with int8", "fp32, first 32 dimensions"]
    assert table["bytes per passage in memory"].tolist() == [256, 64, 8, 8, 128]
    assert (table["queries/s (median)"] > 0).all()
