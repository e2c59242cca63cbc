"""Dilated transposed convolutions on every CPU, in every mode and dtype.

TF's Eigen CPU kernel refuses `dilations > 1` for transposed convolutions
(oneDNN and XLA accept them in float32); `ops.conv_transpose` must give the
same operator whichever of them this process has. `.ci/run` runs this file
with `TF_ENABLE_ONEDNN_OPTS=0` as well as with the default.
"""

import numpy as np
import pytest
import tensorflow as tf

import jdlayers as jdl
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


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_dilated_conv_transpose_is_the_adjoint_of_dilated_conv(rank, padding,
                                                                dtype):
  # <conv_transpose(x, k), z> == <x, conv(z, k)> for every x, z: an
  # independent reference (forward dilated convolutions work on every CPU).
  rng = np.random.default_rng(10 * rank + len(padding))
  size, dil = [3, 2, 2][:rank], [2, 3, 2][:rank]
  spatial = [5, 4, 3][:rank]
  x = tf.constant(rng.normal(size=[2] + spatial + [3]), dtype)
  k = tf.constant(rng.normal(size=size + [4, 3]), dtype)   # [*size, out, in]
  kw = dict(rank=rank, strides=[1] * rank, padding=padding, dilations=dil)
  y = ops.conv_transpose(x, k, **kw)
  z = tf.constant(rng.normal(size=y.shape), dtype)
  back = ops.conv(z, k, **kw)                               # [*size, in=4, 3]
  assert back.shape == x.shape
  lhs = tf.reduce_sum(y * z).numpy()
  rhs = tf.reduce_sum(x * back).numpy()
  tol = 1e-4 if dtype == tf.float32 else 1e-10
  np.testing.assert_allclose(lhs, rhs, rtol=tol)
  # XLA takes dilations natively: the same numbers under jit_compile.
  y_xla = tf.function(lambda a, b: ops.conv_transpose(a, b, **kw),
                      jit_compile=True)(x, k)
  np.testing.assert_allclose(y_xla.numpy(), y.numpy(), rtol=tol, atol=tol)


def test_dilated_conv_transpose_layer_runs_without_onednn():
  # The reproduction: a raw InvalidArgumentError on CPUs without
  # oneDNN, before the explicit-dilation fallback.
  f = jdl.ConvTranspose2D(4, 3, 2, dilations=2).sample(seed=0)
  assert f(tf.ones([1, 5, 5, 2])).shape == [1, 5, 5, 4]
  fs = jdl.ConvTranspose2D(4, 3, 2, dilations=2).sample(3, seed=0)
  with tf.GradientTape() as tape:
    parts = tf.nest.flatten(fs)
    tape.watch(parts)
    loss = tf.reduce_sum(fs(tf.ones([1, 5, 5, 2])) ** 2)
  assert all(g is not None for g in tape.gradient(loss, parts))
