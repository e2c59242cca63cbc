"""TFP's `tfp.layers` dense variational tests, ported to `jdlayers.keras.Dense`.

Origin: github.com/tensorflow/probability, tag v0.25.0,
tensorflow_probability/python/layers/dense_variational_test.py
(Apache License 2.0). Each `test_<name>` keeps the name and the assertions of
TFP's `<name>`.

Mapping: `tfp.layers.DenseReparameterization / DenseLocalReparameterization /
DenseFlipout(...)` is `jdl.keras.Dense(..., estimator="reparam" / "local" /
"flipout")` with the same tfp.layers hooks (`kernel_posterior_fn`,
`kernel_posterior_tensor_fn`, `kernel_prior_fn`, `kernel_divergence_fn` and
the `bias_*` ones). The kernel is in Keras' layout `[in, units]` in both.
Where TFP relies on tfp.layers' default bias (a point mass without prior,
hence without KL term), the port passes those defaults explicitly
(`TFP_DEFAULT_BIAS`): jdl.keras' documented default bias is mean-field normal
with a `Normal(0, 1)` prior.

TFP runs these under `test_all_tf_execution_regimes`; Keras 3 layers have no
TF1 graph mode, so they run eagerly (Keras compiles `fit` itself).
"""

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import jdlayers as jdl

from _peers_testlib import (EAGER_REGIMES, Counter, MockDistribution,
                            MockKLDivergence, assert_divergence_args,
                            kernel_posterior_fn, keras_layer_test,
                            regime_fixture, uniform as _uniform)

tfd = tfp.distributions

regime = regime_fixture(EAGER_REGIMES)

# tfp.layers' Dense{Reparameterization, LocalReparameterization, Flipout}.
ESTIMATORS = {"Reparameterization": "reparam",
              "LocalReparameterization": "local", "Flipout": "flipout"}


def layer_class(kind):
  return functools.partial(jdl.keras.Dense, estimator=ESTIMATORS[kind])


# tfp.layers' defaults for the bias: a point mass, no prior (no KL term).
TFP_DEFAULT_BIAS = dict(
    bias_posterior_fn=tfp.layers.util.default_mean_field_normal_fn(
        is_singular=True),
    bias_prior_fn=None)


def _test_keras_layer(kind):
  kwargs = {"units": 3,
            "kernel_posterior_fn": kernel_posterior_fn,
            "kernel_prior_fn": None,
            "bias_posterior_fn": None,
            "bias_prior_fn": None}
  # TFP skips this test "until the TF and Keras has a new PIP"; the check
  # itself applies to Keras 3 and runs here.
  keras_layer_test(layer_class(kind), kwargs, (3, 2))
  keras_layer_test(layer_class(kind), kwargs, (None, None, 2))


def _test_kl_penalty_kernel(kind):
  layer = layer_class(kind)(units=2, **TFP_DEFAULT_BIAS)
  inputs = _uniform([2, 3], 1)

  # No keys.
  assert len(layer.losses) == 0

  _ = layer(inputs)

  # Yes keys.
  assert len(layer.losses) == 1
  assert layer.losses[0].shape == ()


def _test_kl_penalty_both(kind):
  layer = layer_class(kind)(
      units=2,
      bias_posterior_fn=tfp.layers.util.default_mean_field_normal_fn(),
      bias_prior_fn=tfp.layers.util.default_multivariate_normal_fn)
  inputs = _uniform([2, 3], 1)

  # No keys.
  assert len(layer.losses) == 0

  _ = layer(inputs)

  # Yes keys.
  assert len(layer.losses) == 2
  assert layer.losses[0].shape == ()
  assert layer.losses[1].shape == ()


