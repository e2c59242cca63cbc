"""jdl.metrics against scikit-learn and independent loops, on drawn inputs.

Each property draws small random inputs with hypothesis and compares with
scikit-learn where it has the metric (accuracy, log loss, binary Brier,
ROC AUC, average precision, the ROC curve), and with a plain loop over the
bins for ECE and reliability, which scikit-learn lacks. Then the same
numbers from `tf.Tensor` inputs and from float32 inputs.
"""

import math

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn import metrics as skm

import jdlayers as jdl

m = jdl.metrics
PROPS = settings(deadline=None, max_examples=25)


@st.composite
def predictions(draw, max_s=3, max_n=30, max_k=5, min_s=1):
  """`(draws [S, N, K] float64, labels [N])`; rows sum to 1, entries >= ~2e-4
  (so no clipping floor differs from sklearn's), ties possible."""
  s = draw(st.integers(min_s, max_s))
  n = draw(st.integers(1, max_n))
  k = draw(st.integers(2, max_k))
  raw = draw(hnp.arrays(np.float64, (s, n, k), elements=st.one_of(
      st.sampled_from([1e-3, 0.5, 1.]), st.floats(1e-3, 1.))))
  labels = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, k - 1)))
  return raw / raw.sum(-1, keepdims=True), labels


scores = hnp.arrays(
    np.float64, st.integers(1, 25),
    elements=st.one_of(st.integers(-3, 3).map(float),   # ties
                       st.floats(-1e3, 1e3, allow_subnormal=False)))


def _ref_ece(conf, hit, num_bins):
  """A loop over bins (edge_m, edge_{m+1}], 0 in the first bin."""
  edges = np.arange(num_bins + 1) / num_bins
  total = 0.
  for b in range(num_bins):
    inside = (conf > edges[b]) & (conf <= edges[b + 1])
    if b == 0:
      inside |= conf == 0
    if inside.any():
      total += inside.sum() * abs(hit[inside].mean() - conf[inside].mean())
  return total / len(conf)


@PROPS
@given(predictions())
def test_accuracy_nll_match_sklearn(case):
  draws, y = case
  k = draws.shape[-1]
  p = draws.mean(0)
  assert m.accuracy(draws, y) == skm.accuracy_score(y, p.argmax(-1))
  ref = skm.log_loss(y, p, labels=np.arange(k))
  assert m.nll(draws, y) == pytest.approx(ref, rel=1e-12)
  assert m.nll(np.log(draws), y, from_logits=True) == pytest.approx(
      ref, rel=1e-9)


@PROPS
@given(predictions(max_k=2))
def test_brier_matches_sklearn_binary(case):
  draws, y = case
  p = draws.mean(0)
  ref = skm.brier_score_loss(y, p[:, 1], pos_label=1)
  # Ours sums over both classes: twice the binary score.
  assert m.brier(draws, y) == pytest.approx(2 * ref, rel=1e-12, abs=1e-15)


@PROPS
@given(predictions(), st.integers(1, 20))
def test_ece_and_reliability_match_a_loop(case, num_bins):
  draws, y = case
  p = draws.mean(0)
  conf, hit = p.max(-1), (p.argmax(-1) == y).astype(float)
  assert m.ece(draws, y, num_bins) == pytest.approx(
      _ref_ece(conf, hit, num_bins), rel=1e-12, abs=1e-15)
  classwise = np.mean([_ref_ece(p[:, c], (y == c).astype(float), num_bins)
                       for c in range(p.shape[1])])
  assert m.ece(draws, y, num_bins, kind="classwise") == pytest.approx(
      classwise, rel=1e-12, abs=1e-15)
  r = m.reliability(draws, y, num_bins)
  assert r["count"].sum() == len(y)
  full = r["count"] > 0
  gaps = np.abs(r["accuracy"][full] - r["confidence"][full])
  assert np.sum(r["count"][full] * gaps) / len(y) == pytest.approx(
      m.ece(draws, y, num_bins), rel=1e-12, abs=1e-15)


