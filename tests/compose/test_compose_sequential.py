"""Sequential: shapes, manual composition, log_prob, nest round trips."""

import numpy as np
import pytest
import tensorflow as tf

import jdlayers as jdl
from _compose_testlib import (assert_same_sample, check_composite,
                              children_log_prob, leaves)

SAMPLE_SHAPES = [(), (4,), (2, 3)]


def _mlp(dtype):
  return jdl.Sequential(jdl.Affine(8, 3, dtype, activation="tanh"),
                        jdl.Affine(2, 8, dtype))


def _with_lambda(dtype):
  return jdl.Sequential(jdl.Affine(6, 3, dtype), tf.nn.relu,
                        jdl.Lambda(lambda t: 2. * t, dtype),
                        jdl.Affine(1, 6, dtype))


def _cnn(dtype):
  return jdl.Sequential(
      jdl.Conv2D(4, 3, 2, dtype, activation="relu"), jdl.MaxPool2D(2),
      jdl.Flatten(), jdl.Affine(3, 4 * 4 * 4, dtype))


def _cnn_valid(dtype):
  # 9x9 -valid, k3, s2-> 4x4 -avgpool(2)-> 2x2 -> 2*2*3 = 12 features.
  return jdl.Sequential(
      jdl.Conv2D(3, 3, 1, dtype, strides=2, padding="VALID"),
      tf.nn.elu, jdl.AvgPool2D(2), jdl.Flatten(), jdl.Affine(2, 12, dtype))


def _conv1d(dtype):
  return jdl.Sequential(jdl.Conv1D(3, 2, 2, dtype, padding="causal"),
                        jdl.Flatten(), jdl.Affine(2, 18, dtype))


def _nested(dtype):
  return jdl.Sequential(
      jdl.Sequential(jdl.Affine(4, 3, dtype), tf.nn.tanh),
      jdl.Residual(jdl.Sequential(jdl.Affine(4, 4, dtype), tf.nn.relu)),
      jdl.Parallel(jdl.Affine(2, 4, dtype), jdl.Affine(3, 4, dtype)),
      jdl.Affine(1, 5, dtype))


CONFIGS = {
    # name: (factory, input shape, output core)
    "mlp": (_mlp, [5, 3], [5, 2]),
    "lambda": (_with_lambda, [5, 3], [5, 1]),
    "cnn": (_cnn, [2, 8, 8, 2], [2, 3]),
    "cnn_valid": (_cnn_valid, [2, 9, 9, 1], [2, 2]),
    "conv1d": (_conv1d, [2, 6, 2], [2, 2]),
    "nested": (_nested, [5, 3], [5, 1]),
}


def _x(shape, dtype, seed=1):
  return tf.random.stateless_normal(shape, [seed, 0], dtype=dtype)


@pytest.mark.parametrize("name, sample_shape", [
    (name, shape) for name in sorted(CONFIGS) for shape in SAMPLE_SHAPES
    if shape != (2, 3) or name in ("mlp", "cnn_valid")])
def test_sequential_properties(name, sample_shape):
  factory, x_shape, out_core = CONFIGS[name]
  dist = factory(tf.float32)
  check_composite(dist, _x(x_shape, tf.float32), sample_shape, out_core)


@pytest.mark.parametrize("name", ["mlp", "cnn", "conv1d", "nested"])
def test_sequential_float64(name):
  factory, x_shape, out_core = CONFIGS[name]
  dist = factory(tf.float64)
  check_composite(dist, _x(x_shape, tf.float64), (3,), out_core,
                  dtype=tf.float64)


@pytest.mark.parametrize("name", ["lambda", "cnn_valid", "nested"])
def test_sequential_equals_chained_children(name):
  factory, x_shape, _ = CONFIGS[name]
  dist = factory(tf.float32)
  x = _x(x_shape, tf.float32)
  value = dist.sample(3, seed=2)
  manual = x
  for layer in value.layers:
    manual = layer(manual)
  np.testing.assert_array_equal(value(x), manual)


def test_sequential_mlp_equals_explicit_math():
  dist = _mlp(tf.float64)
  x = _x([5, 3], tf.float64)
  value = dist.sample(4, seed=3)
  l1, l2 = value.layers
  h = np.tanh(np.einsum("ni,soi->sno", x, l1.weights) + l1.bias[:, None, :])
  y = np.einsum("sni,soi->sno", h, l2.weights) + l2.bias[:, None, :]
  np.testing.assert_allclose(value(x), y, rtol=1e-12)
  # log_prob is the sum of the four i.i.d. Normal(0, 1) blocks.
  expected = sum(np.sum(-0.5 * np.asarray(p) ** 2 - 0.5 * np.log(2 * np.pi),
                        axis=tuple(range(1, p.shape.rank)))
                 for p in leaves(value))
  np.testing.assert_allclose(dist.log_prob(value), expected, rtol=1e-12)


@pytest.mark.parametrize("name", ["mlp", "cnn", "nested"])
def test_sequential_same_seed_same_sample(name):
  assert_same_sample(CONFIGS[name][0](tf.float32))


