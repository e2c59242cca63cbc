"""TFP's `tfp.layers` convolutional variational tests, ported to `jdl.keras`.

Origin: github.com/tensorflow/probability, tag v0.25.0,
tensorflow_probability/python/layers/conv_variational_test.py
(Apache License 2.0). Each `test_<name>` keeps the name and the assertions of
TFP's `<name>` (the 1D/2D/3D and Reparameterization/Flipout variants of one
TFP helper are a parametrized test); TFP's channels-first and channels-last
test classes become the `data_format` fixture.

Mapping: `tfp.layers.Convolution{1,2,3}D{Reparameterization,Flipout}(...)` is
`jdl.keras.Conv{1,2,3}D(..., estimator="reparam" / "flipout")` with the same
tfp.layers hooks; the kernel is `[*kernel_size, in, filters]` in both. TFP
monkeypatches TF's `Convolution` op so that channels-first runs on CPU;
jdlayers supports channels-first itself, and the expected outputs are
computed here in channels-last. Where TFP relies on tfp.layers' default bias
(a point mass without prior, hence without KL term), the port passes those
defaults explicitly (`TFP_DEFAULT_BIAS`).

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
                            regime_fixture, uniform)

regime = regime_fixture(EAGER_REGIMES)

RANKS = {"1D": 1, "2D": 2, "3D": 3}
ESTIMATORS = {"Reparameterization": "reparam", "Flipout": "flipout"}
KINDS = [(r, e) for e in ESTIMATORS for r in RANKS]
KIND_IDS = [f"Convolution{r}{e}" for r, e in KINDS]

TFP_DEFAULT_BIAS = dict(
    bias_posterior_fn=tfp.layers.util.default_mean_field_normal_fn(
        is_singular=True),
    bias_prior_fn=None)


@pytest.fixture(params=["channels_first", "channels_last"])
def data_format(request):
  return request.param


def layer_class(rank, estimator):
  cls = {"1D": jdl.keras.Conv1D, "2D": jdl.keras.Conv2D,
         "3D": jdl.keras.Conv3D}[rank]
  return functools.partial(cls, estimator=ESTIMATORS[estimator])


def channels_last_to_first(shape):
  return shape[:1] + shape[-1:] + shape[1:-1]


def channels_first_to_last(shape):
  return shape[:1] + shape[2:] + shape[1:2]


def maybe_transpose_tensor(tensor, data_format):
  if data_format == "channels_first":
    order = channels_last_to_first(list(range(tensor.shape.rank)))
    return tf.transpose(a=tensor, perm=order)
  return tensor


def to_channels_last(tensor, data_format):
  if data_format == "channels_first":
    order = channels_first_to_last(list(range(tensor.shape.rank)))
    return tf.transpose(a=tensor, perm=order)
  return tensor


def _inputs(rank, batch_size, seed, size=3, channels=1):
  return uniform([batch_size] + [size] * RANKS[rank] + [channels], seed)


def conv_channels_last(inputs, kernel):
  """TFP's `nn_ops.Convolution(..., padding='SAME')` in channels-last."""
  return tf.nn.convolution(inputs, kernel, padding="SAME")


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_testKerasLayer(regime, data_format, kind):
  """TFP's testKerasLayerConvolution{1,2,3}D{Reparameterization,Flipout}."""
  input_shape = {"1D": (2, 3, 1), "2D": (2, 3, 3, 1),
                 "3D": (2, 3, 3, 3, 1)}[kind[0]]
  if data_format == "channels_first":
    input_shape = channels_last_to_first(input_shape)
  # TFP skips this test "until the TF and Keras has a new PIP"; the check
  # itself applies to Keras 3 and runs here.
  keras_layer_test(layer_class(*kind),
                   {"filters": 2, "kernel_size": 3,
                    "kernel_posterior_fn": kernel_posterior_fn,
                    "kernel_prior_fn": None, "bias_posterior_fn": None,
                    "bias_prior_fn": None, "data_format": data_format},
                   input_shape)


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_testKLPenaltyKernel(regime, data_format, kind):
  """TFP's testKLPenaltyKernelConvolution{1,2,3}D{...}."""
  layer = layer_class(*kind)(filters=2, kernel_size=3,
                             data_format=data_format, **TFP_DEFAULT_BIAS)
  inputs = maybe_transpose_tensor(_inputs(kind[0], 2, 1), data_format)

  # No keys.
  input_dependent_losses = layer.losses
  assert len(layer.losses) == 0
  assert layer.losses == input_dependent_losses

  _ = layer(inputs)

  # Yes keys.
  input_dependent_losses = layer.losses
  assert len(layer.losses) == 1
  assert layer.losses[0].shape == ()
  assert len(layer.losses) == len(input_dependent_losses)
  for a, b in zip(layer.losses, input_dependent_losses):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_testKLPenaltyBoth(regime, data_format, kind):
  """TFP's testKLPenaltyBothConvolution{1,2,3}D{...}."""
  layer = layer_class(*kind)(
      filters=2,
      kernel_size=3,
      bias_posterior_fn=tfp.layers.util.default_mean_field_normal_fn(),
      bias_prior_fn=tfp.layers.util.default_multivariate_normal_fn,
      data_format=data_format)
  inputs = maybe_transpose_tensor(_inputs(kind[0], 2, 1), data_format)

  # No keys.
  assert len(layer.losses) == 0

  _ = layer(inputs)

  # Yes keys.
  assert len(layer.losses) == 2
  assert layer.losses[0].shape == ()
  assert layer.losses[1].shape == ()