@PROPS
@given(predictions(min_s=2))
def test_entropies_decompose(case):
  draws, _ = case
  pred = draws.mean(0)
  h = -np.sum(pred * np.log(pred), -1)
  eh = np.mean(-np.sum(draws * np.log(draws), -1), 0)
  np.testing.assert_allclose(m.predictive_entropy(draws), h, rtol=1e-12)
  np.testing.assert_allclose(m.expected_entropy(draws), eh, rtol=1e-12)
  mi = m.mutual_information(draws)
  np.testing.assert_allclose(mi, np.maximum(h - eh, 0), atol=1e-12)
  # Jensen: 0 <= MI <= H[predictive] <= log K.
  assert np.all(mi >= 0) and np.all(mi <= h + 1e-12)
  assert np.all(h <= math.log(draws.shape[-1]) + 1e-12)


@PROPS
@given(scores, scores)
def test_ood_metrics_match_sklearn(s_in, s_out):
  y = np.r_[np.zeros(len(s_in)), np.ones(len(s_out))]
  s = np.r_[s_in, s_out]
  assert m.ood_auroc(s_in, s_out) == pytest.approx(
      skm.roc_auc_score(y, s), rel=1e-12)
  assert m.ood_auprc(s_in, s_out) == pytest.approx(
      skm.average_precision_score(y, s), rel=1e-12)
  fpr, tpr, _ = skm.roc_curve(y, s, drop_intermediate=False)
  assert m.fpr_at_95_tpr(s_in, s_out) == fpr[tpr >= 0.95].min()


def _all_metrics(draws, y, s_in, s_out):
  return [m.accuracy(draws, y), m.nll(draws, y), m.brier(draws, y),
          m.ece(draws, y), m.ece(draws, y, kind="classwise"),
          m.reliability(draws, y)["confidence"],
          m.predictive_entropy(draws), m.expected_entropy(draws),
          m.mutual_information(draws), m.ood_auroc(s_in, s_out),
          m.ood_auprc(s_in, s_out), m.fpr_at_95_tpr(s_in, s_out)]


@settings(deadline=None, max_examples=10)
@given(predictions(), scores, scores, st.sampled_from([np.float32,
                                                        np.float64]))
def test_tf_tensors_give_the_numpy_numbers(case, s_in, s_out, dtype):
  draws, y = case
  draws, s_in, s_out = (a.astype(dtype) for a in (draws, s_in, s_out))
  # float32 rows sum to 1 within ~1e-7, far inside the 1e-3 tolerance.
  ref = _all_metrics(draws, y, s_in, s_out)
  got = _all_metrics(tf.constant(draws), tf.constant(y), tf.constant(s_in),
                     tf.constant(s_out))
  for a, b in zip(ref, got):
    np.testing.assert_array_equal(a, b)
  for v in ref[:5] + ref[9:]:
    assert isinstance(v, float)
  for v in ref[6:9]:
    assert v.dtype == np.float64 and v.shape == y.shape


@PROPS
@given(predictions())
def test_float32_is_close_to_float64(case):
  draws, y = case
  lo = draws.astype(np.float32)
  # float32 rounds p by ~6e-8 relative, so log p moves by that much absolutely.
  assert m.nll(lo, y) == pytest.approx(m.nll(draws, y), rel=1e-5, abs=1e-6)
  assert m.brier(lo, y) == pytest.approx(m.brier(draws, y), abs=1e-6)
  np.testing.assert_allclose(m.predictive_entropy(lo),
                             m.predictive_entropy(draws), atol=1e-5)
  # Bin edges and argmax ties can move under rounding, so the ECE and the
  # accuracy are compared on the float32 values themselves (cast exactly).
  up = lo.astype(np.float64)
  assert m.ece(lo, y) == m.ece(up, y)
  assert m.accuracy(lo, y) == m.accuracy(up, y)
