"""Calibration metrics of the examples against hand computations."""

import importlib.util
import pathlib

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _load():
  spec = importlib.util.spec_from_file_location(
      "_calibration", EXAMPLES / "_calibration.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


cal = _load()

# Four examples, three classes. Top-label confidences 0.9, 0.6, 0.55, 0.4;
# predictions 0, 1, 2, 2; labels 0, 0, 2, 1 -> right, wrong, right, wrong.
PROBS = np.array([[0.90, 0.05, 0.05],
                  [0.30, 0.60, 0.10],
                  [0.25, 0.20, 0.55],
                  [0.30, 0.30, 0.40]])
LABELS = np.array([0, 0, 2, 1])


def test_ece_matches_hand_computation_two_bins():
  # Bins (0, .5] and (.5, 1]. Confidences: 0.9, 0.6, 0.55 | 0.4.
  # High bin: conf (0.9 + 0.6 + 0.55) / 3, acc 2/3 (first and third right).
  # Low bin: conf 0.4, acc 0 (predicts 2, label 1).
  high = abs(2 / 3 - (0.9 + 0.6 + 0.55) / 3)
  low = abs(0 - 0.4)
  expected = (3 * high + 1 * low) / 4
  assert cal.ece(PROBS, LABELS, num_bins=2) == pytest.approx(expected)


def test_ece_matches_hand_computation_ten_bins():
  # Ten bins: 0.9 -> (.8, .9] bin 8, 0.6 -> (.5, .6] bin 5,
  # 0.55 -> (.5, .6] bin 5, 0.4 -> (.3, .4] bin 3.
  r = cal.reliability(PROBS, LABELS, num_bins=10)
  np.testing.assert_array_equal(r["count"], [0, 0, 0, 1, 0, 2, 0, 0, 1, 0])
  np.testing.assert_allclose(r["confidence"][[3, 5, 8]], [0.4, 0.575, 0.9])
  np.testing.assert_allclose(r["accuracy"][[3, 5, 8]], [0., 0.5, 1.])
  assert np.isnan(r["accuracy"][0]) and np.isnan(r["confidence"][0])
  expected = (1 * 0.4 + 2 * 0.075 + 1 * 0.1) / 4
  assert cal.ece(PROBS, LABELS, num_bins=10) == pytest.approx(expected)


def test_accuracy_and_nll_by_hand():
  assert cal.accuracy(PROBS, LABELS) == pytest.approx(0.5)
  expected = -np.mean(np.log([0.9, 0.3, 0.55, 0.3]))
  assert cal.nll(PROBS, LABELS) == pytest.approx(expected)
  # A zero probability for the label costs -log(eps), not infinity.
  assert np.isfinite(cal.nll([[1., 0.]], [1]))


def test_perfectly_calibrated_predictions_have_ece_near_zero():
  # Labels drawn from the predicted probabilities: calibrated by construction.
  rng = np.random.default_rng(0)
  n, k = 200_000, 10
  probs = rng.dirichlet(np.full(k, 0.3), size=n)
  u = rng.random((n, 1))
  labels = np.minimum((u > np.cumsum(probs, axis=1)).sum(axis=1), k - 1)
  assert cal.ece(probs, labels) < 0.005
  # The same probabilities scored against shuffled labels are not calibrated.
  assert cal.ece(probs, rng.permutation(labels)) > 0.3


def test_overconfident_predictions_have_ece_of_the_gap():
  # Always 99% sure, right half the time: ECE = 0.49.
  probs = np.tile([[0.99, 0.01]], (1000, 1))
  labels = np.tile([0, 1], 500)
  assert cal.ece(probs, labels) == pytest.approx(0.49)


def test_bad_inputs_raise_naming_the_argument():
  with pytest.raises(ValueError, match="probs"):
    cal.ece(np.ones(3), [0, 1, 2])
  with pytest.raises(ValueError, match="labels"):
    cal.ece(PROBS, [0, 1])
  with pytest.raises(ValueError, match="labels"):
    cal.ece(PROBS, [0, 1, 2, 3])
  with pytest.raises(ValueError, match="num_bins"):
    cal.reliability(PROBS, LABELS, num_bins=0)


def test_reliability_diagram_writes_png(tmp_path):
  rng = np.random.default_rng(1)
  probs = rng.dirichlet(np.ones(5), size=300)
  labels = rng.integers(0, 5, size=300)
  sharp = probs ** 2 / (probs ** 2).sum(1, keepdims=True)
  path = cal.reliability_diagram({"a": (probs, labels), "b": (sharp, labels)},
                                 tmp_path / "rel.png")
  assert path.read_bytes()[:8] == PNG_MAGIC


def test_merge_sparse_bins_by_hand():
  # Ten bins; counts 0,0,0,1,0,2,0,0,1,0 (PROBS above). min_count 2:
  # {bin 3, bin 5} -> 3 examples, then {bin 8} is short and joins it.
  r = cal.reliability(PROBS, LABELS, num_bins=10)
  m = cal.merge_sparse_bins(r, 2)
  np.testing.assert_array_equal(m["count"], [4])
  np.testing.assert_allclose(m["edges"], [0.3, 0.9])
  np.testing.assert_allclose(m["confidence"], [(0.4 + 0.6 + 0.55 + 0.9) / 4])
  np.testing.assert_allclose(m["accuracy"], [0.5])
  # min_count 1 keeps every non-empty bin, each with its own edges.
  m = cal.merge_sparse_bins(r, 1)
  np.testing.assert_array_equal(m["count"], [1, 2, 1])
  # Empty bins join the group on their right.
  np.testing.assert_allclose(m["edges"], [0.3, 0.4, 0.6, 0.9])
  np.testing.assert_allclose(m["accuracy"], [0., 0.5, 1.])


def test_merged_bins_equal_reliability_on_the_wider_bins():
  # Two classes: top-label confidences in (0.5, 1], i.e. the upper ten of 20
  # bins. Bins alternately hold 3 and 5 examples, so with min_count 6 every
  # merged bin is one pair of fine bins: exactly the 10-bin reliability.
  rng = np.random.default_rng(2)
  conf, labels = [], []
  for m in range(10, 20):
    n = 3 if m % 2 == 0 else 5
    conf += list(rng.uniform(m / 20 + 1e-6, (m + 1) / 20, size=n))
    labels += list(rng.integers(0, 2, size=n))
  conf = np.asarray(conf)
  probs = np.stack([conf, 1 - conf], axis=1)
  fine = cal.reliability(probs, labels, num_bins=20)
  coarse = cal.reliability(probs, labels, num_bins=10)
  m = cal.merge_sparse_bins(fine, 6)
  np.testing.assert_array_equal(m["count"], coarse["count"][5:])
  np.testing.assert_allclose(m["edges"], coarse["edges"][5:])
  np.testing.assert_allclose(m["confidence"], coarse["confidence"][5:])
  np.testing.assert_allclose(m["accuracy"], coarse["accuracy"][5:])


def test_merge_sparse_bins_rejects_bad_min_count():
  r = cal.reliability(PROBS, LABELS, num_bins=10)
  with pytest.raises(ValueError, match="min_count"):
    cal.merge_sparse_bins(r, 0)
