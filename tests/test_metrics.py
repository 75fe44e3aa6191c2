"""The statistics module against the reference implementations (statsmodels, scipy) and known cases."""
import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.proportion import proportion_confint

from mtl_utils.evaluation import metrics
from series import statistics


@pytest.mark.parametrize("k, n", [(0, 10), (3, 10), (50, 100), (97, 100), (1200, 1232), (10, 10)])
def test_wilson_matches_statsmodels(k, n):
    lo, hi = statistics.wilson_interval(k, n)
    ref_lo, ref_hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    assert lo == pytest.approx(ref_lo, abs=1e-9) and hi == pytest.approx(ref_hi, abs=1e-9)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_wilson_rejects_bad_counts():
    with pytest.raises(ValueError, match="n must be at least 1"):
        statistics.wilson_interval(0, 0)
    with pytest.raises(ValueError, match="successes must be in 0..10"):
        statistics.wilson_interval(11, 10)


def _pairs(n_both, n_only_a, n_only_b, n_neither):
    a = np.array([1] * n_both + [1] * n_only_a + [0] * n_only_b + [0] * n_neither, dtype=bool)
    b = np.array([1] * n_both + [0] * n_only_a + [1] * n_only_b + [0] * n_neither, dtype=bool)
    return a, b


@pytest.mark.parametrize("only_a, only_b", [(10, 2), (5, 5), (0, 7), (30, 18), (1, 0)])
def test_mcnemar_matches_statsmodels_exact(only_a, only_b):
    a, b = _pairs(40, only_a, only_b, 13)
    ours = statistics.mcnemar(a, b)
    table = [[40, only_a], [only_b, 13]]
    assert (ours.only_a, ours.only_b) == (only_a, only_b)
    assert ours.p_value == pytest.approx(sm_mcnemar(table, exact=True).pvalue, rel=1e-9)


def test_mcnemar_without_discordant_pairs_and_bad_input():
    a = np.array([True, False, True])
    assert statistics.mcnemar(a, a).p_value == 1.0
    with pytest.raises(ValueError, match="same test set: 3 vs 2"):
        statistics.mcnemar(a, a[:2])


def test_paired_bootstrap_centres_on_the_difference_and_covers_it():
    rng = np.random.default_rng(1)
    a = rng.random(2000) < 0.82
    b = a.copy()
    flip = rng.choice(2000, 120, replace=False)
    b[flip] = ~b[flip]
    boot = statistics.paired_bootstrap(a, b, n_boot=2000, seed=0)
    assert boot["difference"] == pytest.approx(a.mean() - b.mean())
    assert boot["low"] < boot["difference"] < boot["high"]
    # the interval's half-width is close to the normal approximation for paired proportions
    d = a.astype(float) - b.astype(float)
    half = 1.96 * d.std(ddof=1) / math.sqrt(len(d))
    assert (boot["high"] - boot["low"]) / 2 == pytest.approx(half, rel=0.15)
    assert statistics.paired_bootstrap(a, b, seed=3) == statistics.paired_bootstrap(a, b, seed=3)


def test_seed_difference_matches_scipy_paired_t():
    a, b = [0.81, 0.83, 0.80, 0.82], [0.80, 0.81, 0.79, 0.80]
    diff = statistics.seed_difference(a, b)
    ref = stats.ttest_rel(a, b)
    assert diff.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    ci = ref.confidence_interval(0.95)
    assert diff.low == pytest.approx(ci.low) and diff.high == pytest.approx(ci.high)
    assert diff.mean == pytest.approx(0.015) and diff.detected and diff.n == 4
    assert diff.per_seed == pytest.approx((0.01, 0.02, 0.01, 0.02))


def test_seed_difference_without_effect_and_with_one_seed():
    same = statistics.seed_difference([0.8, 0.7, 0.9], [0.81, 0.69, 0.9])
    assert not same.detected and same.low < 0 < same.high and same.mde > 0
    one = statistics.seed_difference([0.8], [0.7])
    assert one.n == 1 and math.isnan(one.low) and not one.detected
    with pytest.raises(ValueError, match="one score per seed"):
        statistics.seed_difference([0.8, 0.7], [0.8])


