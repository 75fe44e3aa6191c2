"""Mined hard negatives: the margin keeps look-alikes out, the loss equals sentence-transformers' on
(anchor, positive, negative) columns, a batch's duplicate is masked, the trainer trains and is cached."""
import numpy as np
import pytest
import torch

from mtl_utils.training import hard_negatives as hn
from mtl_utils.training import sentence_training as st
from series import pair_variants
from tests.conftest import SENTENCES


def test_mining_takes_the_closest_passage_below_the_margin():
    queries = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    passages = np.array([[1.0, 0.1], [0.0, 1.0], [1.0, 0.9]])
    negatives, set_aside = hn.mine_hard_negatives(queries, passages, relative_margin=0.05)
    # query 0: passage 2 scores 0.74 (below 0.95 × 0.995): taken; query 2's positive is 0.999, passage 0
    # scores 0.77: taken; query 1: passage 2 (0.67) beats passage 0 (0.10)
    assert negatives.tolist() == [2, 2, 0]
    assert set_aside.empty
    negatives, set_aside = hn.mine_hard_negatives(queries, np.array([[1.0, 0.1], [0.0, 1.0], [1.0, 0.1]]))
    assert negatives[0] == 1 and negatives[2] == 1          # passage 2 equals passage 0: set aside for query 0
    assert {(0, 2), (2, 0)} <= set(zip(set_aside["query"], set_aside["passage"]))
    assert (negatives != np.arange(3)).all()


def test_the_margin_is_relative_to_the_positive_and_a_query_may_get_none():
    # positive cosine 0.5: a relative margin of 0.2 sets the ceiling at 0.4 (an absolute one would say 0.3)
    queries = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    angle = np.arccos([0.5, 0.35, 0.45])
    passages = np.stack([[np.cos(a), np.sin(a)] for a in angle])   # cosines with query 0: 0.5, 0.35, 0.45
    negatives, set_aside = hn.mine_hard_negatives(queries, passages, relative_margin=0.2)
    assert negatives[0] == 1                    # 0.45 > 0.4 is set aside; 0.35 is below the ceiling
    assert set_aside.loc[set_aside["query"] == 0, "passage"].tolist() == [2]
    assert list(set_aside.columns) == ["query", "passage", "cosine", "positive cosine"]
    assert set_aside["cosine"].is_monotonic_decreasing
    # a negative positive cosine (-0.5): the ceiling is pos - m·|pos| = -0.6 (pos·(1 - m) would be -0.4)
    angle = np.arccos([-0.5, -0.55, -0.7])
    passages = np.stack([[np.cos(a), np.sin(a)] for a in angle])
    negatives, set_aside = hn.mine_hard_negatives(queries, passages, relative_margin=0.2)
    assert negatives[0] == 2 and set_aside.loc[set_aside["query"] == 0, "passage"].tolist() == [1]
    # every other passage above the ceiling: no negative (-1), never the own passage or a set-aside one
    negatives, _ = hn.mine_hard_negatives(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[0.0, 1.0], [1.0, 0.0]]))
    assert negatives.tolist() == [-1, -1]


def test_duplicates_mark_the_own_passage_and_missing_negatives():
    negatives = np.array([3, 0, -1, 1])
    idx = np.array([0, 1, 3])           # each pair's negative is another's passage in the batch
    expected = np.zeros((3, 3), dtype=bool)
    expected[0, 1] = True               # row 0 (pair 0) must not see pair 1's negative, its own passage
    expected[1, 2] = True               # row 1 (pair 1) must not see pair 3's negative, its own passage
    expected[2, 0] = True               # row 2 (pair 3) must not see pair 0's negative, its own passage
    np.testing.assert_array_equal(hn.duplicates(idx, negatives), expected)
    assert hn.duplicates(np.array([2, 0]), negatives)[:, 0].all()   # pair 2 has none: masked for every row


