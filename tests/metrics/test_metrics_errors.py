"""jdl.metrics refuses bad input early, naming function, argument and shape."""

import numpy as np
import pytest
import tensorflow as tf

import jdlayers as jdl

m = jdl.metrics
P = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
Y = np.array([0, 2])
# Every function that scores predictions against labels.
SCORED = [m.accuracy, m.nll, m.brier, m.ece, m.reliability]


@pytest.mark.parametrize("fn", SCORED, ids=lambda f: f.__name__)
def test_scored_metrics_refuse_bad_probs_and_labels(fn):
  name = f"metrics.{fn.__name__}"
  with pytest.raises(ValueError, match=rf"{name}: `probs` must be \[N, K\] "
                     r".*\[S, N, K\].*got shape \(3,\)"):
    fn(np.ones(3) / 3, [0, 1, 2])
  with pytest.raises(ValueError, match=r"`probs` must be .*rank 4"):
    fn(np.ones((1, 1, 2, 3)) / 3, Y)
  with pytest.raises(ValueError, match=rf"{name}: `labels` must be \[N\] "
                     r".*N=2.*got shape \(3,\)"):
    fn(P, [0, 1, 2])
  with pytest.raises(ValueError, match=r"`labels` must lie in \[0, 3\).*"
                     r"\[0, 3\]"):
    fn(P, [0, 3])
  with pytest.raises(ValueError, match=r"`labels` must lie in \[0, 3\)"):
    fn(P, [-1, 0])
  with pytest.raises(ValueError, match=r"`labels` must be integer"):
    fn(P, [0., 1.5])
  with pytest.raises(TypeError, match=rf"{name}: `labels` must be a real "
                     r"numeric array.*dtype <U1"):
    fn(P, ["a", "b"])
  with pytest.raises(ValueError, match=r"every row of `probs` \(shape "
                     r"\(2, 3\)\) must sum to 1 within 0.001; row \(1,\) "
                     r"sums to 0.9.*from_logits"):
    fn([[0.7, 0.2, 0.1], [0.1, 0.1, 0.7]], Y)
  with pytest.raises(ValueError, match=r"probabilities in \[0, 1\].*"
                     r"from_logits=True"):
    fn(np.log(P), Y)
  with pytest.raises(ValueError, match=rf"{name}: `probs` \(shape \(2, 3\)\)"
                     r" holds 1 NaN.*index \(1, 2\)"):
    fn([[0.7, 0.2, 0.1], [0.1, 0.1, np.nan]], Y)
  with pytest.raises(ValueError, match=r"`labels` \(shape \(2,\)\) holds 1 "
                     r"NaN"):
    fn(P, [0., np.nan])
  # S = 0 draws, N = 0 examples.
  with pytest.raises(ValueError, match=rf"{name}: `probs` has an empty dim "
                     r"\(shape \(0, 2, 3\)"):
    fn(np.zeros((0, 2, 3)), Y)
  with pytest.raises(ValueError, match=r"empty dim \(shape \(0, 3\)"):
    fn(np.zeros((0, 3)), [])
  with pytest.raises(TypeError, match=r"`from_logits` must be True or "
                     r"False"):
    fn(P, Y, from_logits="yes")


@pytest.mark.parametrize("fn", [m.predictive_entropy, m.expected_entropy,
                                m.mutual_information],
                         ids=lambda f: f.__name__)
def test_entropies_refuse_bad_samples(fn):
  name = f"metrics.{fn.__name__}"
  with pytest.raises(ValueError, match=rf"{name}: `samples` must be .*got "
                     r"shape \(2, 2, 2, 2\)"):
    fn(np.full((2, 2, 2, 2), 0.5))
  with pytest.raises(ValueError, match=r"empty dim \(shape \(0, 2, 3\)"):
    fn(np.zeros((0, 2, 3)))
  with pytest.raises(ValueError, match=r"must sum to 1"):
    fn(np.full((2, 2, 3), 0.5))
  with pytest.raises(ValueError, match=r"holds 1 NaN or infinite"):
    fn(np.array([[[0.5, np.inf]]]))


def test_expected_entropy_and_mi_need_the_draws():
  for fn in (m.expected_entropy, m.mutual_information):
    with pytest.raises(ValueError, match=rf"metrics.{fn.__name__}: `samples`"
                       r" must be \[S, N, K\] probabilities; got shape "
                       r"\(2, 3\) \(rank 2\) \(it needs the S draws"):
      fn(P)


def test_ece_settings_are_checked():
  with pytest.raises(ValueError, match=r"metrics.ece: `num_bins` must be an "
                     r"int >= 1; got 0"):
    m.ece(P, Y, num_bins=0)
  with pytest.raises(ValueError, match=r"`num_bins` must be an int >= 1; got "
                     r"2.5"):
    m.ece(P, Y, num_bins=2.5)
  with pytest.raises(ValueError, match=r"metrics.reliability: `num_bins`"):
    m.reliability(P, Y, num_bins=True)
  with pytest.raises(ValueError, match=r"metrics.ece: `kind` must be one of "
                     r"\['top_label', 'classwise'\]; got 'toplabel'"):
    m.ece(P, Y, kind="toplabel")


def test_nll_eps_is_checked():
  for eps in (0., 1., -1e-3, float("nan")):
    with pytest.raises(ValueError, match=r"metrics.nll: `eps` must be a "
                       r"finite number > 0 and < 1"):
      m.nll(P, Y, eps=eps)


@pytest.mark.parametrize("fn", [m.ood_auroc, m.ood_auprc, m.fpr_at_95_tpr],
                         ids=lambda f: f.__name__)
def test_ood_metrics_refuse_bad_scores(fn):
  name = f"metrics.{fn.__name__}"
  with pytest.raises(ValueError, match=rf"{name}: `scores_in` is empty"):
    fn([], [1.])
  with pytest.raises(ValueError, match=rf"{name}: `scores_out` is empty"):
    fn([1.], np.zeros(0))
  with pytest.raises(ValueError, match=rf"{name}: `scores_out` must be a "
                     r"vector \[N\] of scores; got shape \(2, 2\)"):
    fn([1.], np.ones((2, 2)))
  with pytest.raises(ValueError, match=r"`scores_in` \(shape \(2,\)\) holds "
                     r"1 NaN"):
    fn([0., np.nan], [1.])
  with pytest.raises(TypeError, match=r"`scores_in` must be a real numeric "
                     r"array; got dtype bool"):
    fn(np.array([True, False]), [1.])


def test_symbolic_tensors_are_refused_with_a_hint():
  @tf.function
  def inside(p):
    return m.predictive_entropy(p)
  with pytest.raises(TypeError, match=r"metrics.predictive_entropy: "
                     r"`samples` is a symbolic tensor \(inside tf.function\)"):
    inside(tf.constant(P))
