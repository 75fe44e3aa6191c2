"""Human-judged similarity (the STS benchmark as shipped, its scores, the paired bootstrap comparison) and
the in-batch similarity figure of notebook 02."""
import numpy as np
import pandas as pd
import pytest
from notebook_checks import check_comparison
from scipy import stats

from mtl_utils.evaluation import sts
from series import corpora, experiments, load_headline_passages
from series.comparisons import compare_correlations


def test_the_benchmark_has_its_published_splits():
    sizes = {split: len(corpora.load_sts(split)) for split in corpora.STS_SPLITS}
    assert sizes == {"train": 5749, "dev": 1500, "test": 1379}  # the published split (Cer et al., 2017)
    test = corpora.load_sts("test")
    assert test["score"].between(0, 5).all() and test["score"].nunique() > 50
    assert (test["sentence1"].str.len() > 0).all() and (test["sentence2"].str.len() > 0).all()
    test.loc[0, "score"] = -1.0  # the caller's copy: the next call reads the file's values again
    assert corpora.load_sts("test")["score"].min() >= 0
    with pytest.raises(ValueError, match="unknown STS split 'validation'"):
        corpora.load_sts("validation")
    quick = corpora.load_sts("test", quick=True)  # what notebooks 02 and 04 score in quick mode
    assert len(quick) == corpora.QUICK_STS_PAIRS and quick.equals(corpora.load_sts("test", quick=True))
    assert set(quick["sentence1"]) <= set(test["sentence1"])


class _Lookup:
    """An encoder stand-in for pair_cosines' bookkeeping: each text's vector comes from a table."""

    def __init__(self, vectors: dict[str, np.ndarray]):
        self.vectors, self.calls = vectors, []

    def encode(self, texts, **_):
        self.calls.append(list(texts))
        return np.stack([self.vectors[t] for t in texts])


def test_pair_cosines_encodes_each_sentence_once_and_keeps_the_pairs_in_order():
    encoder = _Lookup({"a": np.array([1.0, 0.0]), "b": np.array([0.0, 2.0]), "c": np.array([3.0, 3.0])})
    cosines = sts.pair_cosines(encoder, ["a", "a", "c"], ["b", "c", "a"])
    assert np.allclose(cosines, [0.0, 2 ** -0.5, 2 ** -0.5])
    assert encoder.calls == [["a", "c", "b"]]
    with pytest.raises(ValueError, match="each pair needs two sentences: 2 first and 1 second"):
        sts.pair_cosines(encoder, ["a", "b"], ["c"])


def test_sts_scores_are_scipys_correlations():
    rng = np.random.default_rng(0)
    ratings = rng.uniform(0, 5, 200)
    cosines = ratings / 5 + rng.normal(0, 0.2, 200)
    got = sts.sts_scores(cosines, ratings)
    assert got["spearman"] == pytest.approx(stats.spearmanr(cosines, ratings).statistic, abs=1e-12)
    assert got["pearson"] == pytest.approx(stats.pearsonr(cosines, ratings).statistic, abs=1e-12)
    with pytest.raises(ValueError, match="one cosine per rated pair"):
        sts.sts_scores(cosines[:5], ratings)


def _seeds(ratings, noise, n_seeds, rng):
    return [ratings + rng.normal(0, noise, ratings.size) for _ in range(n_seeds)]


def test_compare_correlations_finds_a_real_gap_and_no_gap_between_equals():
    rng = np.random.default_rng(1)
    ratings = rng.uniform(0, 5, 400)
    good, poor = _seeds(ratings, 1.0, 3, rng), _seeds(ratings, 4.0, 3, rng)
    row = compare_correlations("good", good, "poor", poor, ratings, n_boot=500)
    check_comparison(row)
    assert row["detected"] and row["difference"] > 0 and row["seeds"] == 3
    assert row["A accuracy"] == pytest.approx(np.mean([stats.spearmanr(c, ratings).statistic for c in good]))
    same = compare_correlations("good", good, "good again", good, ratings, n_boot=200)
    check_comparison(same)
    assert same["difference"] == 0 and not same["detected"]
    with pytest.raises(ValueError, match="one cosine per rated pair"):
        compare_correlations("good", good, "poor", poor, ratings[:10])


def test_seeds_that_disagree_widen_the_interval():
    """The seeds are resampled too: encoders whose quality moves from seed to seed get a wider interval than
    the same pairs scored by one seed's encoder repeated."""
    rng = np.random.default_rng(2)
    ratings = rng.uniform(0, 5, 300)
    steady = _seeds(ratings, 2.0, 1, rng) * 3
    varied = [ratings + rng.normal(0, noise, ratings.size) for noise in (0.5, 2.0, 6.0)]
    reference = _seeds(ratings, 2.0, 1, rng) * 3
    width = {name: (r["high"] - r["low"]) for name, r in
             {"steady": compare_correlations("x", steady, "ref", reference, ratings, n_boot=400),
              "varied": compare_correlations("x", varied, "ref", reference, ratings, n_boot=400)}.items()}
    assert width["varied"] > 1.5 * width["steady"], width


def test_sts_versus_pairs_the_arms_by_seed():
    rng = np.random.default_rng(3)
    ratings = rng.uniform(0, 5, 120)
    pairs = pd.DataFrame({"score": ratings})
    good, poor = _seeds(ratings, 1.0, 2, rng), _seeds(ratings, 4.0, 2, rng)
    cosines = {("good", 0): good[0], ("good", 1): good[1], ("poor", 0): poor[0], ("poor", 1): poor[1],
               ("one seed", 0): poor[0]}
    table = experiments.sts_versus(cosines, pairs, [("good", "poor")])
    assert list(table["A"]) == ["good"] and table["seeds"].iloc[0] == 2 and table["detected"].iloc[0]
    with pytest.raises(ValueError, match="'good' and 'one seed' need cosines for the same seeds"):
        experiments.sts_versus(cosines, pairs, [("good", "one seed")])


def test_the_in_batch_figure_counts_the_rows_that_pick_their_own_passage():
    from series import plots

    rng = np.random.default_rng(4)
    noise = rng.uniform(0, 0.5, (6, 6))
    figure = plots.in_batch_matrix({"shipped": noise, "trained": noise + np.eye(6)})
    titles = [ax.get_title() for ax in figure.axes[:2]]
    assert titles[1].endswith("6 of 6 rows pick their own passage"), titles
    with pytest.raises(ValueError, match=r"need square \[B, B\] matrices"):
        plots.in_batch_matrix({"x": np.zeros((2, 3))})


def test_held_out_pairs_spread_over_the_evaluation_set():
    bench = load_headline_passages(quick=True)
    batch = experiments.held_out_pairs(bench, 5)
    assert len(batch) == 5 and batch["headline"].is_unique and batch["headline"].iloc[0] == bench.evaluation.queries[0]
    with pytest.raises(ValueError, match="n must be between 2"):
        experiments.held_out_pairs(bench, 1)