@pytest.mark.parametrize("queries, passages, margin, message", [
    (np.ones((3, 2)), np.ones((3, 3)), 0.05, "one width"),
    (np.ones((3, 2)), np.ones((2, 2)), 0.05, "one positive passage per query"),
    (np.ones((1, 2)), np.ones((1, 2)), 0.05, "at least two"),
    (np.ones((3, 2)), np.ones((3, 2)), 1.0, "relative_margin must be in")])
def test_mining_refuses_bad_input(queries, passages, margin, message):
    with pytest.raises(ValueError, match=message):
        hn.mine_hard_negatives(queries, passages, margin)


def test_loss_equals_multiple_negatives_ranking_loss_with_negatives():
    from sentence_transformers.sentence_transformer import losses

    torch.manual_seed(0)
    q, p, n = torch.randn(8, 16), torch.randn(8, 16), torch.randn(8, 16)
    theirs = losses.MultipleNegativesRankingLoss(model=None, scale=20.0).compute_loss_from_embeddings([q, p, n], None)
    assert float(hn.hard_negatives_loss(q, p, n, 20.0)) == pytest.approx(float(theirs), rel=1e-6)


def test_duplicate_mask_drops_the_own_positive_only():
    torch.manual_seed(1)
    q, p = torch.randn(3, 4), torch.randn(3, 4)
    n = torch.stack([p[1], torch.randn(4), torch.randn(4)])   # row 0's negative is row 1's positive
    duplicate = torch.zeros(3, 3, dtype=torch.bool)
    duplicate[1, 0] = True
    masked = hn.hard_negatives_loss(q, p, n, duplicate=duplicate)
    by_hand = torch.nn.functional.normalize
    scores = 20 * by_hand(q, dim=-1) @ torch.cat([by_hand(p, dim=-1), by_hand(n, dim=-1)]).T
    scores[1, 3] = float("-inf")
    expected = torch.nn.functional.cross_entropy(scores, torch.arange(3))
    assert float(masked) == pytest.approx(float(expected), rel=1e-6)
    assert float(masked) != pytest.approx(float(hn.hard_negatives_loss(q, p, n)), rel=1e-3)


def test_trainer_trains_is_cached_and_refuses_bad_negatives(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MTL_CACHE_DIR", str(tmp_path))
    pairs = st.PairData(SENTENCES, SENTENCES[::-1])
    config = st.PairConfig(model=tiny_model_dir, batch_size=3, lr=1e-3)
    negatives = [1, 2, 3, 4, 5, 0]
    first = pair_variants.variant_or_load(config, pairs, "hard negatives", negatives, progress_bar=False)
    assert len(first.losses) == 2 and all(np.isfinite(first.losses)) and not first.cached
    assert pair_variants.variant_or_load(config, pairs, "hard negatives", negatives, progress_bar=False).cached
    assert pair_variants.variant_key(config, pairs, "hard negatives", negatives) != pair_variants.variant_key(
        config, pairs, "hard negatives", [2, 3, 4, 5, 0, 1])
    plain = st.PairTrainer(config, pairs, progress_bar=False).fit()
    assert first.losses[0] != pytest.approx(plain.losses[0], rel=1e-4)    # the negatives are in the loss
    missing = pair_variants.variant_or_load(config, pairs, "hard negatives", [-1] * 6, progress_bar=False)
    assert missing.losses[0] == pytest.approx(plain.losses[0], rel=1e-5)  # none mined: in-batch alone
    for bad, message in (([1, 2], "one passage index"), ([1, 2, 3, 4, 5, 6], "one passage index"),
                         ([1.0, 2, 3, 4, 5, 0], "one passage index"), ([-2, 2, 3, 4, 5, 0], "one passage index"),
                         ([0, 2, 3, 4, 5, 1], "pair 0 has its own passage")):
        with pytest.raises(ValueError, match=message):
            hn.HardNegativeTrainer(config, pairs, bad)