def _conv_set_up(rank, estimator, data_format, batch_size, size, channels,
                 filters, inputs=None, **kwargs):
  """TFP's `_testConvSetUp` (depth = height = width = `size`)."""
  seed = Counter()
  if inputs is None:
    inputs = _inputs(rank, batch_size, seed(), size, channels)
  else:
    seed()
  inputs = maybe_transpose_tensor(inputs, data_format)
  kernel_size = (2,) * RANKS[rank]

  kernel_shape = list(kernel_size) + [channels, filters]
  kernel_posterior = MockDistribution(
      loc=uniform(kernel_shape, seed()),
      scale=uniform(kernel_shape, seed()),
      result_log_prob=uniform(kernel_shape, seed()),
      result_sample=uniform(kernel_shape, seed()))
  kernel_prior = MockDistribution(
      result_log_prob=uniform(kernel_shape, seed()),
      result_sample=uniform(kernel_shape, seed()))
  kernel_divergence = MockKLDivergence(result=uniform([], seed()))

  bias_size = [filters]
  bias_posterior = MockDistribution(
      result_log_prob=uniform(bias_size, seed()),
      result_sample=uniform(bias_size, seed()))
  bias_prior = MockDistribution(
      result_log_prob=uniform(bias_size, seed()),
      result_sample=uniform(bias_size, seed()))
  bias_divergence = MockKLDivergence(result=uniform([], seed()))

  layer = layer_class(rank, estimator)(
      filters=filters,
      kernel_size=kernel_size,
      padding="SAME",
      kernel_posterior_fn=lambda *args: kernel_posterior,
      kernel_posterior_tensor_fn=lambda d: d.sample(seed=42),
      kernel_prior_fn=lambda *args: kernel_prior,
      kernel_divergence_fn=kernel_divergence,
      bias_posterior_fn=lambda *args: bias_posterior,
      bias_posterior_tensor_fn=lambda d: d.sample(seed=43),
      bias_prior_fn=lambda *args: bias_prior,
      bias_divergence_fn=bias_divergence,
      data_format=data_format,
      **kwargs)

  outputs = layer(inputs)

  kl_penalty = layer.losses
  return (kernel_posterior, kernel_prior, kernel_divergence,
          bias_posterior, bias_prior, bias_divergence,
          layer, inputs, outputs, kl_penalty)


