"""The comparison over seeds and test items: nominal coverage in a simulation with both sources of noise
(and with either alone), where a t interval over seeds alone falls short; the example of a difference that
three agreeing seeds would call real and one seed's McNemar would not; Holm's adjustment."""
from __future__ import annotations

import numpy as np
import pytest

from series.comparisons import compare_correct, compare_over_seeds, holm_family
from series.intervals import holm, two_way_interval
from series.primer import coverage, simulate
from series.statistics import PairedDifference, seed_difference

SIMULATIONS, SEEDS, ITEMS = 1500, 3, 1000


def _t_over_seeds(correct_a, correct_b) -> PairedDifference:
    """The t interval over the per-seed accuracy differences alone (the test set's noise left out)."""
    return seed_difference([np.mean(c) for c in correct_a], [np.mean(c) for c in correct_b])


@pytest.mark.parametrize("seed_sd, item_sd", [(0.1, 1.5), (0.3, 0.0), (0.0, 1.5)],
                         ids=["seeds and items", "seeds only", "items only"])
def test_coverage_is_nominal_when_there_is_no_difference(seed_sd, item_sd):
    a, b = simulate(SIMULATIONS, SEEDS, ITEMS, seed_sd, item_sd, np.random.default_rng(7))
    covered = [two_way_interval(a[k], b[k]) for k in range(SIMULATIONS)]
    coverage = np.mean([r.low <= 0 <= r.high for r in covered])
    # 95 % within about 2.5 standard errors of 1,500 runs (a variance part estimated below zero is taken
    # as zero: with no seed noise at all the interval errs on the wide side, 0.97)
    assert 0.925 <= coverage <= 0.98, coverage
    if item_sd:  # the interval over seeds alone leaves the items out: it covers less often
        over_seeds = np.mean([not _t_over_seeds(a[k], b[k]).detected for k in range(SIMULATIONS)])
        assert over_seeds < 0.925, over_seeds


def test_three_agreeing_seeds_do_not_make_forty_sentences_real():
    """+0.004, +0.005, +0.003 over 1,000 sentences, from the same ~40 discordant sentences each time: seeds
    alone call it real; one seed's McNemar says p ≈ 0.6; seeds and items together do not call it."""
    base = np.ones(ITEMS, dtype=bool)
    a_only, b_only = np.arange(0, 21), np.arange(100, 118)  # 21 sentences A alone gets right, 18 B alone
    correct_a, correct_b = [], []
    for extra in ([21], [21, 22], []):  # the seeds' small differences: +4, +5, +3 sentences
        a, b = base.copy(), base.copy()
        a[b_only], b[a_only], b[extra] = False, False, False
        correct_a.append(a), correct_b.append(b)
    assert [round(float(a.mean() - b.mean()), 3) for a, b in zip(correct_a, correct_b)] == [0.004, 0.005, 0.003]
    assert _t_over_seeds(correct_a, correct_b).detected
    assert not compare_over_seeds("A", correct_a, "B", correct_b, "t")["detected"]  # what the series uses
    assert compare_correct("A", correct_a[0], "B", correct_b[0], "t")["p-value"] > 0.5
    both = two_way_interval(correct_a, correct_b)
    assert not both.detected and both.p_value > 0.3, both
    assert both.item_variance > 10 * both.seed_variance  # the noise is the sentences', not the runs'


def test_a_large_difference_is_detected():
    rng = np.random.default_rng(0)
    b = [rng.random(ITEMS) < 0.80 for _ in range(SEEDS)]
    a = [rng.random(ITEMS) < 0.88 for _ in range(SEEDS)]
    result = two_way_interval(a, b)
    assert result.detected and result.low > 0 and result.p_value < 0.05


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="at least two seeds"):
        two_way_interval([np.ones(5)], [np.ones(5)])
    with pytest.raises(ValueError, match="same seeds and test items"):
        two_way_interval([np.ones(5)] * 2, [np.ones(4)] * 2)
    with pytest.raises(ValueError, match="A: need one non-empty vector"):
        two_way_interval([np.ones(5), np.ones(4)], [np.ones(5)] * 2)


def test_holm_adjusts_step_down_and_keeps_the_order():
    adjusted = holm([0.01, 0.04, 0.03, float("nan"), 0.005])
    # sorted: 0.005 (×4), 0.01 (×3), 0.03 (×2), 0.04 (×1), made monotone
    np.testing.assert_allclose(adjusted[[4, 0, 2, 1]], [0.02, 0.03, 0.06, 0.06])
    assert np.isnan(adjusted[3])
    assert holm([0.9, 0.8]).max() == 1.0 and holm([]).size == 0


def test_rows_in_the_series_format_and_one_family():
    rng = np.random.default_rng(1)
    items = rng.random(ITEMS)
    a = [rng.random(ITEMS) < items + 0.25 for _ in range(SEEDS)]
    b = [rng.random(ITEMS) < items for _ in range(SEEDS)]
    row = compare_over_seeds("A", a, "B", b, "topic")
    assert row["detected"] and row["low"] > 0 and len(row["per seed"]) == SEEDS
    assert row["excludes beyond"] == pytest.approx(max(abs(row["low"]), abs(row["high"])))
    null = compare_over_seeds("A", b, "B", b, "topic")  # identical answers: no difference at all
    assert not null["detected"] and null["difference"] == 0 and null["p-value"] == 1.0
    weak = {**row, "p-value": 0.03}  # alone it would be called; in a family of three it is not
    family = holm_family([row, weak, null])
    assert family[0]["detected (Holm)"] and not family[1]["detected (Holm)"]
    assert family[1]["Holm p-value"] == pytest.approx(0.06) and family[1]["detected"]  # lost its verdict


def test_degrees_of_freedom_follow_the_parts_that_are_kept():
    """Satterthwaite over the mean squares the variance is made of: with the item part taken as zero and the
    seed part kept, the variance is MS_seed / (S n) alone, so its degrees of freedom are S − 1; with both kept,
    they lie between the seeds' S − 1 and the items' n − 1."""
    from series.intervals import _satterthwaite
    seeds, items = 3, 100
    scale = seeds * items
    only_seeds = _satterthwaite(10.0, 1.0, 2.0, seeds, items, (10.0 - 2.0) / scale, 2.0 / scale)
    assert only_seeds == pytest.approx(seeds - 1)
    both = _satterthwaite(10.0, 5.0, 2.0, seeds, items, (10.0 - 2.0) / scale, 5.0 / scale)
    assert seeds - 1 < both < items - 1


def test_the_primer_s_coverage_table_ranks_the_three_intervals():
    """Notebook 08's two settings: when training runs differ, one seed's McNemar calls differences that
    are not there far more often than 5 %; when they nearly agree, the t over the seeds alone does; the
    series' interval stays near 95 % in both."""
    differ = coverage(*simulate(1000, SEEDS, ITEMS, 0.3, 1.5, np.random.default_rng(3)))["covers the truth"]
    agree = coverage(*simulate(1000, SEEDS, ITEMS, 0.02, 1.5, np.random.default_rng(3)))["covers the truth"]
    assert differ.iloc[0] < 0.75 and differ.iloc[2] >= 0.92, differ
    assert agree.iloc[1] < 0.925 and agree.iloc[2] >= 0.93, agree