def _dense_set_up(kind, batch_size, in_size, out_size, **kwargs):
  seed = Counter()
  inputs = _uniform([batch_size, in_size], seed())

  kernel_size = [in_size, out_size]
  kernel_posterior = MockDistribution(
      loc=_uniform(kernel_size, seed()),
      scale=_uniform(kernel_size, seed()),
      result_log_prob=_uniform(kernel_size, seed()),
      result_sample=_uniform(kernel_size, seed()))
  kernel_prior = MockDistribution(
      result_log_prob=_uniform(kernel_size, seed()),
      result_sample=_uniform(kernel_size, seed()))
  kernel_divergence = MockKLDivergence(result=_uniform([], seed()))

  bias_size = [out_size]
  bias_posterior = MockDistribution(
      result_log_prob=_uniform(bias_size, seed()),
      result_sample=_uniform(bias_size, seed()))
  bias_prior = MockDistribution(
      result_log_prob=_uniform(bias_size, seed()),
      result_sample=_uniform(bias_size, seed()))
  bias_divergence = MockKLDivergence(result=_uniform([], seed()))

  layer = layer_class(kind)(
      units=out_size,
      kernel_posterior_fn=lambda *args: kernel_posterior,
      kernel_posterior_tensor_fn=lambda d: d.sample(seed=42),
      kernel_prior_fn=lambda *args: kernel_prior,
      kernel_divergence_fn=kernel_divergence,
      bias_posterior_fn=lambda *args: bias_posterior,
      bias_posterior_tensor_fn=lambda d: d.sample(seed=43),
      bias_prior_fn=lambda *args: bias_prior,
      bias_divergence_fn=bias_divergence,
      **kwargs)

  outputs = layer(inputs)

  kl_penalty = layer.losses
  return (kernel_posterior, kernel_prior, kernel_divergence,
          bias_posterior, bias_prior, bias_divergence,
          layer, inputs, outputs, kl_penalty)


@pytest.mark.parametrize("kind", list(ESTIMATORS))
def test_testKerasLayer(regime, kind):
  """TFP's testKerasLayer{Reparameterization,LocalReparameterization,Flipout}."""
  _test_keras_layer(kind)


@pytest.mark.parametrize("kind", list(ESTIMATORS))
def test_testKLPenaltyKernel(regime, kind):
  """TFP's testKLPenaltyKernel{Reparameterization,...,Flipout}."""
  _test_kl_penalty_kernel(kind)


@pytest.mark.parametrize("kind", list(ESTIMATORS))
def test_testKLPenaltyBoth(regime, kind):
  """TFP's testKLPenaltyBoth{Reparameterization,...,Flipout}."""
  _test_kl_penalty_both(kind)


def test_testDenseReparameterization(regime):
  batch_size, in_size, out_size = 2, 3, 4
  (kernel_posterior, kernel_prior, kernel_divergence,
   bias_posterior, bias_prior, bias_divergence, layer, inputs,
   outputs, kl_penalty) = _dense_set_up(
       "Reparameterization", batch_size, in_size, out_size)

  expected_outputs = (
      tf.matmul(inputs, kernel_posterior.result_sample) +
      bias_posterior.result_sample)

  np.testing.assert_allclose(kernel_posterior.result_sample,
                             layer.kernel_posterior_tensor, rtol=1e-6, atol=0.)
  np.testing.assert_allclose(bias_posterior.result_sample,
                             layer.bias_posterior_tensor, rtol=1e-6, atol=0.)
  np.testing.assert_allclose(expected_outputs, outputs, rtol=1e-6, atol=0.)
  np.testing.assert_allclose(kernel_divergence.result, kl_penalty[0],
                             rtol=1e-6, atol=0.)
  np.testing.assert_allclose(bias_divergence.result, kl_penalty[1],
                             rtol=1e-6, atol=0.)

  assert_divergence_args(kernel_divergence, [
      kernel_posterior, kernel_prior, kernel_posterior.result_sample])
  assert_divergence_args(bias_divergence, [
      bias_posterior, bias_prior, bias_posterior.result_sample])


# The outputs of local reparameterization and Flipout are random. TFP rebuilds
# its layers' random stream (the same ops, seeds and salts) to compute the
# exact expected outputs; jdlayers' stream is its own, so the ports check the
# same formulas through properties that hold for any random stream, on the
# same layer setup with the examples repeated (the noise is per example).
_REPEATS = 500


