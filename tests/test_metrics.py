"""Metric functions against small cases worked out by hand (see the comments for the arithmetic)."""

from __future__ import annotations

import numpy as np
import pytest

from vultus.evaluate.metrics import (
    best_accuracy_threshold,
    bootstrap_ci,
    eer,
    kfold_accuracy,
    logistic_fusion_weights,
    roc,
    tar_at_fmr,
    threshold_at_fmr,
)

# genuine .9 .8 .6 ; impostor .7 .5 .4
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
SAME = np.array([True, True, False, True, False, False])


def test_roc_by_hand():
    r = roc(SCORES, SAME)
    assert r.thresholds[0] == np.inf
    np.testing.assert_allclose(r.thresholds[1:], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    np.testing.assert_allclose(r.tar, [0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1])
    np.testing.assert_allclose(r.fmr, [0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1])
    # Mann-Whitney: 8 of the 9 (genuine, impostor) pairs are ordered correctly
    assert r.auc() == pytest.approx(8 / 9)


def test_roc_ties_share_a_point():
    r = roc([0.5, 0.5, 0.5, 0.5], [True, False, True, False])
    np.testing.assert_allclose(r.thresholds, [np.inf, 0.5])
    np.testing.assert_allclose(r.tar, [0, 1])
    np.testing.assert_allclose(r.fmr, [0, 1])
    assert r.auc() == pytest.approx(0.5)  # a tie counts half


def test_eer_exact_crossing():
    # FNMR = 1/3 and FMR = 1/3 at threshold 0.7
    rate, t = eer(SCORES, SAME)
    assert rate == pytest.approx(1 / 3)
    assert t == pytest.approx(0.7)


def test_eer_interpolates_and_handles_ties():
    # one tied score: FMR jumps 0 -> 1 while FNMR drops 1 -> 0: they cross half way
    rate, t = eer([0.5, 0.5, 0.5, 0.5], [True, False, True, False])
    assert rate == pytest.approx(0.5)
    assert t == pytest.approx(0.5)


def test_eer_perfect_separation_is_zero():
    rate, t = eer([0.1, 0.2, 0.8, 0.9], [False, False, True, True])
    assert rate == 0.0
    assert 0.2 < t <= 0.8


def test_threshold_at_fmr_by_hand():
    imp = [0.1, 0.2, 0.3, 0.4]
    # 25% of 4 = 1 false match allowed: just above the 2nd highest (0.3), so only 0.4 is accepted
    t = threshold_at_fmr(imp, 0.25)
    assert 0.3 < t < 0.3 + 1e-12
    # no false match allowed: just above the highest
    t0 = threshold_at_fmr(imp, 0.1)
    assert 0.4 < t0 < 0.4 + 1e-12


def test_threshold_at_fmr_ties_never_exceed_target():
    # three tied at 0.3: any threshold <= 0.3 accepts 75% > 50%, so the threshold must clear them all
    t = threshold_at_fmr([0.3, 0.3, 0.3, 0.1], 0.5)
    assert t > 0.3
    assert np.mean(np.array([0.3, 0.3, 0.3, 0.1]) >= t) == 0.0


def test_threshold_at_fmr_rate_to_count_rounding():
    # 0.29 * 100 is 28.999999999999996 in floating point; 29 false matches are allowed
    imp = np.arange(100) / 100.0
    t = threshold_at_fmr(imp, 0.29)
    assert np.sum(imp >= t) == 29


def test_tar_at_fmr_by_hand():
    scores = [0.1, 0.2, 0.3, 0.4, 0.35, 0.5, 0.25, 0.9]
    same = [False] * 4 + [True] * 4
    r = tar_at_fmr(scores, same, 0.25)
    assert r.tar == pytest.approx(0.75)  # .35 .5 .9 are above 0.3+
    assert r.n_negatives == 4 and r.resolvable and r.note == ""
    r = tar_at_fmr(scores, same, 0.1)
    assert r.tar == pytest.approx(0.5)  # only .5 and .9 clear 0.4+
    assert not r.resolvable
    assert "too few impostor pairs" in r.note and "10" in r.note


@pytest.mark.parametrize("fn", [roc, eer, lambda s, y: tar_at_fmr(s, y, 0.1)])
def test_degenerate_inputs_raise(fn):
    with pytest.raises(ValueError, match="no impostor"):
        fn([0.1, 0.2], [True, True])
    with pytest.raises(ValueError, match="no genuine"):
        fn([0.1, 0.2], [False, False])
    with pytest.raises(ValueError, match="empty"):
        fn([], [])
    with pytest.raises(ValueError, match="NaN"):
        fn([np.nan, 0.2], [True, False])
    with pytest.raises(ValueError, match="entries"):
        fn([0.1, 0.2, 0.3], [True, False])


@pytest.mark.parametrize("target", [0, 1, -0.1, 2])
def test_threshold_at_fmr_rejects_bad_targets(target):
    with pytest.raises(ValueError, match="between 0 and 1"):
        threshold_at_fmr([0.1, 0.2], target)


def test_best_accuracy_threshold_plateau_median():
    # train set .3T .4F .6T .7F: candidates -.7 .35 .5 .65 1.7 score 2 1 2 1 2 correct;
    # the best three are -.7, .5, 1.7 and the median one is .5
    assert best_accuracy_threshold([0.6, 0.7, 0.3, 0.4], [True, False, True, False]) == pytest.approx(0.5)
    assert best_accuracy_threshold([0.1, 0.2, 0.8, 0.9], [False, False, True, True]) == pytest.approx(0.5)


def test_kfold_accuracy_by_hand():
    scores = [0.9, 0.1, 0.8, 0.2, 0.6, 0.7, 0.3, 0.4]
    same = [True, False, True, False] * 2
    folds = [0, 0, 0, 0, 1, 1, 1, 1]
    acc = kfold_accuracy(scores, same, folds)
    # fold 0 uses t=.5 fitted on fold 1: all 4 right; fold 1 uses t=.5 fitted on fold 0: .7F and .3T wrong
    np.testing.assert_allclose(acc.per_fold, [1.0, 0.5])
    np.testing.assert_allclose(acc.thresholds, [0.5, 0.5])
    assert acc.mean == pytest.approx(0.75)
    assert acc.std == pytest.approx(0.25)


def test_kfold_failures_count_as_wrong():
    scores = [np.nan, 0.1, 0.8, 0.2, 0.6, 0.7, 0.3, 0.4]
    same = [True, False, True, False] * 2
    folds = [0, 0, 0, 0, 1, 1, 1, 1]
    failed = [True] + [False] * 7
    acc = kfold_accuracy(scores, same, folds, failed=failed)
    np.testing.assert_allclose(acc.per_fold, [0.75, 0.5])  # the failed pair is a wrong decision, not dropped


def test_kfold_rejects_nan_outside_failures_and_single_fold():
    with pytest.raises(ValueError, match="NaN"):
        kfold_accuracy([np.nan, 0.1, 0.8, 0.2], [True, False, True, False], [0, 0, 1, 1])
    with pytest.raises(ValueError, match="2 folds"):
        kfold_accuracy([0.9, 0.1], [True, False], [0, 0])


def test_bootstrap_ci_basic():
    lo, hi = bootstrap_ci(np.mean, np.full(50, 3.0))
    assert lo == hi == 3.0
    x = np.random.default_rng(1).normal(size=400)
    lo, hi = bootstrap_ci(np.mean, x, n=300)
    assert lo < x.mean() < hi
    assert hi - lo == pytest.approx(2 * 1.96 * x.std() / 20, rel=0.25)
    assert bootstrap_ci(np.mean, x, n=100, seed=5) == bootstrap_ci(np.mean, x, n=100, seed=5)


def test_bootstrap_ci_pairs_and_degenerate():
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4] * 20)
    y = np.array([True, True, False, True, False, False] * 20)
    lo, hi = bootstrap_ci(lambda a, b: tar_at_fmr(a, b, 0.34).tar, s, y, n=200)
    assert 0.0 <= lo <= hi <= 1.0
    with pytest.raises(ValueError, match="empty"):
        bootstrap_ci(np.mean, np.array([]))
    with pytest.raises(ValueError, match="same length"):
        bootstrap_ci(lambda a, b: 0.0, np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="could be computed"):
        bootstrap_ci(lambda a, b: roc(a, b).auc(), np.array([0.1, 0.2]), np.array([True, True]), n=20)