@pytest.mark.parametrize("rank", list(RANKS))
def test_testConvolutionReparameterization(regime, data_format, rank):
  """TFP's testConvolution{1,2,3}DReparameterization."""
  batch_size, size, channels, filters = 2, 4, 3, 5
  (kernel_posterior, kernel_prior, kernel_divergence,
   bias_posterior, bias_prior, bias_divergence, layer, inputs,
   outputs, kl_penalty) = _conv_set_up(
       rank, "Reparameterization", data_format, batch_size, size, channels,
       filters)

  expected_outputs = conv_channels_last(
      to_channels_last(inputs, data_format), kernel_posterior.result_sample)
  expected_outputs = expected_outputs + bias_posterior.result_sample

  np.testing.assert_allclose(kernel_posterior.result_sample,
                             layer.kernel_posterior_tensor, rtol=1e-6)
  np.testing.assert_allclose(bias_posterior.result_sample,
                             layer.bias_posterior_tensor, rtol=1e-6)
  np.testing.assert_allclose(expected_outputs,
                             to_channels_last(outputs, data_format),
                             rtol=1e-6)
  np.testing.assert_allclose(kernel_divergence.result, kl_penalty[0],
                             rtol=1e-6)
  np.testing.assert_allclose(bias_divergence.result, kl_penalty[1],
                             rtol=1e-6)

  assert_divergence_args(kernel_divergence, [
      kernel_posterior, kernel_prior, kernel_posterior.result_sample])
  assert_divergence_args(bias_divergence, [
      bias_posterior, bias_prior, bias_posterior.result_sample])


@pytest.mark.parametrize("rank", list(RANKS))
def test_testConvolutionFlipout(regime, data_format, rank):
  """TFP's testConvolution{1,2,3}DFlipout.

  TFP: outputs = conv(x, loc) + s_out * conv(x * s_in, delta) + bias, with
  one perturbation `delta ~ Normal(0, scale)` per call and Rademacher signs
  `s_in` [batch, channels], `s_out` [batch, filters] shared over the spatial
  dims. TFP rebuilds its layer's random stream to compute that exactly;
  jdlayers' stream is its own, so the formula is checked through properties
  that hold for any stream: on inputs `c_i * u` placed in one channel `k`
  (`u` a fixed spatial pattern), the perturbation of example `i` divided by
  `c_i` is `+-conv(u e_k, delta)` with one sign per (example, filter), and
  those signs vary across examples (all 40 examples of a channel sharing a
  sign has probability 2**-39 per (channel, filter) for a correct layer).
  """
  batch_size, size, channels, filters = 2, 4, 3, 5
  repeats = 40
  n = channels * repeats
  k_of = np.arange(n) % channels
  c = 0.5 + uniform([n], 0).numpy()
  spatial = [size] * RANKS[rank]
  u = uniform(spatial, 1).numpy() + 0.5
  x = np.zeros([n] + spatial + [channels], np.float32)
  for i in range(n):
    x[i, ..., k_of[i]] = c[i] * u
  (kernel_posterior, kernel_prior, kernel_divergence,
   bias_posterior, bias_prior, bias_divergence, layer, inputs,
   outputs, kl_penalty) = _conv_set_up(
       rank, "Flipout", data_format, batch_size, size, channels, filters,
       inputs=tf.constant(x), seed=44)

  mean = conv_channels_last(
      to_channels_last(inputs, data_format),
      kernel_posterior.distribution.loc) + bias_posterior.result_sample
  pert = (to_channels_last(outputs, data_format) - mean).numpy()
  pert /= c.reshape([n] + [1] * (RANKS[rank] + 1))
  axes = tuple(range(1, RANKS[rank] + 1))
  for k in range(channels):
    rows = pert[k_of == k]
    ref = rows[:1]
    signs = np.sign(np.sum(rows * ref, axis=axes, keepdims=True))
    np.testing.assert_allclose(rows, signs * ref, rtol=1e-4, atol=1e-5)
    assert np.all(np.any(signs != signs[:1], axis=0))

  np.testing.assert_allclose(bias_posterior.result_sample,
                             layer.bias_posterior_tensor, rtol=1e-6)
  np.testing.assert_allclose(kernel_divergence.result, kl_penalty[0],
                             rtol=1e-6)
  np.testing.assert_allclose(bias_divergence.result, kl_penalty[1],
                             rtol=1e-6)

  assert_divergence_args(kernel_divergence, [
      kernel_posterior, kernel_prior, None])
  assert_divergence_args(bias_divergence, [
      bias_posterior, bias_prior, bias_posterior.result_sample])


