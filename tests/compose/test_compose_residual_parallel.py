"""Residual and Parallel: shapes, manual combination, log_prob, round trips."""

import numpy as np
import pytest
import tensorflow as tf

import jdlayers as jdl
from _compose_testlib import assert_same_sample, check_composite, leaves


def _x(shape, dtype=tf.float32, seed=1):
  return tf.random.stateless_normal(shape, [seed, 0], dtype=dtype)


# ---------------------------------------------------------------- Residual --

@pytest.mark.parametrize("sample_shape", [(), (4,), (2, 3)])
def test_residual_dense(sample_shape):
  dist = jdl.Residual(jdl.Sequential(jdl.Affine(4, 4), tf.nn.relu))
  x = _x([5, 4])
  value = check_composite(dist, x, sample_shape, [5, 4])
  inner = value.layers[0]
  np.testing.assert_allclose(value(x), x + inner(x), rtol=1e-6)


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_residual_conv(dtype):
  dist = jdl.Residual(jdl.Conv2D(3, 3, 3, dtype, activation="tanh"))
  x = _x([2, 5, 5, 3], dtype)
  value = check_composite(dist, x, (4,), [2, 5, 5, 3], dtype=dtype)
  w, b = value.layers[0].kernel, value.layers[0].bias
  for i in range(4):
    conv = tf.nn.conv2d(x, w[i], 1, "SAME") + b[i]
    np.testing.assert_allclose(value(x)[i], x + tf.tanh(conv), rtol=1e-5,
                               atol=1e-5)


def test_residual_log_prob_is_inner_log_prob():
  inner = jdl.Sequential(jdl.Affine(3, 3), tf.nn.relu, jdl.Affine(3, 3))
  dist = jdl.Residual(inner)
  value = dist.sample(5, seed=(1, 2))
  np.testing.assert_allclose(dist.log_prob(value),
                             inner.log_prob(value.layers[0]), rtol=1e-6)
  assert_same_sample(dist)


def test_residual_shape_mismatch_raises():
  value = jdl.Residual(jdl.Affine(3, 4)).sample(seed=(0, 0))
  with pytest.raises(ValueError, match=r"Residual.*\[5, 3\].*\[5, 4\]"):
    value(tf.ones([5, 4]))


def test_residual_stack_in_sequential():
  block = lambda: jdl.Residual(jdl.Sequential(jdl.Affine(4, 4), tf.nn.tanh))
  dist = jdl.Sequential(jdl.Affine(4, 2), block(), block(), jdl.Affine(1, 4))
  check_composite(dist, _x([6, 2]), (3,), [6, 1])


# ---------------------------------------------------------------- Parallel --

@pytest.mark.parametrize("sample_shape", [(), (4,), (2, 3)])
def test_parallel_concat_dense(sample_shape):
  dist = jdl.Parallel(jdl.Affine(2, 3), jdl.Sequential(jdl.Affine(5, 3),
                                                       tf.nn.tanh))
  x = _x([7, 3])
  value = check_composite(dist, x, sample_shape, [7, 7])
  a, b = value.layers
  np.testing.assert_array_equal(value(x), tf.concat([a(x), b(x)], -1))


@pytest.mark.parametrize("sample_shape", [(), (4,)])
def test_parallel_sum(sample_shape):
  dist = jdl.Parallel(jdl.Affine(2, 3), jdl.Affine(2, 3, use_bias=False),
                      combine="sum")
  x = _x([7, 3])
  value = check_composite(dist, x, sample_shape, [7, 2])
  a, b = value.layers
  np.testing.assert_allclose(value(x), a(x) + b(x), rtol=1e-6)


def test_parallel_concat_with_static_branch_broadcasts_sample_dims():
  # The identity branch has no sample dims; concat broadcasts it over S.
  dist = jdl.Parallel(jdl.Affine(2, 3), lambda t: t)
  x = _x([7, 3])
  value = check_composite(dist, x, (4,), [7, 5])
  y = value(x)
  for i in range(4):
    np.testing.assert_array_equal(y[i, :, 2:], x)


def test_parallel_sum_with_static_branch():
  dist = jdl.Parallel(jdl.Affine(3, 3), tf.nn.relu, combine="sum")
  x = _x([7, 3])
  value = check_composite(dist, x, (2,), [7, 3])
  np.testing.assert_allclose(value(x), value.layers[0](x) + tf.nn.relu(x),
                             rtol=1e-6)


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_parallel_conv_channels(dtype):
  dist = jdl.Parallel(jdl.Conv2D(2, 1, 3, dtype), jdl.Conv2D(4, 3, 3, dtype),
                      jdl.MaxPool2D(3, strides=1, padding="same"))
  x = _x([2, 5, 5, 3], dtype)
  value = check_composite(dist, x, (3,), [2, 5, 5, 9], dtype=dtype)
  a, b, c = value.layers
  expected = tf.concat([a(x), b(x), tf.broadcast_to(c(x), [3, 2, 5, 5, 3])],
                       -1)
  np.testing.assert_array_equal(value(x), expected)
  assert dist.output_feature_ndims == 3


def test_parallel_concat_other_axis():
  dist = jdl.Parallel(jdl.Conv1D(2, 3, 1), jdl.Conv1D(2, 3, 1), axis=-2)
  value = dist.sample(3, seed=(0, 0))
  y = value(_x([4, 6, 1]))
  assert y.shape.as_list() == [3, 4, 12, 2]


def test_nested_composites():
  inception = jdl.Parallel(
      jdl.Sequential(jdl.Conv2D(2, 1, 3), tf.nn.relu),
      jdl.Residual(jdl.Conv2D(3, 3, 3)),
      jdl.Parallel(jdl.Conv2D(1, 3, 3), jdl.Conv2D(1, 1, 3), combine="sum"))
  dist = jdl.Sequential(inception, jdl.AvgPool2D(2), jdl.Flatten(),
                        jdl.Affine(2, 2 * 2 * 6))
  assert dist.layers[2].feature_ndims == 3
  x = _x([3, 4, 4, 3])
  value = check_composite(dist, x, (2,), [3, 2])
  # Four convs (kernel + bias each) and the Affine (weights + bias).
  assert len(leaves(value)) == 10
  check_composite(dist, _x([3, 4, 4, 3], tf.float32, seed=4), (), [3, 2])
  assert_same_sample(dist)


def test_parallel_argument_errors():
  with pytest.raises(ValueError, match=r"Parallel: `combine`.*'mean'"):
    jdl.Parallel(jdl.Affine(2, 2), combine="mean")
  with pytest.raises(ValueError, match=r"Parallel: `axis`.*1"):
    jdl.Parallel(jdl.Affine(2, 2), axis=1)
  with pytest.raises(ValueError, match="at least one branch"):
    jdl.Parallel()
  # Parameter-free branches make a parameter-free block, not an error.
  block = jdl.Parallel(tf.nn.relu, tf.nn.tanh)
  value = block.sample(2, seed=0)
  assert tf.nest.flatten(value) == [] and block.log_prob(value).shape == [2]


def test_parallel_concat_incompatible_branches_raise():
  dist = jdl.Parallel(jdl.Conv2D(2, 3, 1, padding="valid"),
                      jdl.Conv2D(2, 3, 1))
  value = dist.sample(seed=(0, 0))
  with pytest.raises(ValueError, match=r"Parallel.*branch output shapes"):
    value(tf.ones([2, 6, 6, 1]))
