"""TFP's `tfp.experimental.nn` ConvolutionV2 tests, ported to jdlayers.

Origin: github.com/tensorflow/probability, tag v0.25.0,
tensorflow_probability/python/experimental/nn/convolutional_layers_v2_test.py
(Apache License 2.0). Each `test_<name>` keeps the name and the assertions of
TFP's `<name>` (prefixed by TFP's test class, which share method names);
`test_all_tf_execution_regimes` becomes the `regime` fixture.

Mapping: `tfn.ConvolutionV2(input_size, output_size, filter_shape)` (variables,
batch shape `B`) is a jdlayers `Conv2D(output_size, filter_shape,
input_size)` sampled with sample shape `B`; the variational convolutions are
a jdlayers `Conv2D` with tfn's default prior (`_peers_testlib.nn_prior`)
fitted by `jdl.vi.fit` with estimator "reparam" / "flipout". Adaptations to
jdlayers' documented layout (the data batch `N` next to the features, sample
dims to its left) are marked "jdlayers layout" where they happen. Sizes are
shrunk (28x28 images -> 8x8, 32 channels -> 4, 128 examples -> 4) to keep
the suite fast; the architecture and the training loop are TFP's.
"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import jdlayers as jdl

from _peers_testlib import (ALL_REGIMES, FIT_REGIMES, nn_prior,
                            regime_fixture, run_bnn_fit)

tfb = tfp.bijectors
tfd = tfp.distributions

regime = regime_fixture(ALL_REGIMES)
eager_regime = regime_fixture(FIT_REGIMES)


def run_bnn_test(estimator):
  """TFP's `BnnEndToEnd.run_bnn_test`; `make_conv` is the estimator (rank 2,
  "same" padding, elu)."""
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

  # 3  Train. TFP's affine layer is always `AffineVariationalReparameterization`.
  run_bnn_fit(bnn, likelihood, x, y, {"0": estimator, "2": "reparam"},
              train_size=train_size, batch_size=batch_size)


# -- ConvolutionV2Test ------------------------------------------------------------------

def test_ConvolutionV2Test_test_works_correctly():
  pytest.skip("TFP's ConvolutionV2Test.test_works_correctly is empty (`pass`).")


def test_ConvolutionV2Test_test_non_bayesian_conv(regime):
  # tfn.ConvolutionV2(1, 5, 5, strides=2, padding='same')
  x = jdl.Conv2D(5, 5, 1, strides=2, padding="same").sample(seed=0)(
      tf.random.stateless_normal([3, 28, 28, 1], seed=[0, 1]))
  assert x.shape == [3, 14, 14, 5]


def test_ConvolutionV2Test_test_bayesian_conv(regime):
  # tfn.ConvolutionV2(1, 5, 5, strides=2, padding='same', batch_shape=[10],
  # make_kernel_bias_fn=<Normal(0, 1) draws>): 10 sampled kernels and biases
  # (jdlayers' default prior is that Normal(0, 1)).
  nn = jdl.Conv2D(5, 5, 1, strides=2, padding="same").sample([10], seed=0)
  # jdlayers layout: TFP tiles the input to `[3, 10, 28, 28, 1]` (data batch left
  # of the kernel batch) and gets `[3, 10, 14, 14, 5]`; jdlayers applies the
  # 10 kernels to `[3, 28, 28, 1]` as it is and puts the samples left of the
  # data batch: `[10, 3, 14, 14, 5]`.
  x = nn(tf.random.stateless_normal([3, 28, 28, 1], seed=[0, 1]))
  assert x.shape == [10, 3, 14, 14, 5]


# -- ConvolutionVariationalReparameterizationV2Test / ConvolutionVariationalFlipoutV2Test --------
# TFP skips these in graph mode ("we simulate user behavior"): eager only
# (see FIT_REGIMES).

def test_ConvolutionVariationalReparameterizationV2Test_test_works_correctly(eager_regime):
  run_bnn_test("reparam")


def test_ConvolutionVariationalFlipoutV2Test_test_works_correctly(eager_regime):
  run_bnn_test("flipout")