def test_testRandomConvolution1DFlipout(regime, data_format):
  batch_size, size, channels, filters = 2, 4, 3, 5
  seed = Counter()
  inputs = maybe_transpose_tensor(
      _inputs("1D", batch_size, seed(), size, channels), data_format)
  kernel_shape = [2, channels, filters]
  bias_size = [filters]

  kernel_posterior = MockDistribution(
      loc=uniform(kernel_shape, seed()),
      scale=uniform(kernel_shape, seed()),
      result_log_prob=uniform(kernel_shape, seed()),
      result_sample=uniform(kernel_shape, seed()))
  bias_posterior = MockDistribution(
      loc=uniform(bias_size, seed()),
      scale=uniform(bias_size, seed()),
      result_log_prob=uniform(bias_size, seed()),
      result_sample=uniform(bias_size, seed()))

  def make(layer_seed):
    return layer_class("1D", "Flipout")(
        filters=filters,
        kernel_size=(2,),
        padding="SAME",
        kernel_posterior_fn=lambda *args: kernel_posterior,
        kernel_posterior_tensor_fn=lambda d: d.sample(seed=42),
        kernel_divergence_fn=None,
        bias_posterior_fn=lambda *args: bias_posterior,
        bias_posterior_tensor_fn=lambda d: d.sample(seed=43),
        bias_divergence_fn=None,
        seed=layer_seed,
        data_format=data_format)

  outputs_one = np.asarray(make(44)(inputs))
  outputs_two = np.asarray(make(45)(inputs))

  assert (np.sum(np.isclose(outputs_one, outputs_two)) <
          np.prod(outputs_one.shape))


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_testSequentialConvolution(regime, data_format, kind):
  """TFP's testSequentialConvolution{1,2,3}D{Reparameterization,Flipout}."""
  rank = RANKS[kind[0]]
  inputs = uniform([2] + [3] * rank + [1], 0)
  outputs = uniform([2] + [1] * rank + [2], 1)
  inputs = maybe_transpose_tensor(inputs, data_format)
  outputs = maybe_transpose_tensor(outputs, data_format)

  net = keras.Sequential([
      keras.Input(inputs.shape[1:]),  # TFP: `input_shape=` of the layer
      layer_class(*kind)(filters=2, kernel_size=3, data_format=data_format),
      layer_class(*kind)(filters=2, kernel_size=1, data_format=data_format)])

  # run_eagerly: TFP's "eager_no_tf_function" regime; tracing the train step
  # of these 12 models costs seconds each on CPU. The compiled (tf.function)
  # train step is covered by test_tfp_layers_dense_variational's
  # testDenseLayersInSequential.
  net.compile(loss="mse", optimizer="adam", run_eagerly=True)
  net.fit(inputs, outputs, batch_size=2, epochs=3, steps_per_epoch=2,
          verbose=0)

  batch_output = np.asarray(net(inputs))
  assert list(outputs.shape) == list(batch_output.shape)


def test_testGradients(regime, data_format):
  net = keras.Sequential([
      layer_class("1D", "Flipout")(1, 1, data_format=data_format,
                                   **TFP_DEFAULT_BIAS),
      layer_class("1D", "Reparameterization")(1, 1, data_format=data_format,
                                              **TFP_DEFAULT_BIAS),
  ])
  with tf.GradientTape() as tape:
    y = net(tf.zeros([1, 1, 1]))
  grads = tape.gradient(y, net.trainable_variables)
  assert len(grads) == 6
  assert all(g is not None for g in grads)