def test_mde_paired_t_matches_power_analysis():
    """At the minimum detectable effect a paired t test has 80% power (noncentral t, statsmodels)."""
    from statsmodels.stats.power import TTestPower

    sd, n = 0.01, 5
    mde = statistics.mde_paired_t(sd, n)
    power = TTestPower().power(effect_size=mde / sd, nobs=n, alpha=0.05, alternative="two-sided")
    assert power == pytest.approx(0.8, abs=0.06)  # the formula is the usual approximation of the exact power
    assert statistics.mde_paired_t(sd, 20) < mde and math.isnan(statistics.mde_paired_t(sd, 1))


def test_mde_paired_proportions_by_simulation():
    """Simulate paired right/wrong vectors whose true difference is the reported detectable effect: McNemar
    (alpha 0.05) should find it about 80% of the time."""
    rng = np.random.default_rng(0)
    n, discordant = 2500, 0.1
    base_a, base_b = _pairs(2000, 125, 125, 250)  # 10% discordant, no difference
    mde = statistics.mde_paired_proportions(base_a, base_b)
    hits = 0
    for _ in range(300):
        d = rng.random(n) < discordant
        a_wins = rng.random(n) < 0.5 + mde / (2 * discordant)
        a = np.where(d, a_wins, True)
        b = np.where(d, ~a_wins, True)
        hits += statistics.mcnemar(a, b).p_value < 0.05
    assert 0.7 < hits / 300 < 0.9


def test_scores_and_majority():
    assert metrics.scores([0, 1, 1, 2], [0, 1, 0, 2]) == pytest.approx({"accuracy": 0.75, "macro_f1": (1 + 2 / 3 + 2 / 3) / 3})
    # a class never predicted still counts in the macro average when num_labels is given
    assert metrics.scores([0, 0, 1], [0, 0, 0], num_labels=3)["macro_f1"] == pytest.approx((0.8 + 0 + 0) / 3)
    base = metrics.majority_scores([0, 0, 1], [0, 0, 0, 1])
    assert base["accuracy"] == 0.75 and base["macro_f1"] == pytest.approx((2 * 0.75 / 1.75) / 2)
    with pytest.raises(ValueError, match="3 true labels but 2 predictions"):
        metrics.scores([0, 1, 1], [0, 1])
    out = metrics.classification_scores([0, 1, 1], np.array([[2.0, 1.0], [0.0, 1.0], [3.0, 0.0]]), 2)
    assert out["accuracy"] == pytest.approx(2 / 3) and out["correct"].tolist() == [True, True, False]
    assert out["confusion"].tolist() == [[1, 0], [1, 1]]
    with pytest.raises(ValueError, match=r"logits must be \[n, 3\]"):
        metrics.classification_scores([0], np.zeros((1, 2)), 3)


@pytest.mark.parametrize("only_a, only_b", [(10, 2), (5, 5), (0, 7), (30, 18), (1, 0), (12, 4), (40, 25)])
def test_paired_interval_agrees_with_mcnemar(only_a, only_b):
    """The exact paired interval excludes zero exactly when McNemar's exact test rejects at 5%."""
    a, b = _pairs(40, only_a, only_b, 13)
    interval, test = statistics.paired_interval(a, b), statistics.mcnemar(a, b)
    assert interval["difference"] == pytest.approx((only_a - only_b) / len(a))
    assert interval["low"] <= interval["difference"] <= interval["high"]
    assert (interval["low"] > 0 or interval["high"] < 0) == (test.p_value < 0.05)


def test_paired_interval_without_discordant_pairs():
    a = np.array([True, False, True])
    assert statistics.paired_interval(a, a) == {"difference": 0.0, "low": 0.0, "high": 0.0, "n": 3}
