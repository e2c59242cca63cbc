"""jdl.metrics against hand computations, one case per function and more."""

import math

import numpy as np
import pytest

import jdlayers as jdl

m = jdl.metrics

# Four examples, three classes. Top-label confidences 0.9, 0.6, 0.55, 0.4;
# predictions 0, 1, 2, 2; labels 0, 0, 2, 1 -> right, wrong, right, wrong.
PROBS = np.array([[0.90, 0.05, 0.05],
                  [0.30, 0.60, 0.10],
                  [0.25, 0.20, 0.55],
                  [0.30, 0.30, 0.40]])
LABELS = np.array([0, 0, 2, 1])
# Two draws of two examples: the predictive is [.8, .2] and [.4, .6].
DRAWS = np.array([[[0.9, 0.1], [0.6, 0.4]],
                  [[0.7, 0.3], [0.2, 0.8]]])


def test_accuracy_by_hand():
  assert m.accuracy(PROBS, LABELS) == 0.5
  assert m.accuracy(DRAWS, [0, 1]) == 1.0
  # The predictive, not the draws: draw 0 alone gets example 1 wrong.
  assert m.accuracy(DRAWS[:1], [0, 1]) == 0.5
  assert isinstance(m.accuracy(PROBS, LABELS), float)


def test_nll_by_hand():
  expected = -np.mean(np.log([0.9, 0.3, 0.55, 0.3]))
  assert m.nll(PROBS, LABELS) == pytest.approx(expected, rel=1e-14)
  # [S, N, K]: the log of the mean probability, not the mean log.
  assert m.nll(DRAWS, [1, 0]) == pytest.approx(-np.mean(np.log([0.2, 0.4])))
  assert m.nll(np.log(DRAWS), [1, 0], from_logits=True) == pytest.approx(
      -np.mean(np.log([0.2, 0.4])), rel=1e-12)
  # A zero probability for the label costs -log(eps), not infinity.
  assert m.nll([[1., 0.]], [1]) == pytest.approx(-math.log(1e-12))
  assert m.nll([[1., 0.]], [1], eps=1e-3) == pytest.approx(-math.log(1e-3))


def test_nll_from_logits_stays_exact_in_the_tails():
  # Label logit 700 below the other: probability e^-700 (1e-304), whose
  # log a probability path would floor at log(eps); logits keep it exact.
  logits = np.array([[[0., -700.]], [[0., -702.]]])             # [2, 1, 2]
  expected = -(np.log(np.mean(np.exp([0., -2.]))) - 700.)
  assert m.nll(logits, [1], eps=1e-320, from_logits=True) == pytest.approx(
      expected, rel=1e-12)


def test_brier_by_hand():
  # Rows: .01+.0025+.0025, .49+.36+.01, .0625+.04+.2025, .09+.49+.16.
  assert m.brier(PROBS, LABELS) == pytest.approx(1.92 / 4, rel=1e-14)
  # Predictive [.8, .2], [.4, .6] with labels 0, 1: 2 * .04, 2 * .16.
  assert m.brier(DRAWS, [0, 1]) == pytest.approx((0.08 + 0.32) / 2)


def test_top_label_ece_two_bins_by_hand():
  # Bins (0, .5] and (.5, 1]. Confidences: 0.9, 0.6, 0.55 | 0.4.
  high = abs(2 / 3 - (0.9 + 0.6 + 0.55) / 3)
  low = abs(0 - 0.4)
  assert m.ece(PROBS, LABELS, num_bins=2) == pytest.approx(
      (3 * high + 1 * low) / 4)