def test_testDenseLocalReparameterization(regime):
  batch_size, in_size, out_size = 2, 3, 4
  (kernel_posterior, kernel_prior, kernel_divergence,
   bias_posterior, bias_prior, bias_divergence, layer, _,
   _, kl_penalty) = _dense_set_up(
       "LocalReparameterization", batch_size, in_size, out_size)
  inputs = tf.tile(_uniform([batch_size, in_size], 0), [_REPEATS, 1])
  outputs = layer(inputs)

  # TFP: outputs = Normal(x @ loc, sqrt(x^2 @ scale^2)).sample() + bias,
  # independent per example and unit. So `z` below is i.i.d. N(0, 1)
  # (4000 draws): |mean| < 4.5 / sqrt(4000) and |var - 1| < 5 sd of the
  # sample variance (sqrt(2 / 4000)) each fail with probability < 1e-5 for
  # a correct layer.
  loc = tf.matmul(inputs, kernel_posterior.result_loc)
  scale = tf.matmul(inputs**2., kernel_posterior.result_scale**2)**0.5
  z = ((outputs - bias_posterior.result_sample - loc) / scale).numpy()
  n = z.size
  assert abs(z.mean()) < 4.5 / np.sqrt(n), z.mean()
  assert abs(z.var() - 1.) < 5. * np.sqrt(2. / n), z.var()
  # Independent per example: repeated examples get different noise.
  assert not np.allclose(z[:batch_size], z[batch_size:2 * batch_size])

  np.testing.assert_allclose(bias_posterior.result_sample,
                             layer.bias_posterior_tensor, rtol=1e-6, atol=0.)
  np.testing.assert_allclose(kernel_divergence.result, kl_penalty[0],
                             rtol=1e-6, atol=0.)
  np.testing.assert_allclose(bias_divergence.result, kl_penalty[1],
                             rtol=1e-6, atol=0.)

  assert_divergence_args(kernel_divergence, [
      kernel_posterior, kernel_prior, None])
  assert_divergence_args(bias_divergence, [
      bias_posterior, bias_prior, bias_posterior.result_sample])


def test_testDenseFlipout(regime):
  batch_size, in_size, out_size = 2, 3, 4
  (kernel_posterior, kernel_prior, kernel_divergence,
   bias_posterior, bias_prior, bias_divergence, layer, _,
   _, kl_penalty) = _dense_set_up(
       "Flipout", batch_size, in_size, out_size, seed=44)
  # TFP: outputs = x @ loc + s_out * ((x * s_in) @ delta) + bias, with one
  # perturbation `delta ~ Normal(0, scale)` per call and Rademacher signs
  # `s_in` [batch, in], `s_out` [batch, units]. On inputs with one nonzero
  # entry `c` (in column k), the perturbation of unit j is
  # `+-c * delta[k, j]`: its magnitude / |c| is the same for every example
  # using column k, and its sign varies across examples (all ~333 repeats of
  # a column sharing one sign has probability < 2**-300 for a correct layer).
  cols = np.arange(batch_size * _REPEATS) % in_size
  c = 0.5 + _uniform([batch_size * _REPEATS], 0).numpy()
  inputs = tf.constant(np.eye(in_size, dtype=np.float32)[cols] * c[:, None])
  outputs = layer(inputs)
  mean = (tf.matmul(inputs, kernel_posterior.distribution.loc) +
          bias_posterior.result_sample)
  pert = ((outputs - mean).numpy()) / c[:, None]
  for k in range(in_size):
    rows = pert[cols == k]
    np.testing.assert_allclose(np.abs(rows), np.abs(rows[:1]).repeat(
        len(rows), 0), rtol=1e-4, atol=1e-5)
    assert np.all(np.abs(rows) > 0)
    assert np.all(np.any(np.sign(rows) != np.sign(rows[:1]), axis=0))

  np.testing.assert_allclose(bias_posterior.result_sample,
                             layer.bias_posterior_tensor, rtol=1e-6, atol=0.)
  np.testing.assert_allclose(kernel_divergence.result, kl_penalty[0],
                             rtol=1e-6, atol=0.)
  np.testing.assert_allclose(bias_divergence.result, kl_penalty[1],
                             rtol=1e-6, atol=0.)

  assert_divergence_args(kernel_divergence, [
      kernel_posterior, kernel_prior, None])
  assert_divergence_args(bias_divergence, [
      bias_posterior, bias_prior, bias_posterior.result_sample])