def test_logistic_fusion_weights_favour_the_informative_score():
    rng = np.random.default_rng(3)
    same = np.repeat([True, False], 2000)
    informative = np.where(same, 1.0, 0.0) + rng.normal(0, 0.5, same.size)
    weaker = np.where(same, 1.0, 0.0) + rng.normal(0, 1.5, same.size)
    noise = rng.normal(0, 1.0, same.size)
    w = logistic_fusion_weights(np.column_stack([informative, weaker]), same)
    assert w.sum() == pytest.approx(1.0) and w[0] > 0.75 > w[1] > 0.0  # ~ 1/var weighting: 0.9 / 0.1
    w = logistic_fusion_weights(np.column_stack([noise, informative]), same)
    assert abs(w[0]) < 0.05 and w[1] > 0.95
    # the same system twice gets equal shares
    assert logistic_fusion_weights(np.column_stack([informative, informative]), same) == pytest.approx([0.5, 0.5])


def test_logistic_fusion_weights_reject_bad_input():
    with pytest.raises(ValueError, match="at least two systems"):
        logistic_fusion_weights(np.zeros((4, 1)), [True, False, True, False])
    with pytest.raises(ValueError, match="no impostor"):
        logistic_fusion_weights(np.zeros((4, 2)), [True] * 4)
    with pytest.raises(ValueError, match="do not separate"):
        x = np.array([[1.0, 1.0], [0.0, 0.0]] * 10)
        logistic_fusion_weights(x, [False, True] * 10)