def test_reliability_and_ece_ten_bins_by_hand():
  # 0.9 -> (.8, .9] bin 8, 0.6 and 0.55 -> (.5, .6] bin 5, 0.4 -> bin 3.
  r = m.reliability(PROBS, LABELS, num_bins=10)
  np.testing.assert_array_equal(r["count"], [0, 0, 0, 1, 0, 2, 0, 0, 1, 0])
  np.testing.assert_allclose(r["confidence"][[3, 5, 8]], [0.4, 0.575, 0.9])
  np.testing.assert_allclose(r["accuracy"][[3, 5, 8]], [0., 0.5, 1.])
  np.testing.assert_allclose(r["edges"], np.linspace(0, 1, 11))
  assert np.isnan(r["accuracy"][0]) and np.isnan(r["confidence"][0])
  expected = (1 * 0.4 + 2 * 0.075 + 1 * 0.1) / 4
  assert m.ece(PROBS, LABELS, num_bins=10) == pytest.approx(expected)


def test_edges_fall_in_the_lower_bin():
  # Confidences exactly on the edges 0.5 and 1.0 (and 0 in bin 0).
  probs = np.array([[0.5, 0.5], [1., 0.], [0.5, 0.5]])
  r = m.reliability(probs, [0, 0, 1], num_bins=2)
  np.testing.assert_array_equal(r["count"], [2, 1])
  np.testing.assert_allclose(r["accuracy"], [0.5, 1.])


def test_classwise_ece_two_bins_by_hand():
  # Per class, bins (0, .5] and (.5, 1] of p_k over all four examples:
  # k=0: p .9 | .3 .25 .3, y 1 | 1 0 0: (|1 - .9| + |1 - .85|) / 4 = .0625
  # k=1: p .6 | .05 .2 .3, y 0 | 0 0 1: (.6 + |1 - .55|) / 4 = .2625
  # k=2: p .55 | .05 .1 .4, y 1 | 0 0 0: (.45 + .55) / 4 = .25
  expected = (0.0625 + 0.2625 + 0.25) / 3
  assert m.ece(PROBS, LABELS, num_bins=2, kind="classwise") == pytest.approx(
      expected, rel=1e-12)


def test_overconfident_predictions_have_ece_of_the_gap():
  # Always 99% sure, right half the time: ECE = 0.49 (both kinds: the two
  # classes' gaps are .49 each).
  probs = np.tile([[0.99, 0.01]], (1000, 1))
  labels = np.tile([0, 1], 500)
  assert m.ece(probs, labels) == pytest.approx(0.49)
  assert m.ece(probs, labels, kind="classwise") == pytest.approx(0.49)


def test_calibrated_predictions_have_small_ece_and_shuffled_ones_large():
  # Labels drawn from the predicted probabilities: calibrated by
  # construction. Given the probabilities, each bin's gap is a sum of n_m
  # independent terms in an interval of length 1, so by Hoeffding and a
  # union bound over the 15 bins, ECE <= sqrt(15 log(30 / d) / (2 N)) with
  # probability >= 1 - d. d = 1e-4: false-failure probability <= 1e-4 for a
  # correct ECE, on any machine.
  rng = np.random.default_rng(0)
  n, k, d = 200_000, 10, 1e-4
  probs = rng.dirichlet(np.full(k, 0.3), size=n)
  u = rng.random((n, 1))
  labels = np.minimum((u > np.cumsum(probs, axis=1)).sum(axis=1), k - 1)
  assert m.ece(probs, labels) < math.sqrt(15 * math.log(30 / d) / (2 * n))
  # Labels uniform and independent of the probabilities: accuracy is
  # 1/K +- sqrt(log(2 / d) / (2 N)) (Hoeffding, prob >= 1 - d), and ECE >=
  # |mean confidence - accuracy| (triangle inequality over the bins).
  wrong = rng.integers(0, k, size=n)
  slack = math.sqrt(math.log(2 / d) / (2 * n))
  assert m.ece(probs, wrong) >= probs.max(1).mean() - 1 / k - slack


