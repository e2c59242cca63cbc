"""TFP's `tfp.experimental.nn` transposed-convolution tests, ported to jdlayers.

Origin: github.com/tensorflow/probability, tag v0.25.0,
tensorflow_probability/python/experimental/nn/convolutional_transpose_layers_test.py
(Apache License 2.0). Each `test_<name>` keeps the name and the assertions of
TFP's `<name>` (prefixed by TFP's test class, which share method names).

Mapping: `tfn.ConvolutionVariational*(input_size, output_size, filter_shape)`
and `tfn.ConvolutionTransposeVariational*(...)` are jdlayers `Conv2D` /
`ConvTranspose2D(output_size, filter_shape, input_size)` with tfn's default
prior (`_peers_testlib.nn_prior`), fitted by `jdl.vi.fit` with estimator
"reparam" / "flipout". Sizes are shrunk (28x28 images -> 8x8, 32/64
channels -> 4/8, 128 examples -> 4) to keep the suite fast; the
autoencoder's architecture (conv, flatten, affine bottleneck of 2, two
transposed convs, conv) and the training loop are TFP's.
"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import jdlayers as jdl

from _peers_testlib import FIT_REGIMES, nn_prior, regime_fixture, run_bnn_fit

tfb = tfp.bijectors
tfd = tfp.distributions

eager_regime = regime_fixture(FIT_REGIMES)


def run_bnn_test(estimator):
  """TFP's `BnnEndToEnd.run_bnn_test` (a Bayesian autoencoder); every conv
  and transposed conv uses `estimator`, the affine bottleneck "reparam"."""
  # 1  Prepare Dataset
  train_size = 4  # TFP: 128 (2 steps of 2 examples are run either way).
  batch_size = 2
  x = np.random.default_rng(0).uniform(
      0., 1., [train_size, 8, 8, 1]).astype(np.float32)  # TFP: 28x28
  input_channels = int(x.shape[-1])

  # 2  Specify Model
  bottleneck_size = 2
  conv = dict(padding="same", activation="elu", prior=nn_prior())
  bnn = jdl.Sequential(
      jdl.Conv2D(4, 5, input_channels, strides=2, **conv),  # [b, 4, 4, 4]
      jdl.Flatten(),  # [b, 4 * 4 * 4]
      jdl.Affine(bottleneck_size, 4 * 4 * 4, prior=nn_prior()),  # [b, 2]
      jdl.Lambda(lambda x: x[..., tf.newaxis, tf.newaxis, :]),  # [b, 1, 1, 2]
      # TFP: filter 7, "valid" -> [b, 7, 7, 64]; filter 2 -> [b, 2, 2, 8].
      jdl.ConvTranspose2D(8, 2, 2, strides=1,
                          **dict(conv, padding="valid")),  # [b, 2, 2, 8]
      jdl.ConvTranspose2D(4, 4, 8, strides=4, **conv),  # [b, 8, 8, 4]
      jdl.Conv2D(1, 2, 4, strides=1, **conv),  # [b, 8, 8, 1]
      name="bayesian_autoencoder")
  # TFP: `Independent(Sigmoid()(Normal(loc, scale)), 3)` with a trainable
  # `scale` (a point estimate here, see `run_bnn_fit`).
  likelihood = jdl.models.General(
      lambda loc, scale: tfd.Independent(  # pylint: disable=g-long-lambda
          tfb.Sigmoid()(tfd.Normal(loc, scale)), reinterpreted_batch_ndims=3),
      scale=tfd.LogNormal(0., 1.))

  # 3  Train.
  estimators = {"2": "reparam", "*": estimator}
  run_bnn_fit(bnn, likelihood, x, x, estimators, train_size=train_size,
              batch_size=batch_size)


def test_ConvolutionTransposeTest_test_works_correctly():
  pytest.skip("TFP's ConvolutionTransposeTest.test_works_correctly is empty "
              "(`pass`).")


# TFP skips these in graph mode ("we simulate user behavior"): eager only
# (see FIT_REGIMES).

def test_ConvolutionTransposeVariationalReparameterizationTest_test_works_correctly(  # pylint: disable=line-too-long
    eager_regime):
  run_bnn_test("reparam")


def test_ConvolutionTransposeVariationalFlipoutTest_test_works_correctly(
    eager_regime):
  run_bnn_test("flipout")
