"""Regression tests for bugs found while writing the property tests."""

import numpy as np
import pytest
import tensorflow as tf

import jdlayers as jdl
from jdlayers import ops


@pytest.mark.parametrize("rank", [1, 2])
@pytest.mark.parametrize("mode", ["Max", "Avg"])
def test_pool_strides_larger_than_window_with_same_padding(rank, mode):
  # tf.nn.pool rejects strides > window with "SAME"; Keras (and we) do not.
  layer = getattr(jdl, f"{mode}Pool{rank}D")(1, 2, padding="same").sample()
  x = np.random.default_rng(0).standard_normal([2] + [5] * rank + [3])
  y = layer(x.astype(np.float32))
  assert y.shape == [2] + [3] * rank + [3]
  np.testing.assert_allclose(y, x[(slice(None),) + (slice(None, None, 2),) *
                                  rank].astype(np.float32))


@pytest.mark.parametrize("kw", [
    dict(size=2, dilations=2, padding="same", output_padding=1),
    dict(size=3, dilations=2, padding="valid", output_padding=1),
    dict(size=3, strides=1, padding="same", output_padding=1),
    dict(size=2, strides=2, padding="valid", output_padding=2),
])
def test_output_padding_that_gives_no_valid_length_is_rejected(kw):
  # Previously accepted (output_padding < max(strides, dilations)) and then
  # failed inside TensorFlow at call time.
  with pytest.raises(ValueError, match="output_padding"):
    jdl.ConvTranspose1D(2, in_channels=3, **kw)


def test_output_padding_one_with_stride_one_even_dilated_kernel():
  # size 2, dilation 3: dilated size 4 (even) with padding "same" needs
  # output_padding=1 to give back the input length.
  dist = jdl.ConvTranspose1D(2, 2, 3, dilations=3, padding="same",
                             output_padding=1, use_bias=False)
  f = dist.sample(seed=(0, 1))
  x = np.random.default_rng(1).standard_normal([2, 6, 3]).astype(np.float32)
  y = f(x)
  n = ops.conv_transpose_output_length(6, 2, 1, 3, "SAME", 1)
  assert n == 6 and y.shape == [2, 6, 2]
  # XLA: TF's Eigen CPU kernel (oneDNN off) refuses dilated transposes.
  ref = tf.function(
      lambda a, k: tf.nn.conv_transpose(a, k, [2, 6, 2], 1, "SAME",
                                        dilations=3),
      jit_compile=True)(x, f.kernel)
  np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_a_sampled_layer_can_be_wrapped_in_tf_function():
  # `tf.function(f)` keys its cache by weak reference; sampled layers have
  # __slots__ and raised "cannot create weak reference" before.
  f = jdl.ConvTranspose2D(4, 3, 2, dilations=2).sample(seed=0)
  x = tf.ones([1, 5, 5, 2])
  for jit in (False, True):
    np.testing.assert_allclose(tf.function(f, jit_compile=jit)(x), f(x),
                               rtol=1e-5, atol=1e-5)
  net = jdl.Sequential(jdl.Affine(3, 2, activation="tanh"), jdl.Affine(1, 3))
  fs = net.sample(4, seed=1)
  np.testing.assert_allclose(tf.function(fs)(tf.ones([5, 2])),
                             fs(tf.ones([5, 2])), rtol=1e-6)