def test_sequential_leaf_count_excludes_static_layers():
  value = _cnn(tf.float32).sample(2, seed=0)
  # Conv kernel + bias, Affine weights + bias; pool and flatten add nothing.
  assert [p.shape.as_list() for p in leaves(value)] == [
      [2, 3, 3, 2, 4], [2, 4], [2, 3, 64], [2, 3]]
  assert len(value.layers) == 4


def test_sequential_input_with_sample_dims():
  # Chained layers keep the sample dims: x [S, N, in] gives [S, N, out].
  dist = _mlp(tf.float32)
  value = dist.sample(4, seed=0)
  xs = _x([4, 5, 3], tf.float32)
  ys = value(xs)
  assert ys.shape.as_list() == [4, 5, 2]
  for i in range(4):
    one = tf.nest.pack_sequence_as(
        dist.sample(seed=0), [p[i] for p in leaves(value)])
    np.testing.assert_allclose(ys[i], one(xs[i]), rtol=1e-5, atol=1e-6)


def test_sequential_under_tf_function():
  dist = _cnn(tf.float32)
  x = _x([2, 8, 8, 2], tf.float32)
  value = dist.sample(3, seed=0)
  parts = leaves(value)

  @tf.function
  def run(parts):
    net = tf.nest.pack_sequence_as(value, parts)
    return net(x), dist.log_prob(net)

  y, lp = run(parts)
  np.testing.assert_allclose(y, value(x), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(lp, dist.log_prob(value), rtol=1e-6)


@pytest.mark.parametrize("before, expected", [
    (lambda: [jdl.Conv2D(2, 3, 1)], 3),
    (lambda: [jdl.Conv1D(2, 3, 1)], 2),
    (lambda: [jdl.Conv3D(2, 3, 1)], 4),
    (lambda: [jdl.Conv2D(2, 3, 1), tf.nn.relu], 3),
    (lambda: [jdl.Conv2D(2, 3, 1), jdl.MaxPool2D(2)], 3),
    (lambda: [jdl.Sequential(jdl.Conv2D(2, 3, 1), tf.nn.relu)], 3),
    (lambda: [jdl.Residual(jdl.Conv2D(1, 3, 1))], 3),
    (lambda: [jdl.Parallel(jdl.Conv2D(2, 3, 1), jdl.Conv2D(1, 3, 1))], 3),
    (lambda: [jdl.ConvTranspose2D(2, 3, 1)], 3),
    (lambda: [jdl.Affine(2, 3)], 1),
])
def test_flatten_infers_feature_ndims(before, expected):
  layers = before()
  dist = jdl.Sequential(*layers, jdl.Flatten())
  assert dist.layers[-1].feature_ndims == expected
  assert dist.output_feature_ndims == 1


def test_flatten_explicit_feature_ndims_is_kept():
  dist = jdl.Sequential(jdl.Conv2D(2, 3, 1), jdl.Flatten(2))
  assert dist.layers[-1].feature_ndims == 2
  y = dist.sample(3, seed=0)(tf.ones([2, 4, 4, 1]))
  assert y.shape.as_list() == [3, 2, 4, 8]


def test_flatten_after_conv_matches_reshape():
  dist = jdl.Sequential(jdl.Conv2D(3, 3, 1), jdl.Flatten())
  value = dist.sample(2, seed=0)
  x = _x([5, 4, 4, 1], tf.float32)
  conv_out = value.layers[0](x)
  np.testing.assert_array_equal(value(x), tf.reshape(conv_out, [2, 5, 48]))


def test_sequential_wraps_callables_in_lambda():
  dist = jdl.Sequential(jdl.Affine(2, 2), tf.nn.relu)
  assert isinstance(dist.layers[1], jdl.Lambda)
  value = dist.sample(seed=0)
  assert isinstance(value.layers[1], jdl.LambdaLayer)
  assert value.layers[1].fn is tf.nn.relu


def test_sequential_of_only_static_layers_is_parameter_free():
  # As the anchor's Sequential of Lambdas: a point mass, no state parts.
  dist = jdl.Sequential(tf.nn.relu, jdl.Flatten(2))
  value = dist.sample(3, seed=0)
  assert tf.nest.flatten(value) == []
  assert dist.log_prob(value).shape == [3]
  np.testing.assert_array_equal(value(tf.constant([[[-1., 2.]]])), [[0., 2.]])
  with pytest.raises(ValueError, match=r"Sequential\(0 layers\) needs at least"):
    jdl.Sequential()


def test_sequential_rejects_non_callable_child():
  with pytest.raises(TypeError, match=r"Sequential\(2 layers\).*3"):
    jdl.Sequential(jdl.Affine(2, 2), 3)


def test_sequential_log_prob_matches_children_for_external_values():
  # log_prob of values built from arbitrary tensors (not a sample).
  dist = _nested(tf.float32)
  template = dist.sample(2, seed=0)
  parts = [tf.fill(p.shape, 0.3) for p in leaves(template)]
  value = tf.nest.pack_sequence_as(template, parts)
  np.testing.assert_allclose(dist.log_prob(value),
                             children_log_prob(dist, value), rtol=1e-6)