def test_testRandomDenseFlipout(regime):
  batch_size, in_size, out_size = 2, 3, 4
  seed = Counter()
  inputs = _uniform([batch_size, in_size], seed())

  kernel_posterior = MockDistribution(
      loc=_uniform([in_size, out_size], seed()),
      scale=_uniform([in_size, out_size], seed()),
      result_log_prob=_uniform([in_size, out_size], seed()),
      result_sample=_uniform([in_size, out_size], seed()))
  bias_posterior = MockDistribution(
      loc=_uniform([out_size], seed()),
      scale=_uniform([out_size], seed()),
      result_log_prob=_uniform([out_size], seed()),
      result_sample=_uniform([out_size], seed()))
  layer_one = layer_class("Flipout")(
      units=out_size,
      kernel_posterior_fn=lambda *args: kernel_posterior,
      kernel_posterior_tensor_fn=lambda d: d.sample(seed=42),
      kernel_divergence_fn=None,
      bias_posterior_fn=lambda *args: bias_posterior,
      bias_posterior_tensor_fn=lambda d: d.sample(seed=43),
      bias_divergence_fn=None,
      seed=44)
  layer_two = layer_class("Flipout")(
      units=out_size,
      kernel_posterior_fn=lambda *args: kernel_posterior,
      kernel_posterior_tensor_fn=lambda d: d.sample(seed=42),
      kernel_divergence_fn=None,
      bias_posterior_fn=lambda *args: bias_posterior,
      bias_posterior_tensor_fn=lambda d: d.sample(seed=43),
      bias_divergence_fn=None,
      seed=45)

  outputs_one = np.asarray(layer_one(inputs))
  outputs_two = np.asarray(layer_two(inputs))

  assert np.sum(np.isclose(outputs_one, outputs_two)) < out_size


def test_testDenseLayersInSequential(regime):
  data_size, batch_size, in_size, out_size = 10, 2, 3, 4
  rng = np.random.default_rng(0)
  x = rng.uniform(-1., 1., size=(data_size, in_size)).astype(np.float32)
  y = rng.uniform(-1., 1., size=(data_size, out_size)).astype(np.float32)

  model = keras.Sequential([
      layer_class("Reparameterization")(6, activation=tf.nn.relu),
      layer_class("Flipout")(6, activation=tf.nn.relu),
      layer_class("LocalReparameterization")(out_size)
  ])

  # jit_compile=False: XLA compilation (Keras 3's "auto" on TensorFlow) costs
  # seconds per model on CPU; tf_keras (TFP's) does not use XLA either.
  model.compile(loss="mse", optimizer="adam", jit_compile=False)
  model.fit(x, y, batch_size=batch_size, epochs=3, verbose=0)

  batch_input = _uniform([batch_size, in_size], 0)
  batch_output = np.asarray(model(batch_input))
  assert list(batch_output.shape) == [batch_size, out_size]


def test_testGradients(regime):
  net = keras.Sequential([
      layer_class("Reparameterization")(1, **TFP_DEFAULT_BIAS),
      layer_class("Flipout")(1, **TFP_DEFAULT_BIAS),
      layer_class("LocalReparameterization")(1, **TFP_DEFAULT_BIAS)
  ])
  with tf.GradientTape() as tape:
    y = net(tf.zeros([1, 1]))
  grads = tape.gradient(y, net.trainable_variables)
  assert len(grads) == 9
  assert all(g is not None for g in grads)
