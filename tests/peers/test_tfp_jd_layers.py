"""TFP's joint-distribution layers tests, ported to jdlayers.

Origin: github.com/tensorflow/probability, tag v0.25.0,
tensorflow_probability/python/experimental/joint_distribution_layers/layers_test.py
(Apache License 2.0). Each `test_<name>` keeps the name and the assertions of
TFP's `<name>`; TFP's float32/float64 test classes become the `dtype` fixture
(except for the tests that ignore it) and `test_all_tf_execution_regimes` the
`regime` fixture (graph, eager, eager without tf.function). Adaptations to
jdlayers' documented layout (the data batch `N` next to the features, sample
dims to its left) are marked "jdlayers layout" where they happen.
"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import jdlayers as jdl

from _peers_testlib import (ALL_REGIMES, Regime, broadcast_shape,
                            regime_fixture)

tfb = tfp.bijectors
tfd = tfp.distributions
Root = tfd.JointDistributionCoroutine.Root

regime = regime_fixture(ALL_REGIMES)


@pytest.fixture(params=[tf.float32, tf.float64], ids=["32", "64"])
def dtype(request):
  return request.param


def _seed():
  # TFP: test_util.test_seed(sampler_type='stateless').
  return tf.constant([0, 42], tf.int32)


@pytest.mark.parametrize("regime_name", ["graph", "eager"])
def test_testBijectorIntegration(regime_name):
  # TFP runs this once per dtype class, but it uses float32 in both; once is
  # enough (so for testLambda and testSequential). It is the slow test of
  # this file (TFP's JointDistributionCoroutine traces each nested model to
  # find its static attributes): it runs in graph and eager mode (not again
  # without tf.function), with 2 coupling layers (TFP: 3; 2 already
  # alternate the masked half).
  regime = Regime(regime_name)
  with regime.scope():
    _bijector_integration(regime)


def _bijector_integration(regime):

  @tfd.JointDistributionCoroutine
  def bijector_model():
    bijectors = []
    for i in range(2):
      bijector_net = yield Root(
          jdl.Sequential(
              jdl.Affine(5, 5),
              tf.tanh,
              jdl.Affine(10, 5),
              jdl.Lambda(lambda x: tfb.Chain([  # pylint: disable=g-long-lambda
                  tfb.Shift(x[..., :5]),
                  tfb.Scale(log_scale=x[..., 5:])
              ])),
              name=f"net{i}",
          ))
      bijectors.append(
          tfb.RealNVP(
              fraction_masked=0.5 * (-1)**i,
              bijector_fn=lambda x, _, bn=bijector_net: bn(x)))
    yield jdl.Lambda(lambda: tfb.Chain(bijectors))

  *params, _ = bijector_model.sample(2, seed=_seed())

  def ldj_fn(params):
    bijector_fn = bijector_model.sample(value=params, seed=_seed())[-1]
    # jdlayers layout: the data batch N sits next to the features, left of
    # it are the 2 sampled networks; so each network gets its own example as
    # `[2, N=1, 10]` (the anchor's `[2, 10]`), and the ldj is `[2, 1]`.
    return bijector_fn().forward_log_det_jacobian(tf.ones([2, 1, 10]), 1)

  ldj, (params_grad,) = tfp.math.value_and_gradient(ldj_fn, (params,))
  # jdlayers layout: [2, 1] where the anchor has [2] (see above).
  assert ldj.shape == [2, 1]
  flat_params = tf.nest.flatten(params)
  flat_grads = tf.nest.flatten(params_grad)
  assert len(flat_params) == len(flat_grads)
  grads = regime.evaluate([g for g in flat_grads if g is not None])
  assert len(grads) == len(flat_grads), "some parameter has no gradient"
  for x, g in zip(flat_params, grads):
    # TFP's custom_gradient.is_valid_gradient: present and finite.
    assert x.shape[-1] == 0 or np.all(np.isfinite(g))


_IS_DISTRIBUTION_CASES = {
    "Affine": (lambda dtype: jdl.Affine(4, 3, dtype=dtype), False),
    "Conv2D": (lambda dtype: jdl.Conv2D(4, (3, 4), 3, dtype=dtype), True),
    "Lambda": (lambda dtype: jdl.Lambda(tf.nn.softplus, dtype=dtype), False),
    "SequentialAffine": (lambda dtype: jdl.Sequential(
        jdl.Affine(2, 4, dtype=dtype),
        jdl.Lambda(tf.nn.softplus, dtype=dtype),
    ), False),
    "SequentialConv": (lambda dtype: jdl.Sequential(
        jdl.Conv2D(2, 3, 4, dtype=dtype),
        jdl.Lambda(tf.nn.softplus, dtype=dtype),
    ), True),
}


@pytest.mark.parametrize("case", list(_IS_DISTRIBUTION_CASES))
def test_testIsDistribution(regime, dtype, case):
  """Instantiates a layer distribution and exercises its methods."""
  dist_fn, _ = _IS_DISTRIBUTION_CASES[case]
  dist = dist_fn(dtype)
  assert isinstance(dist, tfd.Distribution)
  dist_dtype = dist.dtype
  tf.nest.assert_same_structure(dist_dtype, dist.batch_shape)
  tf.nest.assert_same_structure(dist_dtype, dist.event_shape)
  tf.nest.assert_same_structure(dist_dtype, dist.batch_shape_tensor())
  tf.nest.assert_same_structure(dist_dtype, dist.event_shape_tensor())
  sample = dist.sample([3], seed=_seed())
  tf.nest.assert_same_structure(dist_dtype, sample)

  # Make sure we can use bijectors too.
  bijector = dist.experimental_default_event_space_bijector()
  unconstrained_sample = bijector.inverse(sample)
  unconstrained_sample = tf.nest.map_structure(lambda x: x + 0.,
                                               unconstrained_sample)
  sample = bijector.forward(unconstrained_sample)

  lp = dist.log_prob(sample)
  expected_lp_shape = [3]
  assert expected_lp_shape == lp.shape


_BATCHING = {"LayerBatch": ([7], []), "InputBatch": ([], [7]),
             "BothBatch": ([7], [7])}


@pytest.mark.parametrize("case", list(_BATCHING))
def test_testAffineBatching(regime, dtype, case):
  layer_batch, input_batch = _BATCHING[case]
  dist = jdl.Affine(4, 3, dtype=dtype)
  layer = dist.sample(layer_batch, seed=_seed())
  # Validate that we can map the layer.
  layer = tf.nest.map_structure(lambda x: x + 0., layer)
  # jdlayers layout: the input core is `[N, in]` (the anchor takes bare
  # `[in]` vectors), so the input is `input_batch + [N=1, 3]` and the output
  # gains the same `N=1` next to the features.
  x = tf.ones(input_batch + [1, 3], dtype=dtype)
  y = layer(x)
  assert broadcast_shape(layer_batch, input_batch) + [1, 4] == y.shape
  assert dtype == y.dtype


def test_testAffineCustomParamsDist(regime, dtype):

  def params_model_fn(out_units, in_units, dtype):
    yield Root(
        tfd.LogNormal(tf.zeros([out_units, in_units], dtype), 1.,
                      name="weights"))
    yield Root(tfd.LogNormal(tf.zeros([out_units], dtype), 1., name="bias"))

  dist = jdl.Affine(5, 4, dtype=dtype, params_model_fn=params_model_fn)
  layer = dist.sample(seed=_seed())
  # jdlayers layout: one example is `[N=1, 4]` (the anchor's `[4]`), so the
  # output is `[1, 5]` (the anchor's `[5]`).
  x = tf.ones([1, 4], dtype)
  y = layer(x)
  assert [1, 5] == y.shape
  assert dtype == y.dtype
  # Since the parameters are log-normal, the outputs will be positive for
  # positive inputs.
  assert np.all(regime.evaluate(y) > 0.)


@pytest.mark.parametrize("case", list(_BATCHING))
def test_testConv2DBatching(regime, dtype, case):
  layer_batch, input_batch = _BATCHING[case]
  dist = jdl.Conv2D(4, (3, 3), 3, dtype=dtype)
  layer = dist.sample(layer_batch, seed=_seed())
  # Validate that we can map the layer.
  layer = tf.nest.map_structure(lambda x: x + 0., layer)
  x = tf.ones(input_batch + [9, 5, 5, 3], dtype=dtype)
  y = layer(x)
  assert (broadcast_shape(layer_batch, input_batch) + [9, 5, 5, 4] ==
          y.shape)
  assert dtype == y.dtype


_CONV_PARAMS = {
    "SameNoStrides": ("SAME", [1, 1], [7, 11]),
    "ValidNoStrides": ("VALID", [1, 1], [5, 9]),
    "SameWithStrides": ("SAME", [2, 2], [4, 6]),
    "ValidWithStrides": ("VALID", [2, 2], [3, 5]),
}


@pytest.mark.parametrize("case", list(_CONV_PARAMS))
def test_testConv2DParams(regime, dtype, case):
  padding, strides, expected_output_size = _CONV_PARAMS[case]
  dist = jdl.Conv2D(4, (3, 3), 3, strides=strides, padding=padding,
                    dtype=dtype)
  layer = dist.sample(seed=_seed())
  # Validate that we can map the layer.
  layer = tf.nest.map_structure(lambda x: x + 0., layer)
  x = tf.ones([5, 7, 11, 3], dtype=dtype)
  y = layer(x)
  assert [5] + expected_output_size + [4] == y.shape
  assert dtype == y.dtype


def test_testConvCustomParamsDist(regime, dtype):

  def params_model_fn(out_channels, size, in_channels, dtype):
    yield Root(
        tfd.LogNormal(
            tf.zeros(list(size) + [in_channels, out_channels], dtype), 1.,
            name="kernel"))

  dist = jdl.Conv2D(5, (3, 3), 4, dtype=dtype,
                    params_model_fn=params_model_fn)
  layer = dist.sample(seed=_seed())
  x = tf.ones([3, 5, 7, 4], dtype)
  y = layer(x)
  assert [3, 5, 7, 5] == y.shape
  assert dtype == y.dtype
  # Since the parameters are log-normal, the outputs will be positive for
  # positive inputs.
  assert np.all(regime.evaluate(y) > 0.)


def test_testLambda(regime):
  dist = jdl.Lambda(tf.square)
  layer = dist.sample(seed=_seed())
  np.testing.assert_allclose(regime.evaluate(layer(2)), 4)


def test_testSequential(regime):
  dist = jdl.Sequential(
      jdl.Affine(5, 3),
      tf.nn.softplus,
  )
  layer = dist.sample(seed=_seed())
  x = tf.ones([4, 3])
  y = layer(x)
  assert [4, 5] == y.shape
  assert np.all(regime.evaluate(y) > 0.)
  assert [] == dist.log_prob(layer).shape