def test_entropies_and_mutual_information_by_hand():
  # Two certain draws that disagree: H[predictive] = log 2, each draw has
  # entropy 0 (0 log 0 = 0, not NaN), so all the uncertainty is epistemic.
  disagree = np.array([[[1., 0.]], [[0., 1.]]])                  # [2, 1, 2]
  np.testing.assert_allclose(m.predictive_entropy(disagree), [math.log(2)])
  np.testing.assert_array_equal(m.expected_entropy(disagree), [0.])
  np.testing.assert_allclose(m.mutual_information(disagree), [math.log(2)])
  # Two uniform draws that agree: all aleatoric.
  agree = np.full((2, 1, 2), 0.5)
  np.testing.assert_allclose(m.expected_entropy(agree), [math.log(2)])
  np.testing.assert_array_equal(m.mutual_information(agree), [0.])
  # [N, K] probabilities: H([.5, .25, .25]) = 1.5 log 2; H(one-hot) = 0.
  h = m.predictive_entropy([[0.5, 0.25, 0.25], [0., 1., 0.]])
  np.testing.assert_allclose(h, [1.5 * math.log(2), 0.])
  assert h.dtype == np.float64 and h.shape == (2,)


def test_mutual_information_of_draws_by_hand():
  h = lambda *p: -sum(x * math.log(x) for x in p)  # noqa: E731
  pred = [h(0.8, 0.2), h(0.4, 0.6)]
  expected = [(h(0.9, 0.1) + h(0.7, 0.3)) / 2, (h(0.6, 0.4) + h(0.2, 0.8)) / 2]
  np.testing.assert_allclose(m.predictive_entropy(DRAWS), pred, rtol=1e-13)
  np.testing.assert_allclose(m.expected_entropy(DRAWS), expected, rtol=1e-13)
  np.testing.assert_allclose(m.mutual_information(DRAWS),
                             np.subtract(pred, expected), rtol=1e-12)
  logits = np.log(DRAWS) + 3.  # a shift per row leaves the softmax alone
  np.testing.assert_allclose(m.mutual_information(logits, from_logits=True),
                             np.subtract(pred, expected), rtol=1e-10)


def test_ood_metrics_by_hand_with_ties():
  s_in, s_out = [0.1, 0.2, 0.3], [0.3, 0.4]
  # Pairs (out > in): 0.3 beats 0.1, 0.2 and ties 0.3 (half); 0.4 beats 3.
  assert m.ood_auroc(s_in, s_out) == pytest.approx(5.5 / 6)
  # Thresholds 0.4: TP 1, FP 0 (P 1, R .5); 0.3: TP 2, FP 1 (P 2/3, R 1).
  assert m.ood_auprc(s_in, s_out) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
  # TPR first reaches 0.95 at threshold 0.3, where 1 of 3 in-scores is >=.
  assert m.fpr_at_95_tpr(s_in, s_out) == pytest.approx(1 / 3)


def test_ood_metrics_at_the_extremes():
  s_in, s_out = [0., 1., 2.], [3., 4.]
  assert m.ood_auroc(s_in, s_out) == 1.
  assert m.ood_auprc(s_in, s_out) == 1.
  assert m.fpr_at_95_tpr(s_in, s_out) == 0.
  assert m.ood_auroc(s_out, s_in) == 0.                        # reversed
  # All scores equal: chance AUROC, AUPRC the OOD fraction, every input
  # flagged at the only threshold.
  assert m.ood_auroc([1., 1., 1.], [1.]) == 0.5
  assert m.ood_auprc([1., 1., 1.], [1.]) == 0.25
  assert m.fpr_at_95_tpr([1., 1., 1.], [1.]) == 1.
  # One score each is enough.
  assert m.ood_auroc([0.], [1.]) == 1.


def test_fpr_at_95_tpr_by_hand_on_twenty_scores():
  # 20 OOD scores 1..20: TPR 0.95 first at threshold 2 (19 of 20 >= 2). The
  # in-scores 0.5, 1.5, 2, 2.5: two are >= 2 (the tie at 2 is flagged).
  assert m.fpr_at_95_tpr([0.5, 1.5, 2., 2.5], np.arange(1., 21.)) == 0.5
  # Without the tie, one.
  assert m.fpr_at_95_tpr([0.5, 1.5, 1.9, 2.5], np.arange(1., 21.)) == 0.25
