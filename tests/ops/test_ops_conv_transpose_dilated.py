"""float64 dilated transposed convolutions (TF's CPU kernel lacks them)."""

import numpy as np
import pytest
import tensorflow as tf

from jdlayers import ops


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_float64_dilated_conv_transpose_equals_float32(rank):
  rng = np.random.default_rng(rank)
  size, dil = [3, 2, 2][:rank], [2, 3, 1][:rank]
  x = rng.normal(size=[2, 2] + [4] * rank + [3])          # S=2 per-sample
  k = rng.normal(size=[2] + size + [5, 3])
  kw = dict(rank=rank, strides=[1] * rank, padding="SAME", dilations=dil)
  y64 = ops.conv_transpose(tf.constant(x), tf.constant(k), **kw)
  y32 = ops.conv_transpose(tf.constant(x, tf.float32),
                           tf.constant(k, tf.float32), **kw)
  assert y64.dtype == tf.float64 and y64.shape == y32.shape
  np.testing.assert_allclose(y64.numpy(), y32.numpy(), rtol=1e-4, atol=1e-4)
  with tf.GradientTape() as tape:
    kt = tf.constant(k)
    tape.watch(kt)
    loss = tf.reduce_sum(ops.conv_transpose(tf.constant(x), kt, **kw) ** 2)
  assert tape.gradient(loss, kt).shape == k.shape
