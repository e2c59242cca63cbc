"""TFP's `tfp.experimental.nn` affine layer tests, ported to jdlayers.

Origin: github.com/tensorflow/probability, tag v0.25.0,
tensorflow_probability/python/experimental/nn/affine_layers_test.py
(Apache License 2.0). Each `test_<name>` keeps the name and the assertions of
TFP's `<name>` (`<Class>_` prefixed where TFP's test classes share a method
name); `test_all_tf_execution_regimes` becomes the `regime` fixture.

Mapping: `tfn.Affine(input_size, output_size, batch_shape=B)` (variables of
batch shape `B`) is a jdlayers `Affine(output_size, input_size)` sampled with
sample shape `B`; `tfn.AffineVariational{Reparameterization, Flipout,
ReparameterizationLocal}` are a jdlayers `Affine` with tfn's default prior
(`_peers_testlib.nn_prior`) fitted by `jdl.vi.fit` with estimator
"reparam" / "flipout" / "local". Adaptations to jdlayers' documented layout
(the data batch `N` next to the features, sample dims to its left) are marked
"jdlayers layout" where they happen. Sizes are shrunk (28x28 images -> 8x8,
32 channels -> 4, 128 examples -> 4) to keep the suite fast; the
architecture and the training loop are TFP's.
"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import jdlayers as jdl

from _peers_testlib import (ALL_REGIMES, FIT_REGIMES, broadcast_shape,
                            nn_prior, regime_fixture, run_bnn_fit)

tfb = tfp.bijectors
tfd = tfp.distributions

regime = regime_fixture(ALL_REGIMES)
eager_regime = regime_fixture(FIT_REGIMES)


def run_bnn_test(estimator):
  """TFP's `BnnEndToEnd.run_bnn_test`; `make_affine` is the estimator."""
  # 1  Prepare Dataset
  train_size = 4  # TFP: 128 (2 steps of 2 examples are run either way).
  batch_size = 2
  evidence_shape = [8, 8, 1]  # TFP: [28, 28, 1]
  target_shape = [10]
  rng = np.random.default_rng(0)
  x = rng.uniform(0., 1., [train_size] + evidence_shape).astype(np.float32)
  logits = rng.normal(size=[train_size] + target_shape)
  y = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype(
      np.float32)

  # 2  Specify Model
  channels = 4  # TFP: 32
  bnn = jdl.Sequential(
      jdl.Conv2D(channels, 7, evidence_shape[-1], strides=2, padding="same",
                 activation="elu", prior=nn_prior()),  # [b, 4, 4, 4]
      jdl.Flatten(),  # [b, 4 * 4 * 4]
      jdl.Affine(int(np.prod(target_shape)) - 1, 4 * 4 * channels,
                 prior=nn_prior()),  # [b, 9]
      name="bayesian_autoencoder")
  # TFP: `SoftmaxCentered()(Independent(Normal(loc, scale), 1))` with a
  # trainable `scale` (a point estimate here, see `run_bnn_fit`).
  likelihood = jdl.models.General(
      lambda loc, scale: tfb.SoftmaxCentered()(  # pylint: disable=g-long-lambda
          tfd.Independent(tfd.Normal(loc, scale), reinterpreted_batch_ndims=1)),
      observation_shape=lambda s: tuple(s[:-1]) + (s[-1] + 1,),
      scale=tfd.LogNormal(0., 1.))

  # 3  Train. TFP's conv layer is always `ConvolutionVariationalReparameterization`.
  run_bnn_fit(bnn, likelihood, x, y, {"0": "reparam", "2": estimator},
              train_size=train_size, batch_size=batch_size)


# -- AffineTest ----------------------------------------------------------------

def _make_bayesian_kernel_bias(num_samples, batch_shape=()):
  """TFP's `make_bayesian_kernel_bias`: `num_samples` draws of `Normal(0, 1)`
  kernels and biases (jdlayers' default prior) with the layer's batch."""
  return [num_samples] + list(batch_shape)


def test_AffineTest_test_dnn_nobayes(regime):
  affine = jdl.Affine(10, 5).sample(seed=0)  # tfn.Affine(5, 10, batch_shape=())
  inputs = tf.zeros([4, 5])
  output = affine(inputs)
  assert output.shape == [4, 10]


def test_AffineTest_test_dnn_bayes(regime):
  num_samples = 3
  inputs = tf.zeros([4, 5])
  affine = jdl.Affine(10, 5).sample(_make_bayesian_kernel_bias(num_samples),
                                    seed=0)
  # jdlayers layout: the anchor feeds `inputs[:, tf.newaxis, :]` to get
  # `[4, 3, 10]` (data batch left of the samples); jdlayers takes `[4, 5]`
  # as it is and gives `[3, 4, 10]` (samples left of the data batch).
  output = affine(inputs)
  assert output.shape == [3, 4, 10]


def test_AffineTest_test_dnn_bayes_mixture(regime):
  num_samples = 3
  num_components = 6
  inputs = tf.zeros([4, 5])
  affine = jdl.Affine(10, 5).sample(
      _make_bayesian_kernel_bias(num_samples, [num_components]), seed=0)
  # jdlayers layout: the anchor's `inputs[:, None, None, :]` -> `[4, 3, 6, 10]`
  # is `[3, 6, 4, 10]` here (samples and components left of the data batch).
  output = affine(inputs)
  assert output.shape == [3, 6, 4, 10]


@pytest.mark.parametrize(
    "input_size,output_size,kernel_batch_shape,input_batch_shape", [
        (12, 3, (), (1,)),  # scalar input batch, scalar kernel batch
        (6, 4, (2, 3), (1,)),  # non-scalar kernel batch
        (3, 5, (), (2, 2)),  # non-scalar input batch
        (3, 3, (2, 3), (8, 1, 1)),  # broadcasting kernel and input batch shapes
        (3, 3, (2, 2), (4, 2, 2)),  # same kernel and input batch shapes
    ])
def test_AffineTest_test_works_correctly(regime, input_size, output_size,
                                         kernel_batch_shape,
                                         input_batch_shape):
  affine = jdl.Affine(output_size, input_size).sample(kernel_batch_shape,
                                                      seed=0)
  # jdlayers layout: the input core is `[N, in]`; an explicit `N=1` next to
  # the features lets every anchor batch dim broadcast against the kernel
  # batch, and the output carries that `N=1` next to `output_size`.
  x = tf.ones(input_batch_shape + (1, input_size), dtype=tf.float32)
  y = affine(x)
  assert y.shape == broadcast_shape(kernel_batch_shape,
                                    input_batch_shape) + [1, output_size]


# -- Affine{VariationalReparameterization, VariationalFlipout,
#    VariationalReparameterizationLocal}Test ---------------------------------
# TFP skips these in graph mode ("we simulate user behavior"): eager only
# (see FIT_REGIMES).

def test_AffineVariationalReparameterizationTest_test_works_correctly(
    eager_regime):
  run_bnn_test("reparam")


def test_AffineVariationalFlipoutTest_test_works_correctly(eager_regime):
  run_bnn_test("flipout")


def test_AffineVariationalReparameterizationLocalTest_test_works_correctly(
    eager_regime):
  run_bnn_test("local")
